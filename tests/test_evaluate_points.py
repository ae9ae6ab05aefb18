"""evaluate on point-spectra fields measured at 10 % (issue 23, item 6): each fraction scores a
seeded random subset of each field's measured points, labelled by the real fraction, every method
on the same subsets; a fraction above what was measured is refused in one line.  Also: the tuner
that extends a grid until its optimum is interior, and --compare of a model of other classes."""

from __future__ import annotations

import csv
import dataclasses
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mingraph.acquire.dataset import TileRecord, open_dataset, write_dataset
from mingraph.acquire.simulate import simulate_tile
from mingraph.analyse import methods as mth
from mingraph.analyse.evaluate import EVAL_SEED, evaluate, tuning_notes
from mingraph.analyse.shared_points import measured_subset
from mingraph.cli import main
from mingraph.common.errors import InputError
from mingraph.graphs.build import draw_rng
from mingraph.learn.bundle import default_model_path, load_bundle
from mingraph.spectra.encoder import classify

SIZE = 40
SPLITS = ["train", "train", "val", "val", "test", "test"]
MEASURED = 0.10
FRACTIONS = [0.01, 0.05]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Six simulated fields whose spectra exist at a random 10 % of their valid pixels only."""
    tmp = tmp_path_factory.mktemp("points")
    recs = []
    for i, split in enumerate(SPLITS):
        t = simulate_tile(3000 + i, SIZE)
        f = t.field(f"p{i}")
        pool = np.flatnonzero(f.valid)
        pick = np.sort(np.random.default_rng(i).choice(pool, round(MEASURED * pool.size), replace=False))
        rc = np.stack(np.unravel_index(pick, f.shape), 1)
        spectra = f.eds.spectra(rc[:, 0], rc[:, 1])
        recs.append(
            TileRecord(
                f"p{i}", split, f.bse, f.valid, f.labels, eds_kind="points", spectra=spectra, eds_rc=rc
            )
        )
    return write_dataset(tmp / "ds", recs, f.class_names)


@pytest.fixture(scope="module")
def seen(measured, tmp_path_factory):
    """The evaluation at 1 % and 5 % with the shipped model compared with itself, and the points
    every method was given, recorded as (method, fraction, tile) -> sorted points."""
    record: dict = {}
    patch = pytest.MonkeyPatch()
    for cls, entry in (
        (mth.ModelMethod, "predict"),
        (mth.TunedMethod, "predict"),
        (mth.Method, "predict"),
        (mth.ModelMethod, "predict_with_confidence"),  # what evaluate calls: maps and confidences
        (mth.NearestEDS, "predict_with_confidence"),
    ):
        original = getattr(cls, entry)

        def spy(self, points, original=original):
            for p in points:
                record[(self.name, p.fraction, p.tile)] = p.graph.eds_rc.tolist()
            return original(self, points)

        patch.setattr(cls, entry, spy)
    out = tmp_path_factory.mktemp("ev") / "ev"
    try:
        res = evaluate(
            default_model_path(),
            measured,
            out,
            FRACTIONS,
            pattern="mask",
            compare=[default_model_path()],
            progress=False,
            n_overlays=0,
        )
    finally:
        patch.undo()
    return res, record


def test_each_fraction_scores_a_subset_of_the_measured_points(measured, seen):
    res, record = seen
    ds = open_dataset(measured)
    tiles = ds.indices("test")
    for f in FRACTIONS:
        rows = [r for r in res["results"] if r["fraction_asked"] == f]
        n_points = n_valid = 0
        for t in tiles:
            fld = ds.field(t)
            m = fld.eds.measured_mask & fld.valid
            rc = np.array(record[("nearest EDS", f, t)])
            n = round(f * fld.valid.sum())  # by hand: the asked share of the valid pixels
            assert len(rc) == n and len(np.unique(rc, axis=0)) == n and m[rc[:, 0], rc[:, 1]].all()
            # the seeded draw: the same subset drawn independently
            again = measured_subset(fld, f, draw_rng(EVAL_SEED, t, f, 0))
            assert again.tolist() == rc.tolist()
            n_points, n_valid = n_points + n, n_valid + int(fld.valid.sum())
        assert n_points < MEASURED * n_valid / 1.9  # not all 10 %
        for r in rows:  # every method's row labelled by the real fraction of the subsets
            assert r["fraction"] == pytest.approx(n_points / n_valid) and r["points"] == n_points
    assert sorted({r["fraction_asked"] for r in res["results"]}) == FRACTIONS


def test_every_method_sees_the_same_subsets(seen):
    res, record = seen
    names = {r["method"] for r in res["results"]}
    assert {"nearest EDS", "geodesic nearest EDS", "BSE-segment vote", "learnt candidate pick"} <= names
    assert any("shipped" in n for n in names) and len([n for n in names if "fusion" in n]) == 2
    by_field: dict = {}
    for (name, f, t), rc in record.items():
        if name in names:
            by_field.setdefault((f, t), {})[name] = rc
    assert len(by_field) == 2 * len(FRACTIONS)
    for per_method in by_field.values():
        assert set(per_method) == names
        first = next(iter(per_method.values()))
        assert all(rc == first for rc in per_method.values())


def test_nearest_eds_score_from_the_subset_by_brute_force(measured, seen):
    res, _ = seen
    ds, b = open_dataset(measured), load_bundle(default_model_path())
    f = 0.01
    truth, pred = [], []
    for t in ds.indices("test"):
        fld = ds.field(t)
        rc = measured_subset(fld, f, draw_rng(EVAL_SEED, t, f, 0))
        cls = classify(b.encoder, fld.eds.spectra(rc[:, 0], rc[:, 1]))
        d = ((np.indices(fld.shape).reshape(2, -1).T[:, None, :] - rc[None]) ** 2).sum(-1)
        enc_names = np.array(b.encoder.meta["class_names"], dtype=object)
        keep = (fld.labels >= 0) & fld.valid
        truth.append(np.array(fld.class_names, dtype=object)[fld.labels[keep]])
        pred.append(enc_names[cls[d.argmin(1)]].reshape(fld.shape)[keep])
    t, p = np.concatenate(truth), np.concatenate(pred)
    want = 0.0
    for name in np.unique(t):
        tp = np.sum((t == name) & (p == name))
        prec, rec = tp / max(np.sum(p == name), 1), tp / np.sum(t == name)
        want += np.mean(t == name) * (2 * prec * rec / (prec + rec) if tp else 0.0)
    row = next(r for r in res["results"] if r["method"] == "nearest EDS" and r["fraction_asked"] == f)
    assert row["f1_weighted"] == pytest.approx(want)
    assert row["agreement_with_nearest_eds"] == 1.0


def test_measured_classes_ceiling_bounds_every_method(measured, seen):
    """The oracle row: recomputed by hand (a pixel is right where some point of its field was given
    its true class, unclassified elsewhere) and at or above every method's weighted and macro F1."""
    res, _ = seen
    ds, b = open_dataset(measured), load_bundle(default_model_path())
    enc_names = np.array(b.encoder.meta["class_names"], dtype=object)
    for f in FRACTIONS:
        truth, pred = [], []
        for t in ds.indices("test"):
            fld = ds.field(t)
            rc = measured_subset(fld, f, draw_rng(EVAL_SEED, t, f, 0))
            seen_names = set(enc_names[classify(b.encoder, fld.eds.spectra(rc[:, 0], rc[:, 1]))])
            keep = (fld.labels >= 0) & fld.valid
            names = np.array(fld.class_names, dtype=object)[fld.labels[keep]]
            truth.append(names)
            pred.append(np.array([n if n in seen_names else None for n in names], dtype=object))
        t_, p_ = np.concatenate(truth), np.concatenate(pred)
        want = sum(  # precision 1: F1 = 2R / (1 + R) per class, weighted by support
            np.mean(t_ == n) * 2 * r / (1 + r) for n in np.unique(t_) for r in [np.mean(p_[t_ == n] == n)]
        )
        rows = [r for r in res["results"] if r["fraction_asked"] == f]
        ceiling = next(r for r in rows if r["method"] == mth.MeasuredClassesCeiling.name)
        assert ceiling["f1_weighted"] == pytest.approx(want)
        for r in rows:
            assert r["f1_weighted"] <= ceiling["f1_weighted"] + 1e-12, r["method"]
            assert r["f1_macro"] <= ceiling["f1_macro"] + 1e-12, r["method"]


