"""predict-sample's sample.ome.zarr: read back by ome_zarr level by level, it equals the stitched
full-resolution mosaic taken every 2**l-th pixel; its NGFF 0.4 metadata; any order of fields gives
the same store; a killed run resumed gives the store of an uninterrupted one; a folder mingraph
did not write is never replaced.

The reference, at level l: each field's owned pixels stitched at full resolution
(:func:`mingraph.analyse.mosaic.stitch` at step 1), then ``[::2**l, ::2**l]``.  The chunks and
the coarsest level are made small here so that small fields share chunks and make several levels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from test_predict_sample import kill_after_fields

from mingraph.acquire.sample import FieldSpec, open_sample, owned_mask, simulate_sample
from mingraph.analyse import sample_zarr
from mingraph.analyse.mosaic import NO_FIELD, stitch, thumbnail
from mingraph.common.errors import InputError
from mingraph.workflows.sample import predict_sample

GRID, SIZE, OVERLAP = (3, 4), 64, 8
SMALL = {"CHUNK_PX": 40, "COARSEST_PX": 40}  # 3x4 fields of 64² (184x232 px): 4 levels, shared chunks


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    for k, v in SMALL.items():
        monkeypatch.setattr(sample_zarr, k, v)


def read_levels(path: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[dict]]:
    """(image levels (2, h, w), label levels (h, w), [image metadata, label metadata]) by ome_zarr."""
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    nodes = list(Reader(parse_url(str(path), fmt=FormatV04()))())
    image = next(n for n in nodes if n.load(Multiscales) and not n.load(Label))
    label = next(n for n in nodes if n.load(Label))
    return (
        [np.asarray(d) for d in image.data],
        [np.asarray(d) for d in label.data],
        [image.metadata, label.metadata],
    )


def reference(fields: list[FieldSpec], arrays: list[dict], shape_px) -> dict[str, np.ndarray]:
    """The stitched full-resolution mosaic: {labels int16 (NO_FIELD), bse, confidence (NaN)}."""
    origins = [f.origin_px for f in fields]
    owned = [owned_mask(fields, f.index) for f in fields]
    lab, bse = stitch(
        [thumbnail(a["labels"], a["bse"], o, 1) for a, o in zip(arrays, owned)], origins, shape_px, 1
    )
    _, conf = stitch([thumbnail(a["labels"], a["confidence"], o, 1) for a, o in zip(arrays, owned)], origins, shape_px, 1)  # fmt: skip
    return {"labels": lab, "bse": bse, "confidence": conf}


def assert_equals_reference(path: Path, ref: dict, pixel_size_um: float) -> int:
    images, labels, (meta, label_meta) = read_levels(path)
    assert len(images) == len(labels) == len(sample_zarr.level_shapes(ref["labels"].shape)) > 1
    for level, (img, lab) in enumerate(zip(images, labels)):
        s = 2**level
        np.testing.assert_array_equal(lab, ref["labels"][::s, ::s], err_msg=f"phases, level {level}")
        np.testing.assert_array_equal(img[0], ref["bse"][::s, ::s], err_msg=f"BSE, level {level}")
        np.testing.assert_array_equal(
            img[1], ref["confidence"][::s, ::s], err_msg=f"confidence, level {level}"
        )
        for m, unit_axes in ((meta, [1.0]), (label_meta, [])):
            assert m["coordinateTransformations"][level] == [
                {"type": "scale", "scale": unit_axes + [pixel_size_um * s] * 2}
            ]
    return len(images)


def check_ngff(path: Path, class_names, pixel_size_um: float) -> None:
    import json

    root = json.loads((path / ".zattrs").read_text())
    ms = root["multiscales"][0]
    assert ms["version"] == "0.4"
    assert ms["axes"] == [
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    assert [c["label"] for c in root["omero"]["channels"]] == ["BSE", "confidence"]
    assert json.loads((path / "labels" / ".zattrs").read_text())["labels"] == ["phases"]
    lab = json.loads((path / "labels" / "phases" / ".zattrs").read_text())
    assert lab["multiscales"][0]["version"] == "0.4"
    assert [a["unit"] for a in lab["multiscales"][0]["axes"]] == ["micrometer"] * 2
    il = lab["image-label"]
    assert il["version"] == "0.4" and il["source"] == {"image": "../../"}
    names = {p["label-value"]: p["name"] for p in il["properties"]}
    assert names == {**dict(enumerate(class_names)), -1: "unclassified", NO_FIELD: "no field"}
    assert {c["label-value"] for c in il["colors"]} == set(names)
    assert json.loads((path / "0" / ".zarray").read_text())["dimension_separator"] == "/"


def _synthetic(seed=0):
    """Fields at origins that are not multiples of any stride (overlaps split by nearest centre)."""
    rng = np.random.default_rng(seed)
    origins = [(0, 0), (0, 53), (45, 7), (47, 61), (3, 110)]
    fields = [FieldSpec(i, f"f{i}", "files", "-", (70, 66), o) for i, o in enumerate(origins)]
    arrays = [
        {
            "labels": rng.integers(-1, 5, (70, 66)).astype(np.int16),
            "bse": rng.random((70, 66), dtype=np.float32),
            "confidence": rng.random((70, 66), dtype=np.float32),
        }
        for _ in fields
    ]
    return fields, arrays


def test_any_order_of_fields_gives_the_stitched_mosaic_at_each_level(tmp_path):
    fields, arrays = _synthetic()
    shape = (max(f.origin_px[0] + 70 for f in fields), max(f.origin_px[1] + 66 for f in fields))
    ref = reference(fields, arrays, shape)
    for k, order in enumerate(([0, 1, 2, 3, 4], [4, 2, 0, 3, 1])):
        path = tmp_path / f"o{k}.ome.zarr"
        names = ["quartz", "albite", "pyrite", "galena", "calcite"]
        root = sample_zarr.create_store(path, shape, 1.5, names, np.eye(5, 3), [f.name for f in fields])
        for i in order:
            a = arrays[i]
            owned = owned_mask(fields, i)
            sample_zarr.write_field_region(
                root, fields[i].origin_px, a["labels"], a["bse"], a["confidence"], owned
            )
            sample_zarr.mark_written(root, fields[i].name)
        assert sample_zarr.fields_written(root) == [fields[i].name for i in order]
        assert assert_equals_reference(path, ref, 1.5) == 4
        check_ngff(path, names, 1.5)


def test_a_hundred_fields_in_random_order(tmp_path):
    """100 fields of 30² (10×10, 5 px overlap), written in a random order: every level is the
    stitched mosaic's (the store alone; predict-sample's 100-field run is in docs/performance.md)."""
    rng = np.random.default_rng(7)
    fields = [
        FieldSpec(k, f"f{k}", "files", "-", (30, 30), ((k // 10) * 25, (k % 10) * 25)) for k in range(100)
    ]
    arrays = [
        {
            "labels": rng.integers(-1, 3, (30, 30)).astype(np.int16),
            "bse": rng.random((30, 30), dtype=np.float32),
            "confidence": rng.random((30, 30), dtype=np.float32),
        }
        for _ in fields
    ]
    shape = (255, 255)
    root = sample_zarr.create_store(tmp_path / "s.ome.zarr", shape, 2.0, ["a", "b", "c"], np.eye(3), [])
    for i in rng.permutation(100):
        a = arrays[i]
        sample_zarr.write_field_region(
            root, fields[i].origin_px, a["labels"], a["bse"], a["confidence"], owned_mask(fields, i)
        )
    assert assert_equals_reference(tmp_path / "s.ome.zarr", reference(fields, arrays, shape), 2.0) == 4


def _field_arrays(out: Path, sample) -> list[dict]:
    """Each field's full-resolution maps: BSE from the dataset (what the model saw), the phase map
    and confidence from the field's folder."""
    from mingraph.acquire.dataset import open_dataset

    ds = open_dataset(sample.path)
    res = []
    for f in sample.fields:
        ids = tifffile.imread(out / "fields" / f.name / "phase_map.tif")
        res.append(
            {
                "labels": np.where(ids == 255, np.int16(-1), ids.astype(np.int16)),
                "bse": ds.field(ds.find(f.tile)).bse.astype(np.float32),
                "confidence": tifffile.imread(out / "fields" / f.name / "confidence.tif"),
            }
        )
    return res


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        for k, v in SMALL.items():
            mp.setattr(sample_zarr, k, v)
        d = tmp_path_factory.mktemp("zarr")
        simulate_sample(d / "smp", GRID, SIZE, OVERLAP, seed=3)
        res = predict_sample(d / "smp", d / "out", workers=0, progress=False)
    return d, res


