"""predict on a large field: 4096×4096 at 1 % EDS in overlapping blocks, time and peak memory.

Peer, in the same run: the same model on one 2048×2048 field as a single graph (a quarter of the
pixels, no blocks).  Blocks must keep memory bounded (less than the single graph of a quarter of
the field) at a small cost in time per pixel (the overlap margins).  Each measurement runs in a
fresh subprocess; its peak RSS during ``predict_field`` minus its RSS before is the memory.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from figures import record
from peak_memory import peak_during, run_script

FRACTION = 0.01
DWELL_S = 1.25e-3  # the instrument's time a spectrum


def _measure(path: str, block: int) -> dict:
    """Run in the subprocess: load a prepared field and predict it."""
    from mingraph.learn.bundle import load_model
    from mingraph.workflows.predict import predict_field

    z = np.load(path)
    bundle = load_model(None)
    peak, secs, pred = peak_during(
        lambda: predict_field(bundle, z["bse"], z["valid"], z["rc"], z["emb"], block=block, progress=False)
    )
    return {
        "seconds": secs,
        "peak_bytes": peak,
        "pixels": int(z["bse"].size),
        "points": len(z["rc"]),
        "classified": int((pred.labels >= 0).sum()),
    }


def _prepare(tmp, size: int, seed: int) -> str:
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.learn.bundle import load_model
    from mingraph.workflows.predict import measure_points

    sample = simulate_tile(seed, size).field()
    rc, emb = measure_points(sample, load_model(None), FRACTION, "random", seed)
    path = str(tmp / f"field-{size}.npz")
    np.savez(path, bse=sample.bse, valid=sample.valid, rc=rc, emb=emb)
    return path


def _run(path: str, block: int) -> dict:
    return run_script(__file__, path, str(block))


def test_large_field_in_blocks_vs_one_graph(benchmark, tmp_path):
    big = _run(_prepare(tmp_path, 4096, 5), 1024)
    whole = benchmark.pedantic(_run, args=(_prepare(tmp_path, 2048, 6), 4096), rounds=1, iterations=1)
    mem_ratio = whole["peak_bytes"] / big["peak_bytes"]
    time_ratio = (big["seconds"] / big["pixels"]) / (whole["seconds"] / whole["pixels"])
    benchmark.extra_info.update(
        {
            "blocks_4096": big,
            "whole_2048": whole,
            "memory_ratio": mem_ratio,
            "time_per_pixel_ratio": time_ratio,
        }
    )
    print(
        f"\npredict 4096x4096 at 1% in 1024-px blocks: {big['seconds']:.1f} s, peak {big['peak_bytes'] / 1e9:.2f} GB;"
        f" one 2048x2048 graph: {whole['seconds']:.1f} s, peak {whole['peak_bytes'] / 1e9:.2f} GB;"
        f" memory {mem_ratio:.1f}x less for 4x the pixels, time per pixel x{time_ratio:.2f}"
    )
    assert big["classified"] > 0.3 * big["pixels"]
    # recorded only (issue 24: at most 0.25x the instrument's time for the field)
    record(
        "predict.field_4096.blocks_1024.seconds",
        big["seconds"],
        "s",
        peer="instrument (1.25 ms a spectrum)",
        peer_value=big["points"] * DWELL_S,
        ratio="value/peer",
        points=big["points"],
    )
    # measured 2.6x: blocks bound memory whatever the field size
    record(
        "predict.field_4096.blocks_1024.peak_memory",
        big["peak_bytes"],
        "B",
        peer="one 2048x2048 graph",
        peer_value=whole["peak_bytes"],
        floor=1.5,
    )
    # measured 1.17x with the paper's GAT; 1.04x and 2.29x with the fusion model (64 px margins, wall
    # clock on shared cores: the same code took 196 s and 421 s for the blocks in two runs)
    record(
        "predict.field_4096.blocks_1024.seconds_per_pixel",
        big["seconds"] / big["pixels"],
        "s",
        peer="one 2048x2048 graph",
        peer_value=whole["seconds"] / whole["pixels"],
        ratio="value/peer",
        ceiling=3.0,
        seconds=big["seconds"],
        peer_seconds=whole["seconds"],
    )


if __name__ == "__main__":
    print(json.dumps(_measure(sys.argv[1], int(sys.argv[2]))))
