"""Class mapping at scoring time: labels named differently from the model's classes are matched by
name; unmatched classes are listed and left out.  Reference: the same labels written directly in
the model's ids, with the unmatched pixels unlabelled."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from mingraph.acquire.dataset import TileRecord, write_dataset
from mingraph.acquire.simulate import simulate_tile
from mingraph.analyse.classmap import match_classes
from mingraph.analyse.evaluate import evaluate
from mingraph.cli import main
from mingraph.common.errors import InputError
from mingraph.learn.bundle import default_model_path


def test_match_by_name():
    m = match_classes(["quartz", "albite", "calcite"], ["calcite", "pyrite", "quartz"], "x")
    assert m.lut.tolist() == [2, -1, 0] and m.labels_only == ["pyrite"] and m.model_only == ["albite"]
    assert m.to_model(np.array([[0, 1, 2, -1]])).tolist() == [[2, -1, 0, -1]]
    assert any("pyrite" in ln for ln in m.lines())
    with pytest.raises(InputError, match="no class name is shared"):
        match_classes(["a"], ["b"], "x")


@pytest.fixture(scope="module")
def fields():
    out = []
    for seed in (3, 4):
        f = simulate_tile(seed, 40).field(f"t{seed}")
        rr, cc = np.divmod(np.arange(40 * 40), 40)
        cube = f.eds.spectra(rr, cc).reshape(40, 40, -1)
        assert np.array_equal(cube, np.round(cube))
        out.append((f, cube.astype(np.uint16)))
    return out


def _dataset(path, fields, names, relabel):
    recs = [
        TileRecord(f.name, "test", f.bse, f.valid, relabel(f.labels), eds_kind="dense", spectra=cube)
        for f, cube in fields
    ]
    return write_dataset(path, recs, names)


def test_evaluate_maps_dataset_classes_by_name(tmp_path, fields):
    model_names = fields[0][0].class_names
    C = len(model_names)
    common = np.bincount(np.concatenate([f.labels[f.labels >= 0] for f, _ in fields])).argmax()
    # dataset B: the model's classes in reverse order, and the commonest class renamed "mystery"
    names_b = model_names[::-1] + ["mystery"]

    def to_b(lab):
        out = np.where(lab >= 0, C - 1 - lab, -1)
        return np.where(lab == common, C, out)

    def reference(lab):  # the same labels in the model's ids, the mystery pixels unlabelled
        return np.where(lab == common, -1, lab)

    b = _dataset(tmp_path / "b", fields, names_b, to_b)
    ref = _dataset(tmp_path / "ref", fields, model_names, reference)
    kw = dict(fractions=[0.05], progress=False)
    got = evaluate(default_model_path(), b, tmp_path / "eb", **kw)
    want = evaluate(default_model_path(), ref, tmp_path / "er", **kw)
    assert got["classes_left_out"] == ["mystery"] and want["classes_left_out"] == []
    assert got["results"] == want["results"]
    res = CliRunner().invoke(
        main,
        ["evaluate", str(default_model_path()), str(b), "--fractions", "0.05", "--out", str(tmp_path / "ec")],
    )
    assert res.exit_code == 0 and "left out of the scores: ['mystery']" in res.output


def test_predict_scores_labels_named_by_classes(tmp_path, fields):
    f, cube = fields[0]
    names = f.class_names
    tifffile.imwrite(tmp_path / "bse.tif", np.round(f.bse * 65535).astype(np.uint16))
    rc = np.argwhere(f.valid)[::25]
    np.savez(tmp_path / "pts.npz", rc=rc, spectra=cube[rc[:, 0], rc[:, 1]])
    tifffile.imwrite(tmp_path / "lab.tif", f.labels.astype(np.int16))  # the model's ids
    perm = np.random.default_rng(0).permutation(len(names))  # label id k names model class perm[k]
    inv = np.argsort(perm)
    tifffile.imwrite(
        tmp_path / "lab_p.tif", np.where(f.labels >= 0, inv[f.labels.clip(0)], -1).astype(np.int16)
    )
    (tmp_path / "names.json").write_text(json.dumps([names[i] for i in perm]))
    base = ["predict", "--bse", str(tmp_path / "bse.tif"), "--points", str(tmp_path / "pts.npz")]
    r1 = CliRunner().invoke(
        main, base + ["--labels", str(tmp_path / "lab.tif"), "--out", str(tmp_path / "o1")]
    )
    r2 = CliRunner().invoke(
        main,
        base
        + [
            "--labels",
            str(tmp_path / "lab_p.tif"),
            "--classes",
            str(tmp_path / "names.json"),
            "--out",
            str(tmp_path / "o2"),
        ],
    )
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    m1 = json.loads((tmp_path / "o1" / "summary.json").read_text())["metrics"]
    m2 = json.loads((tmp_path / "o2" / "summary.json").read_text())["metrics"]
    assert m1 is not None and m1 == m2 and "F1 (weighted)" in r2.output
