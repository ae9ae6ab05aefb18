"""Embedding speed (spectra/s) of the authors' ONNX encoder against mingraph's CNN encoder.

    PYTHONPATH=. python bench/encoder_speed.py [--shared SHARED] [--n 20000]

SHARED (default: the ``shared`` folder beside the repository) holds the authors' released encoder,
``models/authors/eds_emb_model.onnx``.

Both embed the same raw Poisson spectra (n × 3000, ~2000 counts each) through
``Encoder.embed`` (what ``predict`` and ``build-graphs`` call), in batches of 4096, with 1 thread
and with all cores; the median of 3 timed runs after one warm-up.  The CNN's speed does not
depend on its weights, so an untrained ``SpectrumCNN`` is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def rate(fn, n: int, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / float(np.median(times))


def main() -> None:
    from mingraph.spectra.encoder import Encoder, SpectrumCNN
    from mingraph.spectra.onnx_encoder import onnx_encoder, onnx_session

    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--n", type=int, default=20000)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    spectra = rng.poisson(rng.dirichlet(np.full(3000, 0.3)) * 2000, size=(a.n, 3000)).astype(np.float32)
    cnn = Encoder("cnn", SpectrumCNN().state_dict())
    onnx = onnx_encoder(a.shared / "models" / "authors" / "eds_emb_model.onnx")
    cores = os.cpu_count() or 1
    out = {"n_spectra": a.n, "cores": cores, "torch": torch.__version__}
    for threads in sorted({1, cores}):
        torch.set_num_threads(threads)
        onnx._net = onnx_session(onnx.state["onnx"], "bench", threads=threads)
        out[f"cnn_{threads}_threads"] = round(rate(lambda: cnn.embed(spectra), a.n))
        out[f"onnx_{threads}_threads"] = round(rate(lambda: onnx.embed(spectra), a.n))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