def test_measured_classes_ceiling_by_hand():
    """1 × 6 field, truth [0, 0, 1, 1, 2, unlabelled], points classed 0 and 2: class 1 was measured
    nowhere, so its pixels stay unclassified; a field without points is all unclassified."""
    truth = np.array([[0, 0, 1, 1, 2, -1]])
    p = types.SimpleNamespace(truth=truth, classes=np.array([2, 0, -1]), graph=types.SimpleNamespace(n_eds=3))
    got = mth.MeasuredClassesCeiling().predict_field(p)
    assert got.tolist() == [[0, 0, -1, -1, 2, -1]]
    none = types.SimpleNamespace(
        truth=truth, classes=np.zeros(0, np.int64), graph=types.SimpleNamespace(n_eds=0)
    )
    assert (mth.MeasuredClassesCeiling().predict_field(none) == -1).all()


def test_a_fraction_above_what_was_measured_is_refused_in_one_line(measured, tmp_path):
    out = tmp_path / "ev"
    res = CliRunner().invoke(
        main,
        ["evaluate", str(default_model_path()), str(measured), "--pattern", "mask"]
        + ["--fractions", "0.01,0.2", "--out", str(out)],
    )
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1
    assert str(measured) in lines[0] and "field p4" in lines[0]  # the file and the field
    assert "at most 0.10" in lines[0] and "got 0.2" in lines[0]  # what was expected
    assert not out.exists()


