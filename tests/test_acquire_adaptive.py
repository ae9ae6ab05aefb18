"""Adaptive acquisition (issue 15): every strategy end to end via the CLI and the API, budgets,
uniqueness, validity, determinism, the point list in µm, and each strategy against an
independent reference."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mingraph.acquire.fields import DenseSpectrumImage, Field
from mingraph.acquire.simulate import simulate_tile
from mingraph.acquisition import MODEL_STRATEGIES, STRATEGIES, run_session
from mingraph.acquisition.costs import TimeModel, points_table, read_points_table, serpentine_order
from mingraph.acquisition.predictions import fusion_maps
from mingraph.acquisition.strategies import (
    AcquisitionState,
    bright_threshold,
    bse_segments,
    choose_bright,
    lattice,
    segment_points,
    spread_pick,
)
from mingraph.acquisition.uncertainty import choose_uncertainty
from mingraph.cli import main
from mingraph.common.errors import InputError
from mingraph.common.files import write_csv
from mingraph.learn.bundle import load_model, point_features
from mingraph.workflows.predict import predict_field

SIZE = 96
BUDGET = 0.02


@pytest.fixture(scope="module")
def bundle():
    torch.set_num_threads(1)
    return load_model(None)


@pytest.fixture(scope="module")
def sample():
    return simulate_tile(4242, SIZE).field("test-field")


def _state(sample, n_total, points=None):
    points = np.zeros((0, 2), np.int32) if points is None else points
    measured = np.zeros(sample.shape, bool)
    measured[points[:, 0], points[:, 1]] = True
    return AcquisitionState(sample.bse, sample.valid, measured, np.asarray(points, np.int32), n_total)


@pytest.fixture(scope="module")
def sessions(sample, bundle):
    """Two sessions a strategy with one seed (determinism)."""
    out = {}
    for name in STRATEGIES:
        out[name] = [
            run_session(sample, bundle, BUDGET, name, rounds=2, seed=3, every_round=False) for _ in (0, 1)
        ]
    return out


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_api_session_budget_unique_valid_deterministic(name, sample, sessions):
    a, b = sessions[name]
    n = int(round(BUDGET * sample.valid.sum()))
    assert a.n_total == n and len(a.points) == n  # the budget, exactly
    flat = a.points[:, 0].astype(np.int64) * SIZE + a.points[:, 1]
    assert len(np.unique(flat)) == n  # no point measured twice
    assert a.points.min() >= 0 and a.points.max() < SIZE
    assert sample.valid[a.points[:, 0], a.points[:, 1]].all()  # on valid pixels
    np.testing.assert_array_equal(a.points, b.points)  # same seed, same session
    np.testing.assert_array_equal(a.maps.labels, b.maps.labels)
    assert [r["round"] for r in a.curve] == [0, 1, 2] and a.curve[-1]["points"] == n
    assert np.array_equal(np.unique(a.rounds), [0, 1, 2])
    last = a.curve[-1]
    assert 0 < last["f1_weighted"] <= 1 and 0 < last["f1_macro"] <= 1
    assert last["measure_s"] == pytest.approx(
        sum(TimeModel().seconds(a.points[a.rounds == k], 1.0) for k in range(3)), rel=0.05
    )
    assert last["minutes"] * 60 >= last["measure_s"] + last["inference_s"]


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_cli_session_end_to_end(name, tmp_path, sample):
    out = tmp_path / "acq"
    r = CliRunner().invoke(
        main,
        [
            "acquire",
            "--simulate",
            "64",
            "--budget",
            "0.03",
            "--strategy",
            name,
            "--rounds",
            "2",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    for f in ("points.csv", "curve.csv", "curve.json", "phase_map.tif", "overlay.png", "summary.json"):
        assert (out / f).is_file(), f
    rc, rounds, xy = read_points_table(out / "points.csv")
    valid = simulate_tile(0, 64).valid
    assert len(rc) == int(round(0.03 * valid.sum())) and valid[rc[:, 0], rc[:, 1]].all()
    with open(out / "curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and int(rows[-1]["points"]) == len(rc)


def test_point_list_round_trips_in_micrometres(tmp_path):
    rc = np.array([[0, 0], [5, 7], [95, 3]], np.int32)
    path = write_csv(tmp_path / "p.csv", points_table(rc, np.array([0, 0, 1]), pixel_size_um=0.8))
    back, rounds, xy = read_points_table(path)
    np.testing.assert_array_equal(back, rc)
    np.testing.assert_array_equal(rounds, [0, 0, 1])
    np.testing.assert_allclose(xy, (rc[:, ::-1] + 0.5) * 0.8)  # x from the column, y from the row
    np.testing.assert_array_equal(np.floor(xy[:, ::-1] / 0.8).astype(int), rc)


def test_grid_is_a_lattice_of_the_budgets_spacing(sample):
    n = 150
    st = _state(sample, n)
    nodes = lattice(st, n)
    assert len(nodes) >= n and sample.valid[nodes[:, 0], nodes[:, 1]].all()
    step = np.sqrt(sample.valid.sum() / n)
    for axis in (0, 1):
        gaps = np.diff(np.unique(nodes[:, axis]))
        assert gaps.max() - gaps.min() <= 1 and gaps.max() <= np.ceil(step)  # one spacing, ≤ the budget's
    s = run_session(sample, load_model(None), n / sample.valid.sum(), "grid", rounds=0)
    assert {tuple(p) for p in s.points} <= {tuple(p) for p in nodes}  # every grid point is a node


def test_segment_points_are_inside_their_segments_by_regionprops(sample):
    from skimage.measure import regionprops

    seg = bse_segments(sample.bse, sample.valid, 60)
    pts = segment_points(seg)
    props = {p.label: p for p in regionprops(seg)}
    assert len(pts) == len(props)
    for r, c in pts:
        p = props[int(seg[r, c])]
        assert seg[r, c] > 0 and sample.valid[r, c]
        d2 = ((p.coords - np.asarray(p.centroid)) ** 2).sum(1)
        assert ((r - p.centroid[0]) ** 2 + (c - p.centroid[1]) ** 2) == pytest.approx(d2.min())
    areas = [props[int(seg[r, c])].area for r, c in pts]
    assert areas == sorted(areas, reverse=True)  # largest segments first


def test_bright_points_lie_above_the_threshold(sample):
    st = _state(sample, 100)
    pts = choose_bright(st, 40, np.random.default_rng(0), share=0.5)
    t = np.quantile(sample.bse[sample.valid], 0.9)
    assert bright_threshold(sample.bse, sample.valid) == pytest.approx(t)
    assert (sample.bse[pts[:20, 0], pts[:20, 1]] > t).all()
    assert len({tuple(p) for p in pts}) == 40


def test_uncertainty_picks_higher_entropy_than_random(sample, bundle):
    rng = np.random.default_rng(1)
    seed_pts = np.stack(np.nonzero(sample.valid), 1)[rng.choice(sample.valid.sum(), 40, replace=False)]
    st = _state(sample, 200, seed_pts.astype(np.int32))
    probs = point_features(bundle, sample.eds.spectra(seed_pts[:, 0], seed_pts[:, 1]))
    st.maps = fusion_maps(bundle, sample.bse, sample.valid, seed_pts, probs)
    st.n_classes = len(bundle.class_names)
    ent = st.maps.entropy
    picked = choose_uncertainty(st, 40, rng, measure="entropy", novelty_weight=0.0, distance_weight=0.0)
    free = np.stack(np.nonzero(st.free()), 1)
    rand = free[rng.choice(len(free), 2000)]
    assert ent[picked[:, 0], picked[:, 1]].mean() > 2 * ent[rand[:, 0], rand[:, 1]].mean()


def test_fusion_maps_agree_with_predict_field(sample, bundle):
    rc = np.stack(np.nonzero(sample.valid), 1)[::53].astype(np.int32)
    probs = point_features(bundle, sample.eds.spectra(rc[:, 0], rc[:, 1]))
    maps = fusion_maps(bundle, sample.bse, sample.valid, rc, probs)
    pred = predict_field(bundle, sample.bse, sample.valid, rc, probs, progress=False)
    np.testing.assert_array_equal(maps.labels, pred.labels)
    np.testing.assert_allclose(maps.confidence, pred.confidence, atol=1e-5)
    blocks = fusion_maps(bundle, sample.bse, sample.valid, rc, probs, block=48)
    assert (blocks.labels == maps.labels).mean() > 0.97  # blocks with margins ≈ the whole field
    assert (maps.margin >= 0).all() and (maps.entropy >= -1e-6).all()


def test_a_dense_hypermap_serves_as_the_instrument(bundle):
    tile = simulate_tile(7, 48)
    f = tile.field()
    rr, cc = np.mgrid[0:48, 0:48]
    cube = f.eds.spectra(rr.ravel(), cc.ravel()).reshape(48, 48, -1)
    dense = Field(f.bse, f.valid, f.labels, f.class_names, 1.0, DenseSpectrumImage(cube))
    a = run_session(f, bundle, 0.03, "uncertainty", rounds=2, seed=1)
    b = run_session(dense, bundle, 0.03, "uncertainty", rounds=2, seed=1)
    np.testing.assert_array_equal(a.points, b.points)


def test_confidence_target_stops_early(sample, bundle):
    s = run_session(sample, bundle, 0.05, "random", rounds=3, target_confidence=0.0)
    assert s.stopped == "confidence" and len(s.curve) == 1 and len(s.points) < s.n_total


def test_spread_pick_keeps_its_distance():
    rng = np.random.default_rng(0)
    score = rng.random(64 * 64)
    blocked = np.zeros((64, 64), bool)
    p = spread_pick(score, np.arange(64 * 64), 30, 4.0, blocked)
    rc = np.stack([p // 64, p % 64], 1)
    d = np.abs(rc[:, None] - rc[None]).max(-1) + np.eye(len(rc), dtype=int) * 99
    assert len(p) == 30 and d.min() > 4


def test_time_model_and_order():
    tm = TimeModel(dwell_ms=1.0, settle_ms=0.0, beam_um_per_ms=10.0)
    assert tm.seconds(np.array([[0, 0], [0, 10], [10, 10]]), pixel_size_um=2.0) == pytest.approx(
        (3 * 1.0 + 40 / 10.0) / 1000
    )
    rc = np.array([[0, 5], [0, 1], [12, 1], [12, 5]])
    np.testing.assert_array_equal(rc[serpentine_order(rc, 10)], [[0, 1], [0, 5], [12, 5], [12, 1]])
    with pytest.raises(InputError, match="dwell_ms"):
        TimeModel(dwell_ms=-1.0)
    assert set(MODEL_STRATEGIES) <= set(STRATEGIES)


@pytest.mark.parametrize(
    "args, field",
    [
        (["--simulate", "64", "--budget", "0"], "--budget"),
        (["--simulate", "64", "--budget", "1.5"], "--budget"),
        (["--budget", "0.01"], "input"),
        (["--simulate", "64", "--budget", "0.01", "--dwell-ms", "-1"], "dwell_ms"),
        (["--simulate", "64", "--budget", "0.01", "--seed-fraction", "0"], "--seed-fraction"),
        (["--simulate", "64", "--budget", "0.01", "--target-confidence", "2"], "--target-confidence"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(args, field, tmp_path):
    r = CliRunner().invoke(main, ["acquire", *args, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and field in lines[0], r.output
    assert not (tmp_path / "o").exists()


def test_cli_session_on_a_dataset_field(tmp_path):
    from mingraph.acquire.importing import simulate_dataset

    ds = simulate_dataset(tmp_path / "ds", 2, 64, 5)
    out = tmp_path / "acq"
    args = ["acquire", str(ds), "--field", "1", "--budget", "0.02", "--strategy", "grid", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    rc, _, _ = read_points_table(out / "points.csv")
    assert len(rc) == len({tuple(p) for p in rc}) > 0
    r = CliRunner().invoke(main, args[:2] + args[4:])  # no --field
    assert r.exit_code == 2 and "--field" in r.output
