"""Grain statistics against hand-worked examples and skimage.measure.regionprops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mingraph.analyse import mineralogy as M

# 4x4, phase 0 in the top-left 3x2 block, phase 1 elsewhere
L4 = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
V4 = np.ones((4, 4), dtype=bool)


def test_grains_hand_example():
    res = M.grain_statistics(L4, V4, 0.5, class_names=["quartz", "pyrite"])
    assert [g["class_id"] for g in res.rows()] == [0, 1]
    q = res.rows()[0]
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
    assert sorted(g["area_px"] for g in g4.rows()) == [1, 1, 1, 1]


def test_invalid_pixels_split_grains_and_count_for_nothing():
    lab = np.zeros((1, 5), int)
    v = np.array([[True, True, False, True, True]])
    res = M.grain_statistics(lab, v, 1.0)
    assert sorted(g["area_px"] for g in res.rows()) == [2, 2]


@pytest.mark.parametrize("r", [6, 15, 30])
def test_disc_ecd_and_perimeter(r):
    n = 2 * r + 11
    yy, xx = np.mgrid[:n, :n]
    c = n // 2
    disc = (yy - c) ** 2 + (xx - c) ** 2 <= r * r
    lab = np.where(disc, 1, 0)
    px = 0.7
    res = M.grain_statistics(lab, np.ones_like(disc), px)
    g = [g for g in res.rows() if g["class_id"] == 1]
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
    g = [g for g in res.rows() if g["class_id"] == 1][0]
    expect = math.pi / 8 * (12 + 20 / math.sqrt(2)) * 2.0
    assert g["perimeter_um"] == pytest.approx(expect)
    assert not g["touches_border"]
    assert (g["row_min"], g["col_min"], g["row_max"], g["col_max"]) == (2, 2, 4, 4)
    outer = [g for g in res.rows() if g["class_id"] == 0][0]
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
        assert sum(g["area_px"] for g in res.rows() if g["class_id"] == k) == int((lab == k).sum())


def test_user_bins_and_grains_outside_them():
    lab = np.zeros((4, 4), int)
    res = M.grain_statistics(lab, np.ones((4, 4), bool), 1.0, bin_edges_um=[1.0, 2.0, 3.0])
    # one grain of 16 px, ECD 4.51 um, above the last class: counted nowhere, passing stays 0
    assert [r["grains"] for r in res.distribution] == [0, 0]
    assert res.phases[0]["d50_um"] == pytest.approx(2 * math.sqrt(16 / math.pi))