def test_measured_subset_refuses_or_takes_all():
    f = simulate_tile(5, 30).field("f")
    mask = np.zeros(f.shape, bool)
    mask[::5, ::5] = True
    f = dataclasses.replace(f, eds_mask=mask)
    n_measured = int((mask & f.valid).sum())
    share = n_measured / f.valid.sum()
    with pytest.raises(InputError, match="at most"):
        measured_subset(f, share + 0.02, np.random.default_rng(0))
    assert len(measured_subset(f, share + 0.02, np.random.default_rng(0), strict=False)) == n_measured
    a = measured_subset(f, 0.01, np.random.default_rng(3))
    b = measured_subset(f, 0.01, np.random.default_rng(4))
    assert len(a) == len(b) == round(0.01 * f.valid.sum()) and a.tolist() != b.tolist()


def test_tuner_extends_the_grid_until_the_optimum_is_interior():
    calls = []

    def peak(at):
        def score(v):
            calls.append(v)
            return -abs(np.log(v + 1.0) - np.log(at + 1.0))

        return score

    r = mth.tune_parameter([0, 3, 10, 30, 100, 300, 1000], peak(5000.0), lower=0)
    assert r["extended"] == [3330.0, 11100.0]  # 1000 * 1000 / 300, 3330 * 3330 / 1000, to 3 digits
    assert r["best"] == 3330.0 and r["edge"] is None  # interior: 1000 < best < 11100
    assert sorted(calls) == sorted(r["scores"])  # every value tried was scored once, and reported
    # still rising past the extensions allowed: flagged at the upper edge
    r = mth.tune_parameter([1, 2], peak(1e9), max_extensions=3)
    assert r["extended"] == [4.0, 8.0, 16.0] and r["best"] == 16.0 and r["edge"] == "upper"
    assert not r["at_bound"]
    # below the grid, down to the lower bound: flagged there
    r = mth.tune_parameter([16, 36, 64], peak(0.0), lower=4.0)  # 16 * 16 / 36 = 7.1, then the bound
    assert r["extended"] == [7.11, 4.0] and r["best"] == 4.0  # 7.11 * 7.11 / 16 = 3.2 < 4
    assert r["edge"] == "lower" and r["at_bound"]
    assert tune_and_note(r) == [
        "BSE-segment vote at 1 %: the best segment_px (4) is the lower bound of segment_px"
    ]
    r = mth.tune_parameter([16, 36, 64], peak(0.0), lower=4.0, max_extensions=1)
    assert r["best"] == 7.11 and r["edge"] == "lower" and not r["at_bound"]
    assert tune_and_note(r) == ["BSE-segment vote at 1 %: the best segment_px (7.11) is still the"]
    r = mth.tune_parameter([0, 3, 10], peak(0.0), lower=0)
    assert r["best"] == 0 and r["at_bound"] and r["extended"] == []


