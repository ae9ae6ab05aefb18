"""Calibration of confidences (issue 23, item 4): the expected calibration error and reliability
bins against a hand-worked example and a brute-force reference, their edge cases, pooling, and
temperature scaling (fit, apply, the model file's meta temperature at prediction)."""

from __future__ import annotations

import numpy as np
import pytest

from mingraph.common.calibration import (
    apply_temperature,
    bins_ece,
    expected_calibration_error,
    fit_temperature,
    pool_bins,
    reliability_bins,
)
from mingraph.common.errors import InputError


def brute_force_ece(conf, ok, n_bins):
    """Guo et al. (2017) eq. 3 written out: bins ((m-1)/M, m/M], a confidence of 0 in the first."""
    conf, ok = np.asarray(conf, float).ravel(), np.asarray(ok, bool).ravel()
    total, n = 0.0, len(conf)
    edges = np.linspace(0, 1, n_bins + 1)
    for m in range(n_bins):
        lo, hi = edges[m], edges[m + 1]
        inside = [(c > lo or (m == 0 and c == 0)) and c <= hi for c in conf]
        idx = np.flatnonzero(inside)
        if idx.size:
            total += idx.size / n * abs(ok[idx].mean() - conf[idx].mean())
    return total


def test_hand_worked_example():
    # 5 bins of 0.2; (0, .2]: 0.1 right; (.4, .6]: 0.5 wrong, 0.55 right; (.8, 1]: 0.9, 1.0 right, 0.85 wrong
    conf = np.array([0.1, 0.5, 0.55, 0.9, 1.0, 0.85])
    ok = np.array([1, 0, 1, 1, 1, 0], bool)
    b = reliability_bins(conf, ok, n_bins=5)
    assert b["count"].tolist() == [1, 0, 2, 0, 3]
    assert b["accuracy"][[0, 2, 4]] == pytest.approx([1.0, 0.5, 2 / 3])
    assert b["confidence"][[0, 2, 4]] == pytest.approx([0.1, 0.525, 0.916666666])
    assert np.isnan(b["accuracy"][1]) and np.isnan(b["confidence"][3])  # empty bins
    want = (1 / 6) * 0.9 + (2 / 6) * 0.025 + (3 / 6) * abs(2 / 3 - 2.75 / 3)
    assert expected_calibration_error(conf, ok, 5) == pytest.approx(want)


@pytest.mark.parametrize("n_bins", [1, 3, 10, 15])
def test_equals_brute_force(n_bins):
    rng = np.random.default_rng(n_bins)
    conf = np.concatenate([rng.random(400), [0.0, 1.0, 0.2, 0.4, 0.6]])  # bin edges included
    ok = rng.random(conf.size) < conf**0.7
    assert expected_calibration_error(conf, ok, n_bins) == pytest.approx(brute_force_ece(conf, ok, n_bins))


def test_edge_cases():
    # every answer right at confidence 1: calibrated; 1.0 falls in the top bin
    b = reliability_bins(np.ones(7), np.ones(7, bool), n_bins=15)
    assert b["count"][-1] == 7 and b["count"][:-1].sum() == 0
    assert expected_calibration_error(np.ones(7), np.ones(7, bool)) == 0.0
    # all right at 0.8: the gap is 0.2 whatever the bins
    assert expected_calibration_error(np.full(5, 0.8), np.ones(5, bool)) == pytest.approx(0.2)
    # a confidence of exactly 0 joins the first bin
    assert reliability_bins(np.array([0.0]), np.array([False]), 4)["count"].tolist() == [1, 0, 0, 0]
    # NaN and masked pixels are left out; nothing left gives NaN
    conf = np.array([[0.9, np.nan], [0.3, 0.6]])
    ok = np.array([[True, True], [False, True]])
    mask = np.array([[True, True], [False, True]])
    assert reliability_bins(conf, ok, 10, mask)["count"].sum() == 2
    assert expected_calibration_error(conf, ok, 10, mask) == pytest.approx(
        brute_force_ece([0.9, 0.6], [True, True], 10)
    )
    assert np.isnan(expected_calibration_error(np.array([np.nan]), np.array([True])))
    assert np.isnan(expected_calibration_error(np.zeros(0), np.zeros(0, bool)))
    # a float32 exp(log q) one ulp past 1 is 1
    assert reliability_bins(np.array([1.0000001], np.float32), np.array([True]), 2)["count"].tolist() == [
        0,
        1,
    ]


