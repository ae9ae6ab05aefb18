"""GAT benchmarks: the ``structured`` backend against the ``dgl`` reference, ``sparse`` and PyG.

Run with ``pytest bench/``.  Workload (docs/performance.md, "GAT layers"): 16 tiles of 150x150 at 1%
EDS (random positions, random 64-value features), the paper's 3-layer model with its default
random initialisation, the same weights for every backend and for PyG's ``GAT`` (loaded with
:func:`mingraph.learn.model.pyg_state_dict`).

* forward (inference, ``no_grad``), 16 tiles: time of every backend in one run;
* forward + backward: 4 tiles for every backend (DGL and PyG need ~17 GB and ~28 GB for the
  full batch, more than the 24 GB machine), plus the structured backend on the full batch;
* peak memory: one fresh subprocess per backend (torch's CPU allocations are invisible to
  tracemalloc), the process's peak RSS during the call minus its RSS before it;
* one 2048x2048 field at 1% as a single graph, structured forward: peak memory within 8 GB.

Slow peers run once (``benchmark.pedantic(rounds=1)``).  Each speed/memory ratio is printed,
stored in ``benchmark.extra_info`` and checked against a floor set well below what we measure
(docs/performance.md, "GAT layers"): wall-clock ratios vary ~2x with the load of the shared cores.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from figures import record, require
from peak_memory import peak_during, run_script, status_bytes
from timing import best_of

from mingraph.graphs.structure import StructuredBatch, batch_graphs, build_structured_graph
from mingraph.learn.model import GATModel, GraphTensors, pyg_state_dict, to_tensors

TILE, TILES, TRAIN_TILES, FRACTION, FIELD = 150, 16, 4, 0.01, 2048
PEERS = ("dgl", "pyg")
BACKENDS = ("structured", "sparse", "dgl", "pyg")
# Speed floors: about half of the lowest ratios measured on the shared 2-core machine under load
# (docs/performance.md, "GAT layers"); wall-clock ratios moved up to 2x between runs.
SPEED_FLOOR = {("forward", "dgl"): 5.0, ("forward", "pyg"): 8.0, ("train", "dgl"): 2.0, ("train", "pyg"): 3.5}
# Memory is steadier than time: floors about two thirds of the measured ratios (forward: the
# 10x target itself, measured 14.8-15.4x).
MEMORY_FLOOR = {
    ("forward", "dgl"): 10.0,
    ("forward", "pyg"): 10.0,
    ("train", "dgl"): 8.0,
    ("train", "pyg"): 13.0,
}
FIELD_LIMIT_BYTES = 8e9

RESULTS: dict[tuple[str, str], float] = {}  # (mode, backend) -> seconds
MEMORY: dict[str, dict] = {}  # backend -> subprocess measurement


def make_batch(tiles: int, size: int = TILE, fraction: float = FRACTION, seed: int = 0) -> StructuredBatch:
    """``tiles`` random tiles with EDS at ``fraction`` of the pixels (distinct random positions)."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(fraction * size * size)))
    graphs = []
    for _ in range(tiles):
        idx = rng.choice(size * size, n, replace=False)
        rc = np.stack([idx // size, idx % size], 1)
        graphs.append(
            build_structured_graph(
                rng.random((size, size), dtype=np.float32),
                rc,
                rng.standard_normal((n, 64)).astype(np.float32),
            )
        )
    return batch_graphs(graphs)


def authors_pyg_model(model: GATModel):
    """PyG's ``GAT`` as the authors built it, holding ``model``'s weights (None without PyG)."""
    try:
        from torch_geometric.nn import GAT
    except ImportError:
        return None
    common = dict(heads=4, edge_dim=1, fill_value=0.0)
    seq = torch.nn.Sequential(
        GAT(65, 56, num_layers=2, out_channels=56, concat=True, **common),
        GAT(56, 56, num_layers=1, out_channels=50, concat=False, **common),
    )
    seq.load_state_dict(pyg_state_dict(model))
    return seq


@dataclass
class Workload:
    """One batch ready for every backend (explicit edge lists and layouts built up front)."""

    model: GATModel
    graph: GraphTensors
    pyg: torch.nn.Module | None

    @classmethod
    def build(cls, tiles: int, backends=BACKENDS) -> Workload:
        torch.manual_seed(0)
        model = GATModel()
        g = to_tensors(make_batch(tiles))
        if "sparse" in backends:
            g.csr().block_layout(model.heads)
        if "dgl" in backends:
            g.dgl_graph()
        pyg = authors_pyg_model(model) if "pyg" in backends else None
        if pyg is not None:
            s, d, a = g.edge_list(self_loops=False)
            g._cache["pyg"] = (g.node_features(), torch.stack([s, d]), a[:, None])
        return cls(model, g, pyg)

    def output(self, backend: str) -> torch.Tensor:
        if backend == "pyg":
            x, ei, ea = self.graph._cache["pyg"]
            for block in self.pyg:
                x = block(x, ei, edge_attr=ea)
            return x
        pix, eds = self.model(self.graph, backend=backend)
        return torch.cat([pix.reshape(-1, pix.shape[-1]), eds])

    def forward(self, backend: str) -> None:
        with torch.no_grad():
            self.output(backend)

    def train_step(self, backend: str) -> None:
        params = self.pyg.parameters() if backend == "pyg" else self.model.parameters()
        for p in params:
            p.grad = None
        self.output(backend).logsumexp(1).sum().backward()

    def step(self, mode: str, backend: str):
        """The call timed for ``mode``: :meth:`forward` ("forward") or :meth:`train_step` ("train")."""
        fn = self.forward if mode == "forward" else self.train_step
        return lambda: fn(backend)


def warm_up(backends=BACKENDS) -> None:
    """Load the Numba kernels and the peers' lazy state outside any timed or measured region."""
    w = Workload.build(1, backends)
    for backend in backends:
        if backend != "pyg" or w.pyg is not None:
            w.forward(backend)
            w.train_step(backend)


@pytest.fixture(scope="module")
def full():
    warm_up()
    return Workload.build(TILES)


@pytest.fixture(scope="module")
def quarter():
    return Workload.build(TRAIN_TILES)


def _time(benchmark, fn, slow: bool) -> float:
    if slow:
        benchmark.pedantic(fn, rounds=1, iterations=1, warmup_rounds=0)
    else:
        fn()  # warm caches
        benchmark(fn)
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    return stats.stats.min


def _record(benchmark, mode: str, backend: str, seconds: float) -> None:
    RESULTS[(mode, backend)] = seconds
    benchmark.extra_info["seconds"] = seconds
    ours = RESULTS.get((mode, "structured"))
    if backend != "structured" and ours:
        benchmark.extra_info["structured_speedup"] = seconds / ours
        print(
            f"\n{mode}: {backend} {seconds:.2f} s, structured {ours:.3f} s -> structured {seconds / ours:.1f}x faster"
        )


def _bench(benchmark, w: Workload, mode: str, backend: str, group: str) -> None:
    """Time ``mode`` ("forward" or "train") of one backend on ``w`` (peers once) and record it."""
    if backend == "pyg" and w.pyg is None:
        pytest.skip("torch_geometric is not installed")
    benchmark.group = group
    _record(benchmark, mode, backend, _time(benchmark, w.step(mode, backend), slow=backend != "structured"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_16_tiles(benchmark, full, backend):
    _bench(benchmark, full, "forward", backend, "gat forward, 16 x 150x150 at 1%")


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_backward_4_tiles(benchmark, quarter, backend):
    _bench(benchmark, quarter, "train", backend, "gat forward+backward, 4 x 150x150 at 1%")


def test_forward_backward_16_tiles_structured(benchmark, full):
    benchmark.group = "gat forward+backward, 16 x 150x150 at 1%"
    RESULTS[("train16", "structured")] = _time(benchmark, lambda: full.train_step("structured"), slow=False)


# -- peak memory, one fresh subprocess per backend --------------------------------------------
def measure_backend(backend: str) -> dict:
    """Peak memory of one backend: forward on 16 tiles, forward+backward on 4 (and 16 if ours)."""
    warm_up((backend,))
    out = {}
    w = Workload.build(TRAIN_TILES, (backend,))
    out["train_bytes"], out["train_s"] = _peak(lambda: w.train_step(backend))
    del w
    w = Workload.build(TILES, (backend,))
    out["forward_bytes"], out["forward_s"] = _peak(lambda: w.forward(backend))
    if backend == "structured":
        out["train16_bytes"], out["train16_s"] = _peak(lambda: w.train_step(backend))
    return out


def measure_field(size: int = FIELD) -> dict:
    """Structured forward of one size x size field at 1% as a single graph."""
    warm_up(("structured",))
    torch.manual_seed(0)
    model = GATModel()
    t = time.perf_counter()
    batch = make_batch(1, size=size)
    g = to_tensors(batch)
    build_s = time.perf_counter() - t
    del batch
    forward_bytes, forward_s = _peak(lambda: Workload(model, g, None).forward("structured"))
    return dict(
        build_s=build_s,
        forward_bytes=forward_bytes,
        forward_s=forward_s,
        process_peak_bytes=status_bytes("VmHWM"),
        graph_bytes=status_bytes("VmRSS"),
    )


def _peak(fn) -> tuple[int, float]:
    peak, secs, _ = peak_during(fn)
    return peak, secs


def _subprocess(*args: str) -> dict:
    return run_script(__file__, *args, timeout=900)


@pytest.mark.parametrize("backend", BACKENDS)
def test_peak_memory(benchmark, backend):
    if backend == "pyg":
        pytest.importorskip("torch_geometric")
    benchmark.group = "gat peak memory (subprocess wall time; the figures are in extra_info)"
    m = benchmark.pedantic(_subprocess, args=("memory", backend), rounds=1, iterations=1)
    MEMORY[backend] = m
    benchmark.extra_info.update({k: v for k, v in m.items()})
    ours = MEMORY.get("structured")
    msg = f"\n{backend}: forward 16 tiles {m['forward_bytes'] / 1e6:.0f} MB, forward+backward 4 tiles {m['train_bytes'] / 1e6:.0f} MB"
    if "train16_bytes" in m:
        msg += f", forward+backward 16 tiles {m['train16_bytes'] / 1e6:.0f} MB ({m['train16_s']:.2f} s)"
    if ours and backend != "structured":
        for mode in ("forward", "train"):
            benchmark.extra_info[f"{mode}_memory_ratio"] = m[f"{mode}_bytes"] / ours[f"{mode}_bytes"]
        msg += f" -> structured uses {m['forward_bytes'] / ours['forward_bytes']:.1f}x / {m['train_bytes'] / ours['train_bytes']:.1f}x less"
    print(msg)


def test_field_2048_structured_memory(benchmark):
    benchmark.group = "gat structured forward, 2048x2048 field at 1% (subprocess wall time)"
    m = benchmark.pedantic(_subprocess, args=("field", str(FIELD)), rounds=1, iterations=1)
    benchmark.extra_info.update(m)
    print(
        f"\n2048x2048 at 1%: forward {m['forward_s']:.2f} s, +{m['forward_bytes'] / 1e9:.2f} GB over the graph, process peak {m['process_peak_bytes'] / 1e9:.2f} GB"
    )
    record(
        "gat.field_2048.structured.forward.process_peak_memory",
        m["process_peak_bytes"],
        "B",
        ceiling=FIELD_LIMIT_BYTES,
        forward_s=m["forward_s"],
        forward_bytes=m["forward_bytes"],
    )


def _measure_missing() -> None:
    """Measure what the floors need and this run did not (the check run alone, or -k filtered)."""
    need = {b for _, b in SPEED_FLOOR} | {"structured"}
    missing = [(m, b) for m in ("forward", "train") for b in need if (m, b) not in RESULTS]
    if missing:
        warm_up(tuple(sorted(need)))
    workloads = {"forward": None, "train": None}
    for mode, backend in missing:
        if workloads[mode] is None:
            workloads[mode] = Workload.build(TILES if mode == "forward" else TRAIN_TILES, tuple(sorted(need)))
        w = workloads[mode]
        if backend == "pyg" and w.pyg is None:
            continue
        RESULTS[(mode, backend)] = best_of(w.step(mode, backend), 3 if backend == "structured" else 1)
    for backend in {b for _, b in MEMORY_FLOOR} | {"structured"}:
        if backend not in MEMORY and (backend != "pyg" or authors_pyg_model(GATModel()) is not None):
            MEMORY[backend] = _subprocess("memory", backend)


def test_ratios_meet_their_floors():
    """Structured vs the DGL reference and PyG: speed (same run) and memory (subprocesses)."""
    _measure_missing()
    lines, figs = [], []
    tiles = {"forward": TILES, "train": TRAIN_TILES}
    for (mode, peer), floor in SPEED_FLOOR.items():
        if (mode, peer) in RESULTS and (mode, "structured") in RESULTS:
            figs.append(
                record(
                    f"gat.{mode}_{tiles[mode]}_tiles.structured.seconds.vs_{peer}",
                    RESULTS[(mode, "structured")],
                    "s",
                    peer=peer,
                    peer_value=RESULTS[(mode, peer)],
                    floor=floor,
                    check=False,
                )
            )
            lines.append(f"speed  {mode:8s} vs {peer}: {figs[-1].ratio:6.1f}x (floor {floor})")
    for (mode, peer), floor in MEMORY_FLOOR.items():
        if peer in MEMORY and "structured" in MEMORY:
            figs.append(
                record(
                    f"gat.{mode}_{tiles[mode]}_tiles.structured.peak_memory.vs_{peer}",
                    MEMORY["structured"][f"{mode}_bytes"],
                    "B",
                    peer=peer,
                    peer_value=MEMORY[peer][f"{mode}_bytes"],
                    floor=floor,
                    check=False,
                )
            )
            lines.append(f"memory {mode:8s} vs {peer}: {figs[-1].ratio:6.1f}x (floor {floor})")
    if ("train16", "structured") in RESULTS:  # recorded only
        record("gat.train_16_tiles.structured.seconds", RESULTS[("train16", "structured")], "s")
    if not any(k[1] == "pyg" for k in RESULTS):
        lines.append("PyG floors NOT checked: torch_geometric is not installed (pip install -e .[peers])")
        warnings.warn(lines[-1], stacklevel=1)
    print("\n" + "\n".join(lines))
    require(*figs)


if __name__ == "__main__":  # subprocess entry: one JSON line on stdout
    kind, arg = sys.argv[1], sys.argv[2]
    result = measure_backend(arg) if kind == "memory" else measure_field(int(arg))
    print(json.dumps(result))
