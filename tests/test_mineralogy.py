"""Mineralogy outputs against hand-worked examples and brute-force references."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mingraph.analyse import mineralogy as M
from mingraph.analyse.plots import phase_colours
from mingraph.errors import InputError

# 4x4, phase 0 in the top-left 3x2 block, phase 1 elsewhere
L4 = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
V4 = np.ones((4, 4), dtype=bool)


# ---------------------------------------------------------------------------------------------- modal


def test_modal_hand_example():
    res = M.modal_mineralogy(L4, V4, ["quartz", "pyrite"], densities=[2.65, 5.0])
    q, p = res.rows
    assert (q["pixels"], p["pixels"]) == (6, 10)
    assert q["area_pct"] == pytest.approx(37.5)
    assert p["area_pct"] == pytest.approx(62.5)
    # mass = area x density: 6 * 2.65 = 15.9, 10 * 5.0 = 50, total 65.9
    assert q["mass_pct"] == pytest.approx(100 * 15.9 / 65.9)
    assert p["mass_pct"] == pytest.approx(100 * 50 / 65.9)
    assert res.n_valid == 16 and res.n_classified == 16
    assert res.unclassified_fraction == 0 and res.low_confidence_fraction == 0


def test_modal_without_densities_has_no_mass():
    res = M.modal_mineralogy(L4, V4, ["a", "b"])
    assert all(r["mass_pct"] is None and r["density_g_cm3"] is None for r in res.rows)


def test_modal_unclassified_and_low_confidence_reported_separately():
    lab = L4.copy()
    lab[3, 3] = -1  # unclassified
    valid = V4.copy()
    valid[0, 3] = False  # background: counts nowhere
    lab[0, 3] = -1  # label on an invalid pixel is ignored either way
    conf = np.ones((4, 4))
    conf[0, 0] = 0.2  # low-confidence quartz
    conf[1, 3] = np.nan  # NaN counts as low confidence
    conf[2, 2] = 0.5  # exactly the threshold: kept
    conf[3, 3] = 0.0  # unclassified already, not counted twice
    res = M.modal_mineralogy(lab, valid, ["quartz", "pyrite"], confidence=conf, min_confidence=0.5)
    assert res.n_valid == 15
    assert res.n_unclassified == 1
    assert res.n_low_confidence == 2
    assert res.n_classified == 12
    assert res.unclassified_fraction == pytest.approx(1 / 15)
    assert res.low_confidence_fraction == pytest.approx(2 / 15)
    q, p = res.rows
    assert (q["pixels"], p["pixels"]) == (5, 7)
    assert (q["low_confidence_pixels"], p["low_confidence_pixels"]) == (1, 1)
    assert q["area_pct"] == pytest.approx(100 * 5 / 12)


def test_modal_all_invalid_is_zero_not_nan():
    res = M.modal_mineralogy(L4, np.zeros((4, 4), bool), ["a", "b"], densities=[1, 2])
    assert res.n_valid == 0
    assert all(r["area_pct"] == 0 and r["mass_pct"] == 0 for r in res.rows)
    assert res.unclassified_fraction == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_modal_percentages_sum_to_100(h, w, n, seed):
    rng = np.random.default_rng(seed)
    lab = rng.integers(-1, n, size=(h, w))
    valid = rng.random((h, w)) < 0.8
    dens = rng.uniform(1, 8, n)
    res = M.modal_mineralogy(lab, valid, [f"p{k}" for k in range(n)], densities=dens)
    total = sum(r["pixels"] for r in res.rows)
    assert total == res.n_classified == int(((lab >= 0) & valid).sum())
    if total:
        assert sum(r["area_pct"] for r in res.rows) == pytest.approx(100)
        assert sum(r["mass_pct"] for r in res.rows) == pytest.approx(100)
    assert res.n_classified + res.n_unclassified + res.n_low_confidence == res.n_valid


# ---------------------------------------------------------------------------------------------- grains


def test_grains_hand_example():
    res = M.grain_statistics(L4, V4, 0.5, class_names=["quartz", "pyrite"])
    assert [g["class_id"] for g in res.grains] == [0, 1]
    q = res.grains[0]
    assert q["area_px"] == 6 and q["area_um2"] == pytest.approx(6 * 0.25)
    assert q["ecd_um"] == pytest.approx(2 * math.sqrt(1.5 / math.pi))
    assert (q["row_min"], q["col_min"], q["row_max"], q["col_max"]) == (0, 0, 2, 1)
    assert (q["centroid_row"], q["centroid_col"]) == (1.0, 0.5)
    assert q["touches_border"]
    assert [p["grains"] for p in res.phases] == [1, 1]
    # the grain map reproduces the phase map
    assert ((res.grain_map == 1) == (L4 == 0)).all() and ((res.grain_map == 2) == (L4 == 1)).all()


def test_connectivity_diagonal_pair():
    lab = np.array([[0, 1], [1, 0]])
    v = np.ones((2, 2), bool)
    g8 = M.grain_statistics(lab, v, 1.0, connectivity=8)
    g4 = M.grain_statistics(lab, v, 1.0, connectivity=4)
    assert [p["grains"] for p in g8.phases] == [1, 1]
    assert [p["grains"] for p in g4.phases] == [2, 2]
    assert sorted(g["area_px"] for g in g4.grains) == [1, 1, 1, 1]


def test_invalid_pixels_split_grains_and_count_for_nothing():
    lab = np.zeros((1, 5), int)
    v = np.array([[True, True, False, True, True]])
    res = M.grain_statistics(lab, v, 1.0)
    assert sorted(g["area_px"] for g in res.grains) == [2, 2]


@pytest.mark.parametrize("r", [6, 15, 30])
def test_disc_ecd_and_perimeter(r):
    n = 2 * r + 11
    yy, xx = np.mgrid[:n, :n]
    c = n // 2
    disc = (yy - c) ** 2 + (xx - c) ** 2 <= r * r
    lab = np.where(disc, 1, 0)
    px = 0.7
    res = M.grain_statistics(lab, np.ones_like(disc), px)
    g = [g for g in res.grains if g["class_id"] == 1]
    assert len(g) == 1
    g = g[0]
    assert not g["touches_border"]
    assert abs(g["ecd_um"] - 2 * r * px) < px  # within a pixel
    assert g["perimeter_um"] == pytest.approx(2 * math.pi * r * px, rel=0.06)


def test_square_perimeter_by_hand():
    # a 3x3 grain inside a 7x7 field. Crossings: rows 3 lines x 2 + columns 3 x 2 = 12;
    # diagonals: 5 diagonals cross it (lengths 1,2,3,2,1), 2 crossings each, both directions: 20.
    lab = np.zeros((7, 7), int)
    lab[2:5, 2:5] = 1
    res = M.grain_statistics(lab, np.ones((7, 7), bool), 2.0)
    g = [g for g in res.grains if g["class_id"] == 1][0]
    expect = math.pi / 8 * (12 + 20 / math.sqrt(2)) * 2.0
    assert g["perimeter_um"] == pytest.approx(expect)
    assert not g["touches_border"]
    assert (g["row_min"], g["col_min"], g["row_max"], g["col_max"]) == (2, 2, 4, 4)
    outer = [g for g in res.grains if g["class_id"] == 0][0]
    assert outer["touches_border"] and outer["area_px"] == 40


def test_d50_is_area_weighted_and_median_is_by_number():
    # phase 0: three 1-pixel grains and one 3x3 grain (9 px), separated by phase 1
    lab = np.ones((5, 9), int)
    lab[0, 0] = lab[0, 2] = lab[0, 4] = 0
    lab[2:5, 6:9] = 0
    res = M.grain_statistics(lab, np.ones_like(lab, dtype=bool), 1.0, class_names=["a", "b"])
    ph = res.phases[0]
    e1, e9 = 2 / math.sqrt(math.pi), 2 * math.sqrt(9 / math.pi)
    assert ph["grains"] == 4
    assert ph["ecd_median_um"] == pytest.approx(e1)
    assert ph["ecd_mean_um"] == pytest.approx((3 * e1 + e9) / 4)
    # cumulative area: 1, 2, 3 (25 %) then 12 (100 %): D10 and D90 by hand
    assert ph["d10_um"] == pytest.approx(e1)  # 10 % of 12 = 1.2 px: reached at the 2nd small grain
    assert ph["d50_um"] == pytest.approx(e9)
    assert ph["d90_um"] == pytest.approx(e9)


def test_size_distribution_consistent_with_grains():
    rng = np.random.default_rng(3)
    lab = rng.integers(0, 3, (40, 50))
    lab[10:30, 10:30] = 2
    res = M.grain_statistics(lab, np.ones_like(lab, bool), 1.3)
    edges = res.bin_edges_um
    ratios = edges[1:] / edges[:-1]
    assert np.allclose(ratios, math.sqrt(2))
    assert np.allclose(np.log2(edges) * 2, np.round(np.log2(edges) * 2))  # anchored at 1 um
    for ph in res.phases:
        rows = [r for r in res.distribution if r["class_id"] == ph["class_id"]]
        assert sum(r["grains"] for r in rows) == ph["grains"]
        assert sum(r["area_um2"] for r in rows) == pytest.approx(ph["area_um2"])
        cum = [r["cum_area_pct_passing"] for r in rows]
        assert cum == sorted(cum) and cum[-1] == pytest.approx(100)
    for k in range(3):
        assert sum(g["area_px"] for g in res.grains if g["class_id"] == k) == int((lab == k).sum())


def test_user_bins_and_grains_outside_them():
    lab = np.zeros((4, 4), int)
    res = M.grain_statistics(lab, np.ones((4, 4), bool), 1.0, bin_edges_um=[1.0, 2.0, 3.0])
    # one grain of 16 px, ECD 4.51 um, above the last class: counted nowhere, passing stays 0
    assert [r["grains"] for r in res.distribution] == [0, 0]
    assert res.phases[0]["d50_um"] == pytest.approx(2 * math.sqrt(16 / math.pi))


# ---------------------------------------------------------------------------------------------- association


def test_association_hand_example():
    res = M.association_matrix(L4, V4, 2, 0.5)
    # 3 horizontal + 2 vertical pixel edges between the phases, 0.5 um each
    assert res.boundary_um[0, 1] == pytest.approx(2.5)
    assert res.boundary_um[1, 0] == pytest.approx(2.5)
    assert res.total_boundary_um == pytest.approx(2.5)
    assert np.count_nonzero(res.boundary_um) == 2
    pct = res.association_pct
    assert pct[0, 1] == pytest.approx(100) and pct[1, 0] == pytest.approx(100)
    assert res.names[-2:] == ["unclassified", "background"]


def test_association_with_background_and_unclassified():
    lab = L4.copy()
    valid = V4.copy()
    valid[0, 0] = False  # background: touches (0,1) and (1,0), both phase 0
    lab[3, 3] = -1  # unclassified: touches (2,3) and (3,2), both phase 1
    res = M.association_matrix(lab, valid, 2, 1.0)
    b = res.boundary_um
    assert b[0, 3] == 2 and b[1, 2] == 2 and b[0, 1] == 5
    # phase 0's boundary: 5 with phase 1, 2 with background
    assert res.association_pct[0, 1] == pytest.approx(100 * 5 / 7)
    assert res.association_pct[0, 3] == pytest.approx(100 * 2 / 7)


def _brute_force_boundary(lab, valid, n):
    h, w = lab.shape

    def cat(r, c):
        if not valid[r, c]:
            return n + 1
        return n if lab[r, c] < 0 else lab[r, c]

    m = np.zeros((n + 2, n + 2))
    for r in range(h):
        for c in range(w):
            for dr, dc in ((0, 1), (1, 0)):
                r2, c2 = r + dr, c + dc
                if r2 < h and c2 < w:
                    a, b = cat(r, c), cat(r2, c2)
                    if a != b:
                        m[a, b] += 1
                        m[b, a] += 1
    return m


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 4),
    st.integers(0, 2**31 - 1),
    st.sampled_from([0.25, 1.0, 3.0]),
)
def test_association_matches_brute_force(h, w, n, seed, px):
    rng = np.random.default_rng(seed)
    lab = rng.integers(-1, n, size=(h, w))
    valid = rng.random((h, w)) < 0.8
    res = M.association_matrix(lab, valid, n, px)
    ref = _brute_force_boundary(lab, valid, n) * px
    assert np.allclose(res.boundary_um, ref)
    assert np.allclose(res.boundary_um, res.boundary_um.T)
    assert np.all(np.diag(res.boundary_um) == 0)
    pairs = sum(
        1 for r in range(h) for c in range(w) for r2, c2 in ((r, c + 1), (r + 1, c)) if r2 < h and c2 < w
    )
    assert res.total_boundary_um <= pairs * px + 1e-9
    assert res.total_boundary_um == pytest.approx(ref.sum() / 2)
    rows = res.association_pct.sum(axis=1)
    assert np.all(np.isclose(rows, 100) | (rows == 0))


# ---------------------------------------------------------------------------------------------- liberation


def test_liberation_by_hand():
    # two particles in resin: A = 4 px of phase 0; B = 2 px of phase 0 + 8 px of phase 1
    lab = np.full((4, 9), -1)
    valid = np.zeros((4, 9), bool)
    lab[0:2, 0:2] = 0
    valid[0:2, 0:2] = True
    lab[0:2, 4:9] = 1
    lab[0, 4] = lab[1, 4] = 0
    valid[0:2, 4:9] = True
    rows = M.liberation(lab, valid, 2, threshold=0.8)
    assert rows[0]["particles"] == 2 and rows[1]["particles"] == 1
    assert rows[0]["liberated_pct"] == pytest.approx(100 * 4 / 6)
    assert rows[0]["free_pct"] == pytest.approx(100 * 4 / 6)
    assert rows[1]["liberated_pct"] == pytest.approx(100)  # exactly 80 % of particle B
    assert rows[1]["free_pct"] == 0


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: M.modal_mineralogy(L4, np.ones((4, 3), bool), ["a", "b"]), "valid"),
        (lambda: M.modal_mineralogy(L4 + 1, V4, ["a", "b"]), "labels"),
        (lambda: M.modal_mineralogy(L4 - 2, V4, ["a", "b"]), "labels"),
        (lambda: M.modal_mineralogy(L4, V4, ["a", "b"], densities=[1.0]), "densities"),
        (lambda: M.modal_mineralogy(L4, V4, ["a", "b"], densities=[1.0, 0.0]), "densities"),
        (lambda: M.modal_mineralogy(L4, V4, ["a", "b"], confidence=np.ones((3, 3))), "confidence"),
        (
            lambda: M.modal_mineralogy(L4, V4, ["a", "b"], confidence=np.ones((4, 4)), min_confidence=2),
            "min_confidence",
        ),
        (lambda: M.modal_mineralogy(np.zeros((0, 4), int), np.zeros((0, 4), bool), ["a"]), "labels"),
        (lambda: M.modal_mineralogy(L4.astype(float) + 0.5, V4, ["a", "b"]), "labels"),
        (lambda: M.modal_mineralogy(L4, V4, []), "class_names"),
        (lambda: M.grain_statistics(L4, V4, 0.0), "pixel_size_um"),
        (lambda: M.grain_statistics(L4, V4, -1.0), "pixel_size_um"),
        (lambda: M.grain_statistics(L4, V4, float("nan")), "pixel_size_um"),
        (lambda: M.grain_statistics(L4, V4, 1.0, connectivity=6), "connectivity"),
        (lambda: M.grain_statistics(L4, V4, 1.0, class_names=["a"]), "labels"),
        (lambda: M.association_matrix(L4, V4, 1, 1.0), "labels"),
        (lambda: M.association_matrix(L4, V4, 2, 0), "pixel_size_um"),
        (lambda: M.association_matrix(L4[0], V4[0], 2, 1.0), "labels"),
        (lambda: M.liberation(L4, V4, 2, threshold=0), "threshold"),
        (lambda: M.write_mineralogy("/nonexistent-never", L4, V4, ["a", "b", "c"], [1, 2], 1.0), "densities"),
        (lambda: M.write_mineralogy("/nonexistent-never", L4, V4, ["a", "b"], None, -2.0), "pixel_size_um"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(InputError) as ei:
        call()
    assert ei.value.field == field


def test_one_pixel_and_one_row_images():
    for lab in (np.array([[0]]), np.array([[0, 1, 1, -1, 0]])):
        v = np.ones(lab.shape, bool)
        M.modal_mineralogy(lab, v, ["a", "b"])
        g = M.grain_statistics(lab, v, 1.0, class_names=["a", "b"])
        assert all(x["touches_border"] for x in g.grains)
        M.association_matrix(lab, v, 2, 1.0)


# ---------------------------------------------------------------------------------------------- writers


def _field():
    rng = np.random.default_rng(7)
    from scipy import ndimage

    lab = (ndimage.gaussian_filter(rng.random((60, 80)), 3) * 30).astype(int) % 4
    lab[rng.random(lab.shape) < 0.02] = -1
    valid = np.ones(lab.shape, bool)
    valid[:10, :12] = False
    conf = rng.random(lab.shape) ** 0.3
    return lab, valid, conf


NAMES = ["quartz", "albite", "chalcopyrite, Cu-Fe", "pyrite"]
DENS = [2.65, 2.62, 4.2, 5.0]


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_write_mineralogy_files_read_back(tmp_path):
    from PIL import Image

    lab, valid, conf = _field()
    out = tmp_path / "min"
    paths = M.write_mineralogy(out, lab, valid, NAMES, DENS, 1.5, confidence=conf)
    assert all(p.is_file() and p.parent == out for p in paths.values())
    assert sorted(os.listdir(out)) == sorted(p.name for p in paths.values())  # no temporary leftovers

    modal = M.modal_mineralogy(lab, valid, NAMES, DENS, conf)
    rows = _read(paths["modal_csv"])
    assert [r["phase"] for r in rows] == NAMES
    for r, m in zip(rows, modal.rows):
        assert int(r["pixels"]) == m["pixels"]
        assert float(r["area_pct"]) == m["area_pct"]  # repr round-trips exactly
        assert float(r["mass_pct"]) == m["mass_pct"]

    grains = M.grain_statistics(lab, valid, 1.5, class_names=NAMES)
    g_rows = _read(paths["grains_csv"])
    assert len(g_rows) == len(grains.grains)
    for r, g in zip(g_rows, grains.grains):
        assert int(r["area_px"]) == g["area_px"] and float(r["ecd_um"]) == g["ecd_um"]
        assert r["touches_border"] == str(g["touches_border"])
    d_rows = _read(paths["grain_size_distribution_csv"])
    assert [(r["phase"], int(r["grains"])) for r in d_rows] == [
        (d["phase"], d["grains"]) for d in grains.distribution
    ]
    s_rows = _read(paths["grain_summary_csv"])
    assert [int(r["grains"]) for r in s_rows] == [p["grains"] for p in grains.phases]

    assoc = M.association_matrix(lab, valid, len(NAMES), 1.5)
    a_rows = _read(paths["association_boundary_csv"])
    cats = NAMES + ["unclassified", "background"]
    for r in a_rows:
        i = cats.index(r["phase"])
        for name, v in r.items():
            if name != "phase":
                assert float(v) == assoc.boundary_um[i, cats.index(name)]
    p_rows = _read(paths["association_csv"])
    for r in p_rows:
        vals = [float(v) for k, v in r.items() if k != "phase"]
        assert sum(vals) == pytest.approx(100)

    summary = json.loads(paths["summary_json"].read_text())
    assert summary["field_px"] == [60, 80] and summary["pixel_size_um"] == 1.5
    assert summary["unclassified_fraction"] == pytest.approx(modal.unclassified_fraction)
    assert summary["low_confidence_fraction"] == pytest.approx(modal.low_confidence_fraction)
    assert summary["n_grains"] == len(grains.grains)
    pal = phase_colours(len(NAMES))
    for ph in summary["phases"]:
        rgb = tuple(int(ph["colour"][i : i + 2], 16) / 255 for i in (1, 3, 5))
        assert np.allclose(rgb, pal[ph["class_id"]], atol=1 / 255)
    for key in ("modal_png", "grain_size_png", "association_png"):
        with Image.open(paths[key]) as im:
            im.verify()
        with Image.open(paths[key]) as im:
            assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 150


def test_modal_plot_uses_phase_colours(tmp_path):
    """The biggest bar is drawn in the phase map's colour for that phase."""
    from PIL import Image

    lab = np.zeros((10, 10), int)
    lab[:, 7:] = 1
    paths = M.write_mineralogy(tmp_path, lab, np.ones((10, 10), bool), ["a", "b"], None, 1.0)
    with Image.open(paths["modal_png"]) as im:
        pix = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(int)
    want = np.round(phase_colours(2)[0] * 255).astype(int)
    assert (np.abs(pix - want).max(axis=1) <= 2).sum() > 500


def test_writes_are_atomic(tmp_path, monkeypatch):
    lab, valid, conf = _field()
    out = tmp_path / "min"
    out.mkdir()
    (out / "modal.csv").write_text("old\n")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        M.write_mineralogy(out, lab, valid, NAMES, DENS, 1.5, plots=False)
    assert os.listdir(out) == ["modal.csv"]  # no temporary file left behind
    assert (out / "modal.csv").read_text() == "old\n"  # the old file is intact


def test_write_mineralogy_overwrites_and_handles_all_unclassified(tmp_path):
    lab = np.full((5, 6), -1)
    v = np.ones((5, 6), bool)
    p1 = M.write_mineralogy(tmp_path, lab, v, ["a", "b"], [1.0, 2.0], 1.0)
    p2 = M.write_mineralogy(tmp_path, lab, v, ["a", "b"], [1.0, 2.0], 1.0)
    assert p1 == p2
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in p2.values())
    s = json.loads(p2["summary_json"].read_text())
    assert s["unclassified_fraction"] == 1.0 and s["n_grains"] == 0 and s["phases"] == []
    assert _read(p2["grains_csv"]) == []