@pytest.mark.parametrize(
    "args",
    [
        (np.ones(3), np.ones(4, bool)),  # shapes differ
        (np.ones((2, 2)), np.ones(4, bool)),
        (np.array([1.5]), np.array([True])),  # not a probability
        (np.array([-0.1]), np.array([True])),
    ],
)
def test_bad_input_is_refused(args):
    with pytest.raises(InputError):
        expected_calibration_error(*args)


def test_bad_mask_or_bins_are_refused():
    with pytest.raises(InputError, match="mask"):
        reliability_bins(np.ones(3), np.ones(3, bool), mask=np.ones(2, bool))
    with pytest.raises(InputError, match="n_bins"):
        reliability_bins(np.ones(3), np.ones(3, bool), n_bins=0)


def test_pooled_bins_equal_the_bins_of_all_samples():
    rng = np.random.default_rng(1)
    parts = [(rng.random(n), rng.random(n) < 0.7) for n in (0, 5, 50, 200)]
    pooled = pool_bins([reliability_bins(c, o) for c, o in parts])
    whole = reliability_bins(np.concatenate([c for c, _ in parts]), np.concatenate([o for _, o in parts]))
    assert pooled["count"].tolist() == whole["count"].tolist()
    np.testing.assert_allclose(pooled["confidence"], whole["confidence"], equal_nan=True)
    np.testing.assert_allclose(pooled["accuracy"], whole["accuracy"], equal_nan=True)
    assert bins_ece(pooled) == pytest.approx(bins_ece(whole))
    with pytest.raises(InputError):
        pool_bins(
            [
                reliability_bins(np.ones(1), np.ones(1, bool), 3),
                reliability_bins(np.ones(1), np.ones(1, bool), 4),
            ]
        )


def test_temperature_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 5))
    true_t = 2.0  # labels drawn from softmax(logits / 2): the logits are twice too sharp
    p = np.exp(apply_temperature(logits, true_t))
    y = (p.cumsum(1) > rng.random((len(p), 1))).argmax(1)
    fit = fit_temperature(logits, y)
    assert fit["temperature"] == pytest.approx(true_t, rel=0.05)
    assert fit["nll_after"] < fit["nll_before"] and fit["samples"] == len(y)
    q = np.exp(apply_temperature(logits, fit["temperature"]))
    raw = np.exp(apply_temperature(logits, 1.0))
    assert expected_calibration_error(q.max(1), q.argmax(1) == y) < 0.02
    assert expected_calibration_error(q.max(1), q.argmax(1) == y) < expected_calibration_error(
        raw.max(1), raw.argmax(1) == y
    )
    assert (q.argmax(1) == logits.argmax(1)).all()  # the class never changes
    np.testing.assert_allclose(
        apply_temperature(logits, 1.0), logits - np.log(np.exp(logits).sum(1))[:, None]
    )


def test_temperature_input_checks():
    with pytest.raises(InputError):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(InputError):
        fit_temperature(np.zeros((2, 2)), np.array([-1, -1]))
    with pytest.raises(InputError):
        fit_temperature(np.zeros((2, 2)), np.array([0, 2]))
    with pytest.raises(InputError):
        apply_temperature(np.zeros((1, 2)), 0.0)


