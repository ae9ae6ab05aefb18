"""evaluate with a model whose classes are not the dataset's (issue 22): every method's classes are
matched by name, the classical baselines' tuning and scores and the candidate pick's fit included.

The shipped model knows 50 minerals; the dataset here names 16 classes, 15 of those minerals in
another order and one class the model lacks.  References: the same scores computed by brute force
over class *names*, and the evaluation of the very same fields stored with the model's own class
list (where no id needs translating)."""

from __future__ import annotations

import numpy as np
import pytest

from mingraph.acquire.dataset import TileRecord, open_dataset, write_dataset
from mingraph.acquire.simulate import simulate_tile
from mingraph.acquire.simulate.eds import SimulatedEds
from mingraph.acquire.simulate.minerals import class_names
from mingraph.analyse.evaluate import EVAL_SEED, evaluate
from mingraph.analyse.shared_points import point_class_lut
from mingraph.graphs.build import field_graph
from mingraph.learn.bundle import default_model_path, load_bundle
from mingraph.learn.classical import geodesic_nearest_eds, segment_vote
from mingraph.spectra.encoder import Encoder, classify

SIZE = 32
SPLITS = ["train", "train", "val", "val", "test", "test"]
UNKNOWN = "unnamed phase"  # a class of the dataset that the model does not know
FRACTION = 0.05


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """(16-class dataset, the same fields with the library's 50 classes) and the 16 names."""
    tmp = tmp_path_factory.mktemp("classes")
    lib = class_names()
    tiles = [simulate_tile(2000 + i, SIZE) for i in range(len(SPLITS))]
    counts = np.bincount(np.concatenate([t.labels[t.labels >= 0] for t in tiles]), minlength=len(lib))
    in_test = np.unique(
        np.concatenate([t.labels[t.labels >= 0] for t, s in zip(tiles, SPLITS) if s == "test"])
    )
    left = int(in_test[np.argmin(counts[in_test])])  # a mineral of the test fields that becomes UNKNOWN
    order = [int(i) for i in np.argsort(-counts, kind="stable") if i != left]
    common = order[:15][::-1]  # not the library's order
    names = [lib[i] for i in common] + [UNKNOWN]
    lut16 = np.full(len(lib), len(names) - 1)  # every other mineral: the class the model lacks
    lut16[common] = np.arange(15)
    recs16, recs50 = [], []
    r, c = np.mgrid[:SIZE, :SIZE]
    for i, (t, split) in enumerate(zip(tiles, SPLITS)):
        eds = SimulatedEds(t.labels, int(t.seed), t.eds_params)
        spectra = eds.spectra(r.ravel(), c.ravel()).reshape(SIZE, SIZE, -1).astype(np.float32)
        lab16 = np.where(t.labels >= 0, lut16[np.clip(t.labels, 0, None)], -1)
        lab50 = np.where(lab16 == len(names) - 1, -1, t.labels)  # the unknown class: unlabelled
        for recs, lab in ((recs16, lab16), (recs50, lab50)):
            recs.append(TileRecord(f"t{i}", split, t.bse, t.valid, lab, eds_kind="dense", spectra=spectra))
    ds16 = write_dataset(tmp / "ds16", recs16, names)
    ds50 = write_dataset(tmp / "ds50", recs50, lib)
    test_labels = np.concatenate([open_dataset(ds16).field(k).labels.ravel() for k in (4, 5)])
    assert (test_labels == len(names) - 1).any() and len(np.unique(test_labels[test_labels >= 0])) > 3
    return ds16, ds50, names


@pytest.fixture(scope="module")
def evaluated(datasets, tmp_path_factory):
    ds16, ds50, _ = datasets
    tmp = tmp_path_factory.mktemp("ev")
    model = default_model_path()
    opts = dict(fractions=[FRACTION], progress=False, n_overlays=1)
    return evaluate(model, ds16, tmp / "ev16", **opts), evaluate(model, ds50, tmp / "ev50", **opts)


def _f1_by_name(truth_names, pred_names, model_names) -> float:
    """Support-weighted F1 over true classes, by names: pixels of a class the model lacks are left
    out; a prediction of any other name (or none, '') is wrong."""
    keep = np.isin(truth_names, model_names)
    t, p = truth_names[keep], pred_names[keep]
    total, out = len(t), 0.0
    for name in np.unique(t):
        tp = np.sum((t == name) & (p == name))
        prec = tp / max(np.sum(p == name), 1)
        rec = tp / np.sum(t == name)
        out += (np.sum(t == name) / total) * (2 * prec * rec / (prec + rec) if tp else 0.0)
    return out


def _names(ids, names) -> np.ndarray:
    table = np.array([*names, ""], dtype=object)  # -1 (unclassified): no name
    return table[np.where(np.asarray(ids) >= 0, ids, len(names))]