def test_predict_sample_writes_the_stitched_maps_as_ome_zarr(run):
    d, res = run
    s = open_sample(d / "smp")
    store = d / "out" / "sample.ome.zarr"
    assert res["zarr"] == store and store.is_dir() and not (d / "out" / ".sample.ome.zarr.partial").exists()
    ref = reference(s.fields, _field_arrays(d / "out", s), s.shape_px)
    assert (ref["labels"] != NO_FIELD).all() and (ref["labels"] == -1).any()  # covered; some unclassified
    assert assert_equals_reference(store, ref, s.pixel_size_um) == 4
    from mingraph.learn.bundle import load_model

    check_ngff(store, load_model(None).class_names, s.pixel_size_um)
    assert (store / ".mingraph.json").is_file()
    # run again: everything is written, the store is kept as it is
    before = (store / ".zattrs").stat().st_mtime_ns
    again = predict_sample(d / "smp", d / "out", workers=0, progress=False)
    assert again["predicted"] == 0 and (store / ".zattrs").stat().st_mtime_ns == before


def _same_store(a: Path, b: Path) -> None:
    ia, la, _ = read_levels(a)
    ib, lb, _ = read_levels(b)
    assert len(ia) == len(ib) and len(la) == len(lb)
    for x, y in zip(la, lb):  # the phase map: exactly
        np.testing.assert_array_equal(x, y)
    for x, y in zip(ia, ib):  # BSE exactly; the confidence of a field predicted again in another
        np.testing.assert_array_equal(x[0], y[0])  # process within 1e-5 (float32 reductions'
        np.testing.assert_allclose(x[1], y[1], rtol=0, atol=1e-5)  # order; seen 1.3e-6), as the field TIFFs


