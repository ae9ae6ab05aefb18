"""The package layout: stages import only downward, kernels import nothing of mingraph, and no
module grows past the size a reader takes in at once (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# rank of each stage; a module may import from its own stage or any stage below it
RANK = {
    "errors": 0,
    "escapes": 0,
    "textfiles": 0,
    "files": 0,
    "outputs": 0,
    "output_paths": 0,
    "metrics": 0,
    "engine": 0,
    "acquire": 1,
    "spectra": 2,
    "graphs": 3,
    "learn": 4,
    "analyse": 5,
}
TOP = 6  # cli, predict, study, demo
MAX_LINES = 420


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


def test_kernels_import_nothing_from_mingraph():
    for path in sorted((REPO / "kernels").glob("*.py")):
        bad = [m for m in _imports(path) if m == "mingraph" or m.startswith("mingraph.")]
        assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize(
    "path", SOURCES + sorted((REPO / "kernels").glob("*.py")), ids=lambda p: str(p.relative_to(REPO))
)
def test_modules_stay_small(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(REPO)} has {n} lines (split it by what it does)"


def test_no_relative_imports_between_stages():
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 1:
                raise AssertionError(f"{path.relative_to(REPO)} uses a relative import across packages")
