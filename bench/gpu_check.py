"""The CUDA path measured: one section per call, each writing ``OUT/<section>.json``.

Sections (``python bench/gpu_check.py SECTION --out OUT [--small]``; ``bench/gpu_check.sh`` runs
them all with time limits and writes ``OUT/figures.md``):

* ``kernels``: the structured-attention Triton kernels against the torch reference on CUDA, float32
  and bfloat16, forward and the four gradients (worst error relative to 1e-4 + 1e-4 |ref| for
  float32, 2e-2 + 2e-2 |ref| for bfloat16 against the float32 reference);
* ``backends``: the paper's GAT, forward (no_grad) and forward + backward, structured against the
  sparse backend and PyG's ``GAT`` with the same weights (bench/test_bench_gat.py's workload:
  16 tiles of 150², 1 % EDS; 4 tiles for forward + backward);
* ``train``: one epoch of the paper's GAT (Adam, batches of 16 graphs of 150², forward,
  backward, step) on graphs held in memory: graphs per second;
* ``field``: the 100-megapixel field (10 000², 1 % EDS) predicted by the shipped model in blocks:
  seconds, peak CUDA memory, peak RSS;
* ``summary``: OUT/figures.md from the JSON files present.

``--small`` shrinks every workload (for CPU: the test suite runs each section that way, where the
Triton comparison becomes Numba against torch, so this code is exercised without a GPU).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from timing import best_of  # noqa: E402


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _clock(dev: torch.device):
    def clock() -> float:
        _sync(dev)
        return time.perf_counter()

    return clock


def kernels(small: bool) -> dict:
    from test_bench_gat import make_batch

    from mingraph.learn.model import to_tensors
    from mingraph_kernels.gat_structured import structured_attention

    dev = _device()
    impl = "triton" if dev.type == "cuda" else "numba"
    topo = to_tensors(make_batch(1 if small else 16, 24 if small else 150), dev).topology
    gen = torch.Generator().manual_seed(0)
    heads, ch = 4, 8
    base = [torch.randn(topo.n_nodes, heads, ch, generator=gen)]
    base += [torch.randn(topo.n_nodes, heads, generator=gen) for _ in range(2)] + [
        torch.randn(heads, generator=gen)
    ]
    out = {"device": str(dev), "impl": impl, "nodes": topo.n_nodes, "cases": []}
    for mean in (False, True):
        w = torch.randn(topo.n_nodes, ch if mean else heads * ch, generator=gen).to(dev)

        def run(which, dtype):
            xs = [t.to(dev, dtype).requires_grad_(True) for t in base]
            y = structured_attention(*xs, topo, mean, impl=which)
            (y.float() * w).sum().backward()
            return [y.detach().float()] + [t.grad.float() for t in xs]

        ref = run("torch", torch.float32)
        for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 2e-2)):
            if dtype == torch.bfloat16 and dev.type != "cuda":
                continue
            got = run(impl, dtype)
            worst = max(float(((a - b).abs() / (tol + tol * b.abs())).max()) for a, b in zip(got, ref))
            secs = best_of(lambda: run(impl, dtype), 1 if small else 3, _clock(dev))
            ref_secs = best_of(lambda: run("torch", dtype), 1 if small else 3, _clock(dev))
            name = str(dtype).replace("torch.", "")
            out["cases"].append(
                {
                    "mean": mean,
                    "dtype": name,
                    "worst_over_tol": worst,
                    "ok": worst <= 1.0,
                    "fwd_bwd_s": secs,
                    "torch_fwd_bwd_s": ref_secs,
                }  # fmt: skip
            )
    return out


def backends(small: bool) -> dict:
    from test_bench_gat import authors_pyg_model, make_batch

    from mingraph.learn.model import GATModel, to_tensors

    dev = _device()
    torch.manual_seed(0)
    model = GATModel().to(dev)
    pyg = authors_pyg_model(model)
    pyg = pyg.to(dev) if pyg is not None else None
    res = {"device": str(dev), "pyg": pyg is not None}
    for mode, tiles in (("forward", 2 if small else 16), ("train", 1 if small else 4)):
        g = to_tensors(make_batch(tiles, 32 if small else 150), dev)
        s, d, a = g.edge_list(self_loops=False)
        x, ei, ea = g.node_features(), torch.stack([s, d]), a[:, None]

        def output(backend):
            if backend == "pyg":
                y = x
                for block in pyg:
                    y = block(y, ei, edge_attr=ea)
                return y
            pix, eds = model(g, backend=backend)
            return torch.cat([pix.reshape(-1, pix.shape[-1]), eds])

        for backend in ("structured", "sparse") + (("pyg",) if pyg is not None else ()):

            def step():
                if mode == "forward":
                    with torch.no_grad():
                        output(backend)
                else:
                    for p in (pyg if backend == "pyg" else model).parameters():
                        p.grad = None
                    output(backend).logsumexp(1).sum().backward()

            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            res[f"{mode}_{backend}_s"] = best_of(step, 1 if small else 3, _clock(dev), warm=not small)
            if dev.type == "cuda":
                res[f"{mode}_{backend}_peak_bytes"] = torch.cuda.max_memory_allocated(dev)
        res[f"{mode}_tiles"] = tiles
    return res


def train(small: bool) -> dict:
    from test_bench_gat import make_batch

    from mingraph.learn.model import GATModel, to_tensors

    dev = _device()
    n, batch, size = (8, 4, 32) if small else (256, 16, 150)
    batches = [make_batch(batch, size, seed=i) for i in range(n // batch)]
    rng = np.random.default_rng(0)
    for b in batches:
        b.labels = rng.integers(0, 50, b.labels.shape if b.labels is not None else (batch, size, size))
    torch.manual_seed(0)
    model = GATModel().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def epoch():
        for b in batches:
            g = to_tensors(b, dev)
            pix, _ = model(g, backend="structured")
            lab = torch.as_tensor(b.labels, device=dev).reshape(-1)
            loss = torch.nn.functional.cross_entropy(pix.reshape(-1, pix.shape[-1]), lab)
            opt.zero_grad()
            loss.backward()
            opt.step()

    secs = best_of(epoch, 1, _clock(dev))
    return {
        "device": str(dev),
        "graphs": n,
        "batch": batch,
        "tile": size,
        "seconds": secs,
        "graphs_per_s": n / secs,
    }


def field(small: bool) -> dict:
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.learn.bundle import load_model
    from mingraph.workflows.predict import measure_points, predict_field

    dev = _device()
    side = 256 if small else 10_000
    t0 = time.perf_counter()
    sample = simulate_tile(0, side).field("gpu-check")
    bundle = load_model(None)  # the encoder embeds on the CPU; the model runs on the device
    rc, emb = measure_points(sample, bundle, 0.01, "random", 0)
    prep = time.perf_counter() - t0
    bundle.model.to(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    pred = predict_field(bundle, sample.bse, sample.valid, rc, emb, block=4096 if dev.type == "cuda" else 1024,
                         progress=False)  # fmt: skip
    _sync(dev)
    secs = time.perf_counter() - t0
    agree = float((pred.labels[sample.valid] == sample.labels[sample.valid]).mean())
    return {
        "device": str(dev),
        "side_px": side,
        "eds_points": int(rc.shape[0]),
        "simulate_measure_embed_s": prep,
        "predict_s": secs,
        "megapixels_per_s": side * side / 1e6 / secs,
        "peak_cuda_bytes": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "pixel_accuracy": agree,
    }


def summary(out: Path) -> str:
    lines = ["# GPU check figures", ""]
    for name in ("device", "kernels", "backends", "train", "field"):
        p = out / f"{name}.json"
        if not p.is_file():
            lines.append(f"- {name}: no figures (not run, failed or timed out; see its log)")
            continue
        lines += [f"## {name}", "", "```json", p.read_text().strip(), "```", ""]
    text = "\n".join(lines) + "\n"
    (out / "figures.md").write_text(text)
    return text


SECTIONS = {"kernels": kernels, "backends": backends, "train": train, "field": field}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("section", choices=[*SECTIONS, "device", "summary"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--small", action="store_true", help="tiny workloads (CPU smoke run)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.section == "summary":
        print(summary(a.out))
        return 0
    if a.section == "device":
        res = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": str(_device())}
        if torch.cuda.is_available():
            res["name"] = torch.cuda.get_device_name(0)
    else:
        torch.manual_seed(0)
        res = SECTIONS[a.section](a.small)
    text = json.dumps(res, indent=2, default=float)
    (a.out / f"{a.section}.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
