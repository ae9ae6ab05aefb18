"""The package layout: stages import only downward, kernels import nothing of mingraph, no import
cycle exists, and every module states its one concern and is named in docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# rank of each stage; a module may import from its own stage or any stage below it
RANK = {
    "version": 0,
    "common": 0,
    "acquire": 1,
    "spectra": 2,
    "graphs": 3,
    "learn": 4,
    "analyse": 5,
    "acquisition": 6,
}
TOP = 7  # api, cli, workflows
# what adaptive acquisition may take from learn/: the model interface (a model file, its point
# features, the registry of model classes and the block tiler), nothing of any one model or trainer
MODEL_INTERFACE = {"mingraph.learn.bundle", "mingraph.learn.registry", "mingraph.learn.tiling"}


def _rank(module: str) -> int:
    parts = module.split(".")
    if parts[0] != "mingraph" or len(parts) == 1:
        return -1
    return RANK.get(parts[1], TOP)


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


SOURCES = sorted((REPO / "mingraph").rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_stages_import_only_downward(path):
    module = ".".join(path.relative_to(REPO).with_suffix("").parts)
    own = _rank(module)
    upward = [m for m in _imports(path) if _rank(m) > own]
    assert not upward, f"{module} (stage {own}) imports from a later stage: {upward}"


def test_acquisition_depends_on_the_model_interface_only():
    for path in sorted((REPO / "mingraph" / "acquisition").glob("*.py")):
        learn = {m for m in _imports(path) if m.startswith("mingraph.learn")}
        assert learn <= MODEL_INTERFACE, f"{path.name} imports {sorted(learn - MODEL_INTERFACE)} from learn/"


def test_kernels_import_nothing_from_mingraph():
    for path in sorted((REPO / "kernels").glob("*.py")):
        bad = [m for m in _imports(path) if m == "mingraph" or m.startswith("mingraph.")]
        assert not bad, f"{path.name} imports {bad}"


ARCHITECTURE = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "path", SOURCES + sorted((REPO / "kernels").glob("*.py")), ids=lambda p: str(p.relative_to(REPO))
)
def test_every_module_states_its_one_concern_and_is_named_in_the_architecture(path):
    """One concern a module: its docstring says what it does, and docs/architecture.md names it."""
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and doc.strip(), f"{path.relative_to(REPO)} has no module docstring saying what it does"
    if path.name not in ("__init__.py", "__main__.py"):
        assert f"`{path.name}`" in ARCHITECTURE or f"/{path.name}`" in ARCHITECTURE, (
            f"{path.relative_to(REPO)} is not named in docs/architecture.md (say what it does there)"
        )


def test_no_relative_imports_between_stages():
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 1:
                raise AssertionError(f"{path.relative_to(REPO)} uses a relative import across packages")


def _module_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """module -> the modules of ``package`` (under ``root``) it imports anywhere in its file, inside
    functions too; ``from pkg import name`` counts as ``pkg.name`` when that is a module."""
    paths = {_module_of(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        deps: set[str] = set()
        here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in paths)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = here[: len(here) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    if sub in paths:
                        deps.add(sub)
                    elif base in paths:
                        deps.add(base)
        deps.discard(module)
        graph[module] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None when the graph is acyclic (depth-first search)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path, on_path = [start], {start}
        stack = [iter(sorted(graph[start]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif nxt in on_path:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in done and nxt in graph:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_no_import_cycles_even_through_function_local_imports():
    graph = import_graph(REPO, "mingraph")
    assert sum(len(d) for d in graph.values()) > 100, "the import graph came out (nearly) empty"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_detector_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import pkg.b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg import a\n\n    return a\n")
    (pkg / "c.py").write_text("from . import b\nfrom pkg.a import x\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.a", "pkg.b"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    (pkg / "b.py").write_text("def f():\n    from pkg import c\n\n    return c\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (pkg / "c.py").write_text("import os\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) is None