def test_a_killed_run_resumed_completes_the_store(run):
    """Killed (SIGKILL) after a few fields: the store stays under its temporary name; the resumed
    run writes the fields it lacks and the store equals the uninterrupted run's."""
    d, _ = run
    out = d / "killed"
    code = (
        "import sys; from mingraph.analyse import sample_zarr as z; z.CHUNK_PX = z.COARSEST_PX = 40; "
        "from mingraph.cli import main; sys.argv[0] = 'mingraph'; main()"
    )
    kill_after_fields(["-c", code], d / "smp", out, 4)
    assert not (out / "sample.ome.zarr").exists() and (out / ".sample.ome.zarr.partial").is_dir()
    import zarr

    assert len(sample_zarr.fields_written(zarr.open_group(str(out / ".sample.ome.zarr.partial")))) < 12
    res = predict_sample(d / "smp", out, workers=0, progress=False)
    assert res["predicted"] < 12
    _same_store(out / "sample.ome.zarr", d / "out" / "sample.ome.zarr")


def test_an_interrupted_driver_resumes_from_the_recorded_fields(run, tmp_path, monkeypatch):
    """A run stopped in this process after 5 fields were written: the resumed run writes the 7
    others (each once) and the store equals the uninterrupted run's."""
    d, _ = run
    seen = []

    def stop(i, info):
        seen.append(i)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_sample(d / "smp", tmp_path / "out", workers=0, progress=False, on_field=stop)
    import zarr

    part = tmp_path / "out" / ".sample.ome.zarr.partial"
    assert len(sample_zarr.fields_written(zarr.open_group(str(part)))) == 5
    calls = []
    orig = sample_zarr.write_field_region
    monkeypatch.setattr(
        sample_zarr, "write_field_region", lambda root, o, *a: (calls.append(o), orig(root, o, *a))
    )
    predict_sample(d / "smp", tmp_path / "out", workers=0, progress=False)
    assert len(calls) == 7 == len(set(calls))
    _same_store(tmp_path / "out" / "sample.ome.zarr", d / "out" / "sample.ome.zarr")


def test_a_store_mingraph_did_not_write_is_never_replaced(run, tmp_path):
    d, _ = run
    import shutil

    shutil.copytree(d / "out", tmp_path / "out")  # the finished run, its store replaced by a stranger's
    shutil.rmtree(tmp_path / "out" / "sample.ome.zarr")
    (tmp_path / "out" / "sample.ome.zarr").mkdir()
    (tmp_path / "out" / "sample.ome.zarr" / "mine.txt").write_text("not mingraph's")
    with pytest.raises(InputError, match="sample.ome.zarr: was not written by mingraph"):
        predict_sample(d / "smp", tmp_path / "out", workers=0, progress=False)
    assert (tmp_path / "out" / "sample.ome.zarr" / "mine.txt").read_text() == "not mingraph's"