# --- the model side: evaluate's ECE, the model file's calibration at prediction, calibrate-model


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Three simulated 40 px fields (split test) and, apart, two (split val)."""
    from click.testing import CliRunner

    from mingraph.cli import main

    tmp = tmp_path_factory.mktemp("cal")
    for name, n, seed, split in (("test", 3, 8100, "test"), ("val", 2, 8200, "val")):
        argv = ["simulate", str(tmp / name), "--tiles", str(n), "--size", "40", "--seed", str(seed)]
        r = CliRunner().invoke(main, [*argv, "--split", split])
        assert r.exit_code == 0, r.output
    return tmp / "test", tmp / "val"


def _draws(ds_path, fraction):
    """Each test field's shared points as evaluate draws them, and the shipped bundle."""
    from mingraph.acquire.dataset import open_dataset
    from mingraph.analyse.classmap import match_classes
    from mingraph.analyse.evaluate import EVAL_SEED
    from mingraph.analyse.shared_points import SharedPoints, point_class_lut
    from mingraph.learn.bundle import default_model_path, load_bundle

    ds, b = open_dataset(ds_path), load_bundle(default_model_path())
    match = match_classes(b.class_names, ds.class_names, ds.path)
    lut = point_class_lut(b.encoder, b.class_names)
    graph = {"pattern": "random", "lift": 1.0, "encoder": b.encoder, "eds_edges": "delaunay", "k": 6}
    graph["convention"] = "paper"
    pts = [
        SharedPoints.draw(ds.field(t), t, fraction, match, b.encoder, lut, EVAL_SEED, **graph)
        for t in ds.indices("test")
    ]
    return b, pts


def test_evaluate_reports_the_ece_of_each_confident_method(small, tmp_path):
    from PIL import Image

    from mingraph.analyse.evaluate import evaluate
    from mingraph.learn.bundle import default_model_path, point_features, point_probability
    from mingraph.learn.fusion_model import predict_fusion

    ds_path, _ = small
    res = evaluate(default_model_path(), ds_path, tmp_path / "ev", [0.05], progress=False, n_overlays=0)
    rows = {r["method"]: r for r in res["results"]}
    assert rows["geodesic nearest EDS"]["ece"] is None and rows["BSE-segment vote"]["ece_pixels"] is None
    b, pts = _draws(ds_path, 0.05)
    conf, ok, near_conf, near_ok = [], [], [], []

    for p in pts:  # brute force: the fusion model's max q, nearest EDS's point probability
        g = b.model.graph(p.field.bse, p.field.valid, p.graph.eds_rc)
        cls, c = predict_fusion(b.model, g, point_features(b, p.spectra))
        keep = p.truth >= 0
        conf.append(c[keep])
        ok.append((cls == p.truth)[keep])
        prob = point_probability(b, point_features(b, p.spectra))
        near = p.graph.nearest_eds
        near_conf.append(prob[near][keep & (p.nearest >= 0)])
        near_ok.append((p.nearest == p.truth)[keep & (p.nearest >= 0)])
    fusion = rows["fusion model"]
    assert fusion["ece"] == pytest.approx(
        brute_force_ece(np.concatenate(conf), np.concatenate(ok), 15), abs=1e-9
    )
    assert fusion["ece_pixels"] == sum(int((p.truth >= 0).sum()) for p in pts) == fusion["support"]
    assert fusion["ece_unclassified"] == 0
    nearest = rows["nearest EDS"]
    assert nearest["ece"] == pytest.approx(
        brute_force_ece(np.concatenate(near_conf), np.concatenate(near_ok), 15), abs=1e-9
    )
    rel = res["reliability"]["fusion model"]["0.05"]
    assert sum(rel["count"]) == fusion["ece_pixels"] and len(rel["edges"]) == 16
    for path in res["reliability_diagrams"]:
        Image.open(path).verify()
    assert [p.rsplit("/", 1)[-1] for p in res["reliability_diagrams"]] == ["reliability-0.05.png"]
    # metrics.csv carries the columns for every method (empty where a method gives no confidence)
    import csv

    with open(tmp_path / "ev" / "metrics.csv") as fh:
        table = list(csv.DictReader(fh))
    assert {"ece", "ece_pixels", "ece_unclassified"} <= set(table[0])


def test_unclassified_pixels_are_left_out_of_the_ece(small):
    """A method's -1 pixels (unknown) are not in its ECE; the count of them is said."""
    from mingraph.analyse import methods as mth
    from mingraph.common.calibration import reliability_bins

    b, pts = _draws(small[0], 0.05)
    ((m, c),) = mth.NearestEDS(lambda sp: np.full(len(sp), 0.75)).predict_with_confidence(pts[:1])
    assert c.dtype == np.float32 and np.all(c[m >= 0] == 0.75)
    m = m.copy()
    m[:5] = -1  # five rows unclassified
    keep = (pts[0].truth >= 0) & (m >= 0)
    bins = reliability_bins(c, m == pts[0].truth, mask=keep)
    assert bins["count"].sum() == keep.sum() < (pts[0].truth >= 0).sum()
    assert mth.NearestEDS().predict_with_confidence(pts[:1])[0][1] is None  # no probability: no confidence