def _brute(ds_path, tiles, fraction, seed, method):
    """Weighted F1 by names of ``method(field, graph, encoder ids)`` -> (H, W) encoder ids."""
    ds = open_dataset(ds_path)
    b = load_bundle(default_model_path())
    enc_names = b.encoder.meta["class_names"]
    truth, pred = [], []
    for t in tiles:
        f = ds.field(t)
        g, sp = field_graph(f, t, fraction, 0, "random", seed, 1.0, None)
        ids = classify(b.encoder, sp)
        valid = f.valid & (f.labels >= 0)
        truth.append(_names(f.labels, ds.class_names)[valid])
        pred.append(_names(method(f, g, ids), enc_names)[valid])
    return _f1_by_name(np.concatenate(truth), np.concatenate(pred), b.class_names)


def _voronoi(f, g, ids):
    d = ((np.indices(f.shape).reshape(2, -1).T[:, None, :] - g.eds_rc[None]) ** 2).sum(-1)
    return ids[d.argmin(1)].reshape(f.shape)


def test_evaluate_scores_a_dataset_of_other_classes(evaluated):
    res16, _ = evaluated
    assert res16["classes_left_out"] == [UNKNOWN]
    methods = {r["method"] for r in res16["results"]}
    assert "nearest EDS" in methods and "learnt candidate pick" in methods
    assert any(m.startswith("geodesic nearest EDS") for m in methods)
    assert res16["candidate_pick"] == "fitted on the training split"


def test_tuning_scores_equal_brute_force_by_name(datasets, evaluated):
    ds16, _, _ = datasets
    tuning = evaluated[0]["classical"]["tuning"]
    val = open_dataset(ds16).indices("val")
    assert tuning["tiles"] == len(val)
    # tuned at the fraction scored, on validation draws of that fraction
    assert set(tuning["alpha"]) == set(tuning["segment_px"]) == {FRACTION}
    for alpha, got in tuning["alpha"][FRACTION]["scores"].items():
        want = _brute(
            ds16,
            val,
            FRACTION,
            EVAL_SEED + 7,
            lambda f, g, ids, a=alpha: geodesic_nearest_eds(f.bse, f.valid, g.eds_rc, ids, a),
        )
        assert got == pytest.approx(want), alpha
    for seg, got in tuning["segment_px"][FRACTION]["scores"].items():
        want = _brute(
            ds16,
            val,
            FRACTION,
            EVAL_SEED + 7,
            lambda f, g, ids, s=seg: segment_vote(f.bse, f.valid, g.eds_rc, ids, _voronoi(f, g, ids), s),
        )
        assert got == pytest.approx(want), seg


def test_baseline_scores_equal_brute_force_by_name(datasets, evaluated):
    ds16, _, _ = datasets
    res16, _ = evaluated
    rows = {r["method"]: r for r in res16["results"]}
    test = open_dataset(ds16).indices("test")
    alpha, seg = res16["classical"]["alpha"][FRACTION], res16["classical"]["segment_px"][FRACTION]
    assert rows["geodesic nearest EDS"]["parameter_value"] == alpha
    assert rows["BSE-segment vote"]["parameter_value"] == seg
    for method, fn in [
        ("nearest EDS", _voronoi),
        (
            "geodesic nearest EDS",
            lambda f, g, ids: geodesic_nearest_eds(f.bse, f.valid, g.eds_rc, ids, alpha),
        ),
        (
            "BSE-segment vote",
            lambda f, g, ids: segment_vote(f.bse, f.valid, g.eds_rc, ids, _voronoi(f, g, ids), seg),
        ),
    ]:
        assert rows[method]["f1_weighted"] == pytest.approx(_brute(ds16, test, FRACTION, EVAL_SEED, fn)), (
            method
        )


def test_every_method_scores_as_on_the_models_own_class_list(evaluated):
    """The same fields stored with the model's 50 classes (nothing to translate): equal rows, the
    candidate pick's fit included (its targets compare the points' and the pixels' classes)."""
    res16, res50 = evaluated
    assert res16["classical"] == res50["classical"]
    assert [r["method"] for r in res16["results"]] == [r["method"] for r in res50["results"]]
    for a, b in zip(res16["results"], res50["results"]):
        assert a == b, a["method"]


def _encoder(names=None, n=3, kind="cnn"):
    return Encoder(kind, {}, n_classes=n, meta={} if names is None else {"class_names": names})


def test_point_class_lut_matches_encoder_classes_by_name():
    model = ["quartz", "albite", "calcite"]
    assert point_class_lut(_encoder(["calcite", "quartz", "albite"]), model).tolist() == [2, 0, 1]
    assert point_class_lut(_encoder(["calcite", "pyrite"], n=2), model).tolist() == [2, -1]
    assert point_class_lut(_encoder(None), model).tolist() == [0, 1, 2]  # unnamed, as many: in order
    assert point_class_lut(_encoder(None, n=4), model) is None  # unnamed and not as many: unknown
    assert point_class_lut(_encoder(None, n=0, kind="pca"), model) is None  # no classifier head
    assert point_class_lut(None, model) is None
