"""predict-sample's sample.ome.zarr: the memory of writing 100 fields, and the cost of a field's write
against the field's prediction (the figures behind docs/performance.md, "The sample as OME-Zarr").

* memory: a 10×10 sample of 512² fields (32 px overlap, a 4,832² px mosaic) whose field folders
  hold the files a predicted field leaves (phase_map.tif, bse.tif, confidence.tif; smooth maps
  that compress as real ones do), written into a new store one field at a time as predict-sample's
  driver does (``workflows.sample_results.write_field_to_zarr``).  The peak RSS of that loop, in a
  fresh process, must stay within two fields' arrays (int16 phase map, float32 BSE and confidence:
  10 bytes a pixel) plus :data:`CONSTANT_B` (zarr's chunk buffers and codecs); the whole mosaic
  would take 50× more.
* cost: the median wall and CPU time of one field's write, against ``predict_field`` on a
  simulated 512² field at 1 % EDS (predict-sample's default) in the same run.

Printed as JSON lines (``pytest bench/test_bench_sample_zarr.py -s``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from figures import record, require
from peak_memory import peak_during, run_script

GRID, SIZE, OVERLAP = (10, 10), 512, 32
CONSTANT_B = 16 * 2**20
FIELD_BYTES = SIZE * SIZE * (2 + 4 + 4)


def _prepare(folder: Path) -> Path:
    """A predict-sample OUT with GRID fields' files (no model run): the sample is a simulated one's
    layout, the maps are smooth random fields."""
    import tifffile
    from scipy import ndimage

    from mingraph.acquire.fields import bse_to_u16
    from mingraph.analyse.mineralogy.phasemap import write_phase_map

    rng = np.random.default_rng(0)
    for k in range(GRID[0] * GRID[1]):
        d = folder / "fields" / f"field-{k:03d}"
        d.mkdir(parents=True)
        noise = ndimage.gaussian_filter(rng.normal(size=(4, SIZE, SIZE)), (0, 6, 6))
        write_phase_map(d / "phase_map.tif", noise.argmax(0), np.eye(4, 3), 2.0)
        bse = (0.5 + noise[0] * 2).clip(0, 1).astype(np.float32)
        tifffile.imwrite(d / "bse.tif", bse_to_u16(bse), compression="zlib")
        tifffile.imwrite(d / "confidence.tif", np.abs(noise[1] * 3).clip(0, 1).astype(np.float32), compression="zlib")  # fmt: skip
    return folder


def _fields():
    from mingraph.acquire.sample import FieldSpec

    step = SIZE - OVERLAP
    cols = GRID[1]
    return [
        FieldSpec(k, f"field-{k:03d}", "files", "-", (SIZE, SIZE), ((k // cols) * step, (k % cols) * step))
        for k in range(GRID[0] * GRID[1])
    ]


def _write(folder: str) -> dict:
    """In the subprocess: write every field into a new store; peak RSS and time a field."""
    from mingraph.acquire.sample import Sample
    from mingraph.workflows.sample_results import finish_sample_zarr, open_sample_zarr, write_field_to_zarr

    out = Path(folder)
    fields = _fields()
    sample = Sample(out, "manifest", fields, 2.0, True)
    names = ["a", "b", "c", "d"]
    root = open_sample_zarr(out, sample, names, np.eye(4, 3))
    walls, cpus = [], []

    def loop():
        for f in fields:
            t, c = time.perf_counter(), time.process_time()
            write_field_to_zarr(root, out, f, fields, len(names))
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)

    peak, secs, _ = peak_during(loop)
    finish_sample_zarr(out, root)
    return {
        "peak_bytes": peak,
        "seconds": secs,
        "wall_s_per_field": float(np.median(walls)),
        "cpu_s_per_field": float(np.median(cpus)),
        "mosaic_px": list(sample.shape_px),
    }


def _predict() -> dict:
    """In the subprocess: predict_field on a simulated 512² field at 1 % (the second of two)."""
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.learn.bundle import load_model
    from mingraph.workflows.predict import measure_points, predict_field

    bundle = load_model(None)
    for seed in (0, 1):  # the first warms the caches and the compilers
        f = simulate_tile(seed, SIZE).field()
        rc, emb = measure_points(f, bundle, 0.01, "random", seed)
        t, c = time.perf_counter(), time.process_time()
        predict_field(bundle, f.bse, f.valid, rc, emb, progress=False)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"wall_s": wall, "cpu_s": cpu, "points": len(rc)}


def test_writing_100_fields_stays_within_two_fields(tmp_path):
    import os

    w = run_script(__file__, "write", str(_prepare(tmp_path / "out")))
    p = run_script(__file__, "predict")
    mosaic_bytes = w["mosaic_px"][0] * w["mosaic_px"][1] * 10
    print(json.dumps({"bench": "sample-zarr", "fields": GRID[0] * GRID[1], "field_px": SIZE, **w,
                      "predict_512": p, "two_fields_bytes": 2 * FIELD_BYTES, "mosaic_bytes": mosaic_bytes,
                      "load_average": os.getloadavg()}))  # fmt: skip
    assert (tmp_path / "out" / "sample.ome.zarr" / "labels" / "phases" / "0").is_dir()
    require(
        # the write path holds one field at a time: peak RSS within 2 fields' arrays + the constant
        record(
            "sample_zarr.write_100x512.peak_memory",
            w["peak_bytes"],
            "B",
            peer="two fields' arrays + 16 MiB",
            peer_value=2 * FIELD_BYTES + CONSTANT_B,
            floor=1.0,
            check=False,
            mosaic_bytes=mosaic_bytes,
        ),
        # recorded only: a field's write against its prediction (CPU seconds)
        record(
            "sample_zarr.write_512.cpu_s_per_field",
            w["cpu_s_per_field"],
            "s",
            peer="predict_field, 512² at 1 %",
            peer_value=p["cpu_s"],
            ratio="value/peer",
            check=False,
            wall_s=w["wall_s_per_field"],
            peer_wall_s=p["wall_s"],
        ),
    )


if __name__ == "__main__":
    res = _write(sys.argv[2]) if sys.argv[1] == "write" else _predict()
    print(json.dumps(res))