def test_calibrated_log_q_keeps_the_class_and_sums_to_one():
    import torch

    from mingraph.learn.fusion_model import calibrated_log_q

    g = torch.Generator().manual_seed(0)
    q = torch.softmax(torch.randn(500, 6, generator=g) * 3, -1)
    lq = torch.log(q)
    for t, platt in ((1.0, (0.5, 0.6)), (1.4, None), (0.7, (2.0, -1.0)), (1.0, (0.01, -5.0))):
        out = calibrated_log_q(lq, t, platt).exp()
        assert torch.allclose(out.sum(-1), torch.ones(500), atol=1e-5)
        assert torch.equal(out.argmax(-1), q.argmax(-1))
    c = q.max(-1).values.double().numpy()
    from mingraph.common.calibration import platt_confidence

    out = calibrated_log_q(lq, 1.0, (0.5, 0.6)).exp().max(-1).values.double().numpy()
    want = np.maximum(platt_confidence(c, 0.5, 0.6), 0)  # the floor s / (1 - c + s) rarely binds
    assert np.mean(np.abs(out - want) < 1e-5) > 0.9


def test_a_calibrated_copy_changes_the_confidence_not_the_class(small, tmp_path):
    from click.testing import CliRunner

    from mingraph.cli import main
    from mingraph.common.files import load_artifact
    from mingraph.learn.bundle import default_model_path, load_bundle, model_info, point_features
    from mingraph.learn.fusion_model import predict_fusion

    ds_path, val_path = small
    out = tmp_path / "cal.pt"
    r = CliRunner().invoke(main, ["calibrate-model", str(default_model_path()), str(val_path), str(out)])
    assert r.exit_code == 0, r.output
    assert "Platt a" in r.output and "ECE" in r.output
    meta = load_artifact(out, "mingraph-model", 1, "model")["meta"]
    assert meta["calibration"]["split"] == "val" and meta["calibration"]["fields"] == 2
    assert meta["platt"]["a"] > 0 and meta["temperature"] == 1.0
    assert "calibration: temperature 1, Platt a" in model_info(out)
    shipped, cal = load_bundle(default_model_path()), load_bundle(out)
    assert shipped.model.platt is None and cal.model.platt == (meta["platt"]["a"], meta["platt"]["b"])
    # same weights, same classes; the confidence moved
    _, pts = _draws(ds_path, 0.05)
    p = pts[0]
    g = shipped.model.graph(p.field.bse, p.field.valid, p.graph.eds_rc)
    c0, q0 = predict_fusion(shipped.model, g, point_features(shipped, p.spectra))
    c1, q1 = predict_fusion(cal.model, g, point_features(cal, p.spectra))
    assert np.array_equal(c0, c1) and not np.allclose(q0, q1)
    # a temperature
    r = CliRunner().invoke(
        main,
        [
            "calibrate-model",
            str(default_model_path()),
            str(val_path),
            str(tmp_path / "t.pt"),
            "--method",
            "temperature",
        ],
    )
    assert r.exit_code == 0, r.output
    tb = load_bundle(tmp_path / "t.pt")
    assert tb.model.temperature == pytest.approx(
        load_artifact(tmp_path / "t.pt", "mingraph-model", 1, "model")["meta"]["temperature"]
    )
    assert tb.model.platt is None
    # refused: the model file itself as the output; a split with no field
    r = CliRunner().invoke(main, ["calibrate-model", str(out), str(val_path), str(out)])
    assert r.exit_code != 0 and "not over it" in r.output
    r = CliRunner().invoke(
        main, ["calibrate-model", str(out), str(val_path), str(tmp_path / "x.pt"), "--split", "train"]
    )
    assert r.exit_code != 0 and "no fields in split 'train'" in r.output
