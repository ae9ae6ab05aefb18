"""bench/figures.py (every asserted bench figure, as JSON lines) and bench/figures_table.py."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


figures = _load("figures")
figures_table = _load("figures_table")


def _lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def test_records_figures_as_json_lines_and_asserts_their_bounds(tmp_path, monkeypatch):
    out = tmp_path / "figures.jsonl"
    monkeypatch.setenv(figures.ENV, str(out))
    f = figures.record(
        "fusion.numba.forward", 0.02, "s", peer="PyG GATv2Conv", peer_value=0.1, floor=1.5, impl="numba"
    )
    assert f.ok and f.ratio == pytest.approx(5.0)
    figures.record(
        "simulate.tile", 0.03, "s", peer="gaussian_filter", peer_value=0.001, ratio="value/peer", ceiling=400
    )
    figures.record("shards.bytes_per_graph", 90_000, "B", ceiling=150_000)
    figures.record("sample.tima_field.cpu", 5.5, "s")  # recorded only
    with pytest.raises(AssertionError) as err:
        figures.record("gat.forward.dgl", 1.0, "s", peer="dgl", peer_value=3.0, floor=5.0)
    msg = str(err.value)
    assert "gat.forward.dgl" in msg and "dgl 3 s" in msg and "peer/value = 3" in msg and "floor 5" in msg
    assert "FAILED" in msg
    g = figures.record("gat.memory.pyg", 100.0, "B", peer="pyg", peer_value=900.0, floor=13.0, check=False)
    h = figures.record("gat.memory.dgl", 100.0, "B", peer="dgl", peer_value=300.0, floor=8.0, check=False)
    with pytest.raises(AssertionError) as err:
        figures.require(f, g, h)
    assert "gat.memory.pyg" in str(err.value) and "gat.memory.dgl" in str(err.value)
    assert "fusion" not in str(err.value)

    rows = _lines(out)
    assert [r["name"] for r in rows] == [
        "fusion.numba.forward",
        "simulate.tile",
        "shards.bytes_per_graph",
        "sample.tima_field.cpu",
        "gat.forward.dgl",
        "gat.memory.pyg",
        "gat.memory.dgl",
    ]
    r = rows[0]
    assert r["value"] == 0.02 and r["unit"] == "s" and r["peer"] == "PyG GATv2Conv" and r["peer_value"] == 0.1
    assert r["ratio"] == pytest.approx(5.0) and r["ratio_is"] == "peer/value" and r["floor"] == 1.5
    assert r["ceiling"] is None and r["ok"] is True and r["info"] == {"impl": "numba"}
    assert r["date"].startswith("20") and r["cores"] >= 1 and r["cpu"] and len(r["load"]) == 3
    assert "test_records_figures" in r["test"]
    assert r["commit"] is None or len(r["commit"].split("+")[0]) == 40
    assert rows[1]["ratio"] == pytest.approx(30.0) and rows[1]["ceiling"] == 400 and rows[1]["ok"]
    assert rows[2]["ratio"] is None and rows[2]["ok"]
    assert rows[3]["floor"] is None and rows[3]["ceiling"] is None and rows[3]["ok"]
    assert [r["ok"] for r in rows[4:]] == [False, False, False]


def test_nothing_is_written_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(figures.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    figures.record("x", 1.0, "s", peer="y", peer_value=2.0, floor=1.0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        figures.record("x", 1.0, "s", peer="y")
    with pytest.raises(ValueError):
        figures.record("x", 1.0, "s", peer="y", peer_value=1.0, ratio="value/value")


def _append_many(args) -> None:
    path, k = args
    for i in range(200):
        figures.append_line(path, json.dumps({"name": f"p{k}.{i}", "pad": "x" * 3000}))


def test_appends_from_several_processes_do_not_interleave(tmp_path):
    out = tmp_path / "f.jsonl"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_append_many, [(str(out), k) for k in range(4)])
    rows = _lines(out)  # every line parses: no torn or interleaved writes
    assert sorted(r["name"] for r in rows) == sorted(f"p{k}.{i}" for k in range(4) for i in range(200))


def test_table_shows_every_figure_its_bound_and_failures(tmp_path, monkeypatch):
    out = tmp_path / "figures.jsonl"
    monkeypatch.setenv(figures.ENV, str(out))
    figures.record("fusion.numba.forward", 0.02, "s", peer="PyG GATv2Conv", peer_value=0.1, floor=1.5)
    figures.record(
        "fusion.numba.memory",
        1.8e8,
        "B",
        peer="PyG GATv2Conv",
        peer_value=4.36e8,
        ratio="value/peer",
        ceiling=0.7,
    )
    figures.record("shards.bytes_per_graph", 90_000, "B", ceiling=150_000)
    figures.record("sample.tima_field.cpu", 5.5, "s")
    figures.record("gat.forward.dgl", 1.0, "s", peer="dgl", peer_value=3.0, floor=5.0, check=False)
    with open(out, "a") as fh:
        fh.write('{"torn\n')
    proc = subprocess.run(
        [sys.executable, str(BENCH / "figures_table.py"), str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    print(text)
    assert "5 bench figures, 1 outside their bounds; 1 unreadable line(s) skipped" in text
    assert "machine: " in text and "cores" in text and "load:" in text and "commit:" in text
    lines = text.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("figure"))
    assert lines[header].split() == [
        "figure",
        "value",
        "peer",
        "peer",
        "value",
        "ratio",
        "bound",
        "ok",
        "load",
    ]
    body = {ln.split()[0]: ln for ln in lines[header + 2 :]}
    assert list(body) == [
        "fusion.numba.forward",
        "fusion.numba.memory",
        "shards.bytes_per_graph",
        "sample.tima_field.cpu",
        "gat.forward.dgl",
    ]
    row = body["fusion.numba.forward"]
    assert "20 ms" in row and "PyG GATv2Conv" in row and "100 ms" in row and "5 (peer/value)" in row
    assert ">= 1.5" in row and " yes " in row
    row = body["fusion.numba.memory"]
    assert "180 MB" in row and "436 MB" in row and "0.4128 (value/peer)" in row and "<= 0.7" in row
    assert "90 kB" in body["shards.bytes_per_graph"] and "<= 150 kB" in body["shards.bytes_per_graph"]
    assert " - " in body["sample.tima_field.cpu"] and " yes " not in body["sample.tima_field.cpu"]
    assert "3 (peer/value)" in body["gat.forward.dgl"] and " NO " in body["gat.forward.dgl"]


def test_table_without_figures(tmp_path):
    assert figures_table.main([str(tmp_path / "missing.jsonl")]) == 2
    (tmp_path / "empty.jsonl").write_text("")
    assert figures_table.main([str(tmp_path / "empty.jsonl")]) == 0
