"""Datasets of many fields: append, manifest, splits by field, classes merged by name, point
spectra stored sparse, and the command-line path from files to scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from mingraph.acquire.collection import dataset_info, read_class_map
from mingraph.acquire.dataset import open_dataset
from mingraph.acquire.importing import import_field, split_of_name
from mingraph.cli import main
from mingraph.common.errors import InputError


def _field(d, stem, labels, names=None, n_points=0, seed=0, channels=3000, calib=None):
    """Files of one field: BSE TIFF, label TIFF, class names, and optionally point spectra."""
    rng = np.random.default_rng(seed)
    h, w = labels.shape
    tifffile.imwrite(d / f"{stem}_bse.tif", rng.integers(0, 65535, (h, w)).astype(np.uint16))
    tifffile.imwrite(d / f"{stem}_labels.tif", labels.astype(np.uint16))
    out = {"bse": d / f"{stem}_bse.tif", "labels": d / f"{stem}_labels.tif"}
    if names is not None:
        (d / f"{stem}_classes.json").write_text(json.dumps(names))
        out["classes"] = d / f"{stem}_classes.json"
    if n_points:
        flat = rng.choice(h * w, n_points, replace=False)
        rc = np.stack(np.divmod(flat, w), axis=1)
        sp = rng.poisson(2.0, (n_points, channels)).astype(np.uint16)
        np.savez(d / f"{stem}_points.npz", rc=rc, spectra=sp, **(calib or {}))
        out.update(points=d / f"{stem}_points.npz", rc=rc, spectra=sp)
    return out


def test_append_merges_classes_by_name_and_keeps_earlier_fields(tmp_path):
    a = _field(tmp_path, "a", np.array([[0, 1], [1, 0]]), ["quartz", "albite"], n_points=3, seed=1)
    b = _field(tmp_path, "b", np.array([[0, 1], [-1, 1]]).clip(0), ["albite", "calcite"], n_points=2, seed=2)
    ds_path = tmp_path / "ds"
    import_field(ds_path, a["bse"], a["labels"], classes=a["classes"], points=a["points"], split="train")
    import_field(ds_path, b["bse"], b["labels"], classes=b["classes"], points=b["points"], split="val")
    ds = open_dataset(ds_path)
    assert ds.class_names == ["quartz", "albite", "calcite"] and ds.splits == ["train", "val"]
    fa, fb = ds.field(0), ds.field(1)
    assert np.array_equal(fa.labels, [[0, 1], [1, 0]])  # ids of the first field unchanged
    assert np.array_equal(fb.labels, [[1, 2], [1, 2]])  # albite -> 1, calcite -> 2
    # the first field's point spectra survive the append, exactly, and only measured pixels answer
    got = fa.eds.spectra(a["rc"][:, 0], a["rc"][:, 1])
    assert np.array_equal(got, a["spectra"].astype(np.float32))
    assert np.array_equal(fa.eds_mask, fa.eds.measured_mask) and fa.eds_mask.sum() == 3
    free = np.argwhere(~fa.eds_mask)[0]
    with pytest.raises(InputError, match="no spectrum was measured at pixel"):
        fa.eds.spectra(free[:1], free[1:])
    # a second field of the same name is refused and the dataset is unchanged
    before = (ds_path / "tiles.parquet").read_bytes()
    with pytest.raises(InputError, match="already in"):
        import_field(ds_path, b["bse"], b["labels"], classes=b["classes"])
    assert (ds_path / "tiles.parquet").read_bytes() == before


def test_class_map_renames_and_merges(tmp_path):
    f = _field(tmp_path, "c", np.array([[0, 1, 2]]), ["Qtz", "Ab", "Olig"])
    (tmp_path / "map.csv").write_text("old,new\nQtz,quartz\nAb,plagioclase\nOlig,plagioclase\nCal,calcite\n")
    assert read_class_map(tmp_path / "map.csv")["Olig"] == "plagioclase"
    lines = []
    import_field(
        tmp_path / "ds",
        f["bse"],
        f["labels"],
        classes=f["classes"],
        class_map=tmp_path / "map.csv",
        say=lines.append,
    )
    ds = open_dataset(tmp_path / "ds")
    assert ds.class_names == ["quartz", "plagioclase"]
    assert np.array_equal(ds.field(0).labels, [[0, 1, 1]])
    assert any("['Cal']" in ln for ln in lines)  # an unused entry is said, not ignored
    (tmp_path / "bad.json").write_text('{"a": 3}')
    with pytest.raises(InputError, match="bad.json: class map"):
        read_class_map(tmp_path / "bad.json")


def test_split_by_field_is_seeded_stable_and_near_80_10_10():
    names = [f"field-{i}" for i in range(3000)]
    splits = [split_of_name(n, seed=7) for n in names]
    assert splits == [split_of_name(n, seed=7) for n in names]
    frac = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert abs(frac["train"] - 0.8) < 0.03 and abs(frac["val"] - 0.1) < 0.02
    assert splits != [split_of_name(n, seed=8) for n in names]


def test_manifest_and_dataset_info(tmp_path):
    fields = [_field(tmp_path, f"m{i}", np.full((3, 4), i % 2), n_points=4, seed=i) for i in range(3)]
    rows = ["bse,labels,points,split,name"] + [
        f"{f['bse'].name},{f['labels'].name},{f['points'].name},{s},f{i}"
        for i, (f, s) in enumerate(zip(fields, ["train", "train", ""]))
    ]
    (tmp_path / "fields.csv").write_text("\n".join(rows) + "\n")
    res = CliRunner().invoke(
        main, ["import", str(tmp_path / "ds"), "--manifest", str(tmp_path / "fields.csv")]
    )
    assert res.exit_code == 0, res.output
    ds = open_dataset(tmp_path / "ds")
    assert ds.tile_ids == ["f0", "f1", "f2"] and ds.splits[:2] == ["train", "train"]
    assert ds.splits[2] == split_of_name("f2", 0)
    text = dataset_info(tmp_path / "ds")
    assert "3 fields" in text and "points 4" in text
    # class rows: labelled pixels per split, counted by hand (field i is all class i % 2, 12 px)
    train_px = {0: 12 + 12 * (ds.splits[2] == "train"), 1: 12}
    for k in (0, 1):
        row = next(ln for ln in text.splitlines() if ln.startswith(f"phase {k} "))
        assert int(row.split()[3]) == train_px[k]
    (tmp_path / "bad.csv").write_text("bse,colour\nx.tif,red\n")
    res = CliRunner().invoke(main, ["import", str(tmp_path / "ds2"), "--manifest", str(tmp_path / "bad.csv")])
    assert res.exit_code == 2 and "unknown ['colour']" in res.output


def test_point_spectra_with_their_own_calibration_are_rebinned(tmp_path):
    f = _field(
        tmp_path,
        "p",
        np.zeros((4, 4)),
        n_points=5,
        channels=2048,
        calib={"offset_ev": -470.0, "channel_ev": 10.0},
    )
    lines = []
    import_field(tmp_path / "ds", f["bse"], points=f["points"], say=lines.append)
    s = open_dataset(tmp_path / "ds").field(0)
    got = s.eds.spectra(f["rc"][:, 0], f["rc"][:, 1])
    assert np.array_equal(got[:, : 2048 - 47], f["spectra"][:, 47:])  # whole channels: moved by 47
    assert any("rebinned" in ln for ln in lines)
    # the sparse store is far smaller than the dense (n, 3000) spectra
    stored = next((tmp_path / "ds" / "points").iterdir())
    with np.load(stored) as z:
        assert set(z.files) == {"rc", "ptr", "channel", "count"}


def test_bad_point_files(tmp_path):
    f = _field(tmp_path, "q", np.zeros((4, 4)), n_points=3)
    rc, sp = f["rc"].copy(), f["spectra"]
    rc[1] = rc[0]
    np.savez(tmp_path / "dup.npz", rc=rc, spectra=sp)
    with pytest.raises(InputError, match="dup.npz: rc: pixel .* more than one spectrum"):
        import_field(tmp_path / "a", f["bse"], points=tmp_path / "dup.npz")
    np.savez(tmp_path / "out.npz", rc=rc + 10, spectra=sp)
    with pytest.raises(InputError, match="outside the 4x4 image"):
        import_field(tmp_path / "b", f["bse"], points=tmp_path / "out.npz")
    np.savez(tmp_path / "short.npz", rc=f["rc"], spectra=sp[:, :100])
    with pytest.raises(InputError, match="100 channels but no calibration"):
        import_field(tmp_path / "c", f["bse"], points=tmp_path / "short.npz")
    assert not any((tmp_path / x).exists() for x in "abc")


def test_empty_training_split_is_named(tmp_path):
    f = _field(tmp_path, "t", np.zeros((4, 4)), n_points=3)
    import_field(tmp_path / "ds", f["bse"], f["labels"], points=f["points"], split="test")
    res = CliRunner().invoke(
        main, ["fit-encoder", str(tmp_path / "ds"), str(tmp_path / "e.pt"), "--kind", "pca"]
    )
    assert res.exit_code == 2 and "no field in the train split (train 0, val 0, test 1)" in res.output


def test_files_to_scores_from_the_command_line(tmp_path):
    """Labelled fields with point spectra (simulated, written as an instrument would) through
    import, dataset info, fit-encoder, build-graphs --pattern mask, train and evaluate."""
    from mingraph.acquire.sampling import sample_points
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.graphs.shards import open_shards

    rows, measured = ["bse,labels,points,split,name"], {}
    for i in range(4):
        f = simulate_tile(40 + i, 48).field(f"f{i}")
        tifffile.imwrite(tmp_path / f"{i}_bse.tif", np.round(f.bse * 65535).astype(np.uint16))
        tifffile.imwrite(tmp_path / f"{i}_lab.tif", f.labels.astype(np.int16))
        rc = sample_points(f.valid, 0.05, "grid", np.random.default_rng(i))
        np.savez(
            tmp_path / f"{i}_pts.npz", rc=rc, spectra=f.eds.spectra(rc[:, 0], rc[:, 1]).astype(np.uint16)
        )
        measured[f"f{i}"] = rc
        rows.append(f"{i}_bse.tif,{i}_lab.tif,{i}_pts.npz,{['train', 'train', 'val', 'test'][i]},f{i}")
    (tmp_path / "fields.csv").write_text("\n".join(rows) + "\n")
    json.dump(f.class_names, open(tmp_path / "classes.json", "w"))

    def ok(*args):
        res = CliRunner().invoke(main, [str(a) for a in args])
        assert res.exit_code == 0, res.output
        return res.output

    ds, enc, sh = tmp_path / "ds", tmp_path / "enc.pt", tmp_path / "sh"
    ok("import", ds, "--manifest", tmp_path / "fields.csv", "--classes", tmp_path / "classes.json")
    assert "4 fields (train 2, val 1, test 1)" in ok("dataset", "info", ds)
    ok("fit-encoder", ds, enc, "--kind", "cnn", "--epochs", "1")  # a classifier: every baseline runs
    ok("build-graphs", ds, sh, "--pattern", "mask", "--fractions", "0.05", "--encoder", enc)
    idx = open_shards(sh)
    for k in range(len(idx)):  # exactly the measured points, no more, no fewer
        info, g = idx.info(k), idx.graph(k)
        assert np.array_equal(np.sort(g.eds_rc, axis=0), np.sort(measured[info["tile_id"]], axis=0))
    ok("train", sh, "--out", tmp_path / "run", "--epochs", "1")
    out = ok(
        "evaluate", tmp_path / "run", ds, "--pattern", "mask", "--fractions", "0.05", "--out", tmp_path / "ev"
    )
    assert "GAT" in out and (tmp_path / "ev" / "metrics.json").is_file()
    # the baselines tune and fit on the measured points too (no spectrum exists elsewhere)
    for method in ("nearest EDS", "geodesic nearest EDS", "BSE-segment vote", "learnt candidate pick"):
        assert method in out


def test_point_spectra_lookup_matches_the_dense_spectra(tmp_path):
    from mingraph.acquire.formats.points import load_points, save_points

    rng = np.random.default_rng(9)
    rc = np.argwhere(rng.random((30, 20)) < 0.2)
    dense = (rng.random((rc.shape[0], 3000)) < 0.01) * rng.integers(1, 500, (rc.shape[0], 3000))
    dense[3] = 0  # a spectrum with no counts at all
    save_points(tmp_path / "p.npz", rc, dense.astype(np.uint16))
    src = load_points(tmp_path / "p.npz", (30, 20), "p")
    pick = rng.integers(0, rc.shape[0], 200)  # in any order, with repeats
    assert np.array_equal(src.spectra(rc[pick, 0], rc[pick, 1]), dense[pick].astype(np.float32))
    assert src.spectra(np.zeros(0, int), np.zeros(0, int)).shape == (0, 3000)