def tune_and_note(report):
    s = mth.SegmentVote(3)
    s.reports[0.01] = report
    return [n.split(" smallest")[0] for n in tuning_notes([s])]


def test_segment_sizes_reach_past_the_point_spacing():
    s = mth.SegmentVote(3)
    for f in (0.01, 0.05):
        grid = s.grid(f)
        assert max(grid) >= 4 / f and min(grid) >= 4  # segments holding several points' area
        assert set(mth.SEGMENT_SIZES_PX) <= set(grid)
    assert max(mth.GeodesicNearestEDS(3).grid(0.01)) > 1000


def test_collapse_into_nearest_eds_is_said(measured, tmp_path):
    res = evaluate(
        default_model_path(),
        measured,
        tmp_path / "ev",
        [0.05],
        pattern="mask",
        classical={"alpha": 0.0, "segment_px": 4.0},
        progress=False,
        n_overlays=0,
    )
    rows = {r["method"]: r for r in res["results"]}
    assert rows["BSE-segment vote"]["parameter"] == "segment_px"
    assert rows["BSE-segment vote"]["parameter_value"] == 4.0 and rows["nearest EDS"]["parameter"] is None
    for name in ("geodesic nearest EDS", "BSE-segment vote"):
        said = any(n.startswith(f"{name} at 5 %: collapses into nearest EDS") for n in res["notes"])
        assert said == (rows[name]["agreement_with_nearest_eds"] >= 0.98), name
    assert rows["BSE-segment vote"]["agreement_with_nearest_eds"] >= 0.98  # 4 px: about a point each
    assert res["classical"]["tuning"] is None  # both given: nothing tuned
    with open(tmp_path / "ev" / "metrics.csv") as fh:  # the same columns for every method
        table = list(csv.DictReader(fh))
    seg = next(r for r in table if r["method"] == "BSE-segment vote")
    assert seg["parameter"] == "segment_px" and float(seg["parameter_value"]) == 4.0
    assert all(r["agreement_with_nearest_eds"] for r in table) and len(table) == len(res["results"])


class _Toy:
    """A model of its own classes that answers fixed maps (its ids), for compare-by-name."""

    def __init__(self, names, maps):
        self.label, self.maps = "toy", maps

        def field_maps(enc, cfg, fields, graphs, spectra):
            return [self.maps[: f.shape[0], : f.shape[1]] for f in fields]

        self.field_maps = field_maps


def test_compare_matches_a_model_of_other_classes_by_name(monkeypatch):
    main_names = ["quartz", "albite", "calcite", "pyrite"]
    toy_names = ["pyrite", "zircon", "quartz", "calcite"]  # permuted, one extra, albite missing
    toy_maps = np.array([[0, 1, 2, 3, -1]])
    bundle = types.SimpleNamespace(
        model=_Toy(toy_names, toy_maps), encoder=None, config={}, class_names=toy_names
    )
    monkeypatch.setattr(mth, "load_bundle", lambda path: bundle)
    monkeypatch.setattr(mth, "resolve_model", lambda path: Path(str(path)))
    (m,) = mth.compared_models(["toy.pt"], "fusion model", main_names)
    field = types.SimpleNamespace(shape=(1, 5))
    p = types.SimpleNamespace(field=field, graph=None, spectra=None)
    (got,) = m.predict([p])
    assert got.tolist() == [[3, -1, 0, 2, -1]]  # pyrite, zircon: unclassified, quartz, calcite, none
    assert m.classes.labels_only == ["zircon"] and m.classes.model_only == ["albite"]
    assert m.name == "toy"
    bundle.class_names = ["zircon", "monazite"]  # nothing shared: refused
    with pytest.raises(InputError, match="no class name is shared"):
        mth.compared_models(["toy.pt"], "fusion model", main_names)
