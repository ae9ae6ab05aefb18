"""A TIMA-sized field's whole cost, from its files to its report, in core-seconds, part by part.

The field: a simulated 516² field written as a TESCAN TIMA field folder in "Dots" mode
(``bse.png``, ``pixelmask.png``, ``xray.map`` and the job's ``profile.xml``): a dot every third
pixel and the brightest 2 % of the specimen (TIMA's bright phases), about 35,000 spectra of about
2,000 counts.  Its path is that of ``predict-sample``'s TIMA fields and ``predict``'s outputs:
read the folder (:func:`mingraph.acquire.formats.tima.read_tima_field`), the CNN encoder's class
probabilities of the spectra (the model's point evidence), the candidate graph, the fusion model,
the mineralogy (:func:`mingraph.analyse.mineralogy.process.sample_mineralogy`) and writing every
output of ``predict`` (:func:`mingraph.workflows.predict.run_predict`: phase map, confidence,
overlay, tables, plots, report, workbook, the view's files).

Each part is the process's CPU time (all its threads: core-seconds) in a fresh process, on the
field's second pass (the first, untimed, loads the kernels and warms the caches that a sample's
first field pays once).  Issue 24's target is 1.5 core-s for the whole; the figures are recorded,
and the whole is asserted against a ceiling above what was measured.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from figures import record
from peak_memory import run_script

SIZE = 516
SEED = 11
PARTS = ("read", "embed", "graph", "model", "mineralogy", "writing")


def _xray_map(counts: np.ndarray) -> bytes:
    """A "Dots" X-ray map (HEIGHT 1, one column a spectrum) of integer counts (n, 3000), each
    channel at the smallest bit depth that holds it (docs in mingraph.acquire.formats.tima)."""
    n, ch = counts.shape
    head = b"".join(
        f"{k:<9} {v}".ljust(80).encode() for k, v in (("WIDTH", n), ("HEIGHT", 1), ("NCHANNELS", ch))
    )
    top = counts.max(0)
    depths = np.select([top == 0, top < 2, top < 4, top < 16, top < 256], [0, 1, 2, 4, 8], 16).astype(np.int8)
    planes = []
    for c, d in enumerate(depths.tolist()):
        v = counts[:, c]
        if d == 16:
            planes.append(v.astype("<u2").tobytes())
        elif d == 8:
            planes.append(v.astype(np.uint8).tobytes())
        elif d:
            bits = ((v[:, None].astype(np.uint8) >> np.arange(d, dtype=np.uint8)) & 1).ravel()
            planes.append(np.packbits(bits, bitorder="big" if d == 1 else "little").tobytes())
    return b"Tescan X-ray map" + head + "END".ljust(80).encode() + depths.tobytes() + b"".join(planes)


def _prepare(tmp: Path) -> Path:
    from PIL import Image

    from mingraph.acquire.fields import bse_to_u16
    from mingraph.acquire.simulate import simulate_tile

    tile = simulate_tile(SEED, SIZE)
    dots = np.zeros(tile.bse.shape, bool)
    dots[::3, ::3] = True
    dots |= tile.valid & (tile.bse > np.quantile(tile.bse[tile.valid], 0.98))
    rc = np.argwhere(dots)
    counts = np.rint(tile.eds.spectra(rc[:, 0], rc[:, 1])).astype(np.int64)
    field = tmp / "job" / "1"
    field.mkdir(parents=True)
    Image.fromarray(bse_to_u16(tile.bse)).save(field / "bse.png")
    Image.fromarray(dots.astype(np.uint8) * 255).save(field / "pixelmask.png")
    (field / "xray.map").write_bytes(_xray_map(counts))
    (field.parent / "profile.xml").write_text(
        '<JobProfile mode="Dots"><AcquisitionProfile><PixelSpacing>3</PixelSpacing>'
        "<DotSpacing>9</DotSpacing><MinBse>15</MinBse><MaxBse>100</MaxBse></AcquisitionProfile>"
        f"<FieldProfile><FieldWidth>{3 * SIZE}</FieldWidth></FieldProfile></JobProfile>"
    )
    return field


def _measure(field: str, out: str) -> dict:
    """In the subprocess: the field twice; the second pass's core-seconds, part by part."""
    import mingraph.analyse.mineralogy.tables as tables
    import mingraph.learn.fusion_model as fusion_model
    from mingraph.acquire.fields import Field
    from mingraph.acquire.formats.points import spectra_at_points
    from mingraph.acquire.formats.tima import read_tima_field
    from mingraph.learn.bundle import load_model, point_features
    from mingraph.workflows.predict import check_points, library_densities, run_predict

    spent = {"graph": 0.0, "mineralogy": 0.0}

    def timed(mod, name: str, part: str) -> None:
        fn = getattr(mod, name)

        def wrapper(*a, **k):
            c = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                spent[part] += time.process_time() - c

        setattr(mod, name, wrapper)

    timed(fusion_model, "build_candidate_graph", "graph")
    timed(tables, "sample_mineralogy", "mineralogy")
    bundle = load_model(None)

    def one(dest: Path) -> dict:
        for k in spent:
            spent[k] = 0.0
        c0 = time.process_time()
        d = read_tima_field(field)
        rc = check_points(d["rc"], d["bse"].shape, field)
        eds = spectra_at_points(rc, d["spectra"], d["bse"].shape, field)
        sample = Field(d["bse"], d["valid"], None, bundle.class_names, d["pixel_size_um"], eds)
        c1 = time.process_time()
        emb = point_features(bundle, d["spectra"])
        c2 = time.process_time()
        seconds = {}

        import mingraph.workflows.predict as predict

        inner = predict.predict_field

        def predict_field(*a, **k):
            c = time.process_time()
            try:
                return inner(*a, **k)
            finally:
                seconds["predict"] = time.process_time() - c

        predict.predict_field = predict_field
        try:
            run_predict(
                dest,
                sample,
                bundle,
                rc,
                emb,
                {"input": field},
                True,
                1024,
                library_densities(bundle.class_names),
                False,
            )
        finally:
            predict.predict_field = inner
        c3 = time.process_time()
        parts = {
            "read": c1 - c0,
            "embed": c2 - c1,
            "graph": spent["graph"],
            "model": seconds["predict"] - spent["graph"],
            "mineralogy": spent["mineralogy"],
            "writing": (c3 - c2) - seconds["predict"] - spent["mineralogy"],
        }
        return parts | {"total": c3 - c0, "spectra": len(rc), "pixels": int(d["bse"].size)}

    first = one(Path(out) / "first")
    second = one(Path(out) / "second")
    return second | {"first_total": first["total"]}


def test_tima_field_whole_cost(benchmark, tmp_path):
    field = _prepare(tmp_path)
    res = benchmark.pedantic(
        run_script, args=(__file__, str(field), str(tmp_path / "out")), rounds=1, iterations=1
    )
    benchmark.extra_info.update(res)
    print(
        f"\nTIMA-sized field ({SIZE}², {res['spectra']} spectra): {res['total']:.2f} core-s "
        f"(first pass {res['first_total']:.2f}): " + ", ".join(f"{k} {res[k]:.2f}" for k in PARTS)
    )
    for k in PARTS:
        record(f"tima_field.part.{k}", res[k], "s", share=res[k] / res["total"], spectra=res["spectra"])
    # measured 12.5 core-s at load 10 on 2 shared cores (17.0 before this branch's cuts to reading
    # and writing; issue 24's target 1.5): CPU time grows with the load, so the ceiling is loose
    record(
        "tima_field.total_core_seconds",
        res["total"],
        "s",
        peer="issue 24's target",
        peer_value=1.5,
        ratio="value/peer",
        ceiling=14.0,
        first_pass=res["first_total"],
        spectra=res["spectra"],
    )


if __name__ == "__main__":
    print(json.dumps(_measure(sys.argv[1], sys.argv[2])))
