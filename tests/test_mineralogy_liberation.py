"""Particles, liberation, locking, yield and grade–recovery against a hand-worked mount and skimage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mingraph.analyse.mineralogy import liberation as lib
from mingraph.analyse.mineralogy.grains import grain_statistics
from mingraph.analyse.mineralogy.particles import particle_properties, separate_particles


def hand_mount():
    """Four particles in resin; phase 0 is the target.

    P1 4x4 all phase 0 (grade 100 %); P2 4x5, phase 0 in its first column (4 px), the rest phase 1;
    P3 4x4: column 0 phase 0, columns 1-2 phase 1, column 3 phase 2; P4 3x3 all phase 1.
    """
    lab = np.full((8, 30), -1)
    lab[1:5, 1:5] = 0  # P1: 16 px of 0
    lab[1:5, 7:12] = 1  # P2: 4 px of 0 + 16 px of 1
    lab[1:5, 7] = 0
    lab[1:5, 14:18] = 1  # P3: 4 px of 0, 8 px of 1, 4 px of 2
    lab[1:5, 14] = 0
    lab[1:5, 17] = 2
    lab[1:4, 21:24] = 1  # P4: 9 px of 1
    return lab, lab >= 0


@pytest.fixture
def parts():
    lab, valid = hand_mount()
    pmap, n = separate_particles(valid)
    assert n == 4
    g = grain_statistics(lab, valid, 1.0, class_names=["t", "a", "b"], particles=pmap)
    return particle_properties(pmap, n, g.grains, 3, 1.0)


def test_particles_hold_what_was_drawn(parts):
    assert parts.area_px.tolist() == [16, 20, 16, 9]
    assert parts.composition_px.toarray().tolist() == [[16, 0, 0], [4, 16, 0], [4, 8, 4], [0, 9, 0]]
    assert np.allclose(parts.ecd_um, 2 * np.sqrt(np.array([16, 20, 16, 9]) / math.pi))


def test_liberation_classes_by_hand(parts):
    # target 24 px: 16 in a free particle (class 100), 4 + 4 at 20 % and 25 % grade (class 20-30)
    edges = np.array([2.0, 4.0, 8.0])
    res = lib.liberation_by_size(parts, 0, edges, "composition")
    allsz = res["pct"][-1]
    assert allsz[lib.LIB_CLASSES.index("100")] == pytest.approx(100 * 16 / 24)
    assert allsz[lib.LIB_CLASSES.index("20-30")] == pytest.approx(100 * 8 / 24)
    assert allsz.sum() == pytest.approx(100)
    # P4 (3.4 µm, no target) is counted in class 0 of the 2-4 µm size class
    assert res["particles"][0, 0] == 1 and res["target_px"][0].sum() == 0
    assert res["target_px"][1].sum() == 24


def test_free_surface_by_hand(parts):
    # P1: all 16 edges free. P2 and P3: the target column has 1 + 1 + 4 free edges and 4 locked: 60 %
    res = lib.liberation_by_size(parts, 0, np.array([2.0, 8.0]), "surface")
    pct = res["pct"][-1]
    assert pct[lib.LIB_CLASSES.index("100")] == pytest.approx(100 * 16 / 24)
    assert pct[lib.LIB_CLASSES.index("60-70")] == pytest.approx(100 * 8 / 24)
    assert parts.free_edges[1, 0] == 6 and parts.locked_edges[1, 0] == 4


def test_locking_by_hand(parts):
    lk = lib.locking(parts, 0)
    assert lk["liberated"] == 16 and lk["binary"].tolist() == [0, 4, 0]
    assert lk["ternary"] == 4 and lk["complex"] == 0
    # phase 1 is in P2 (binary with 0), P3 (ternary) and P4 (liberated)
    lk1 = lib.locking(parts, 1)
    assert lk1["liberated"] == 9 and lk1["binary"].tolist() == [16, 0, 0] and lk1["ternary"] == 8
    # a 30 % trace threshold ignores phase 2 in P3 (4/16 = 25 %): P3 becomes a binary with 1 (4 + 4 px)
    assert lib.locking(parts, 0, trace_pct=30.0)["binary"].tolist() == [0, 8, 0]


def test_cumulative_yield_by_hand(parts):
    y = lib.cumulative_yield(parts, 0, np.array([0.0, 20.0, 21.0, 25.0, 26.0, 100.0]))
    assert y.tolist() == pytest.approx([100, 100, 100 * 20 / 24, 100 * 20 / 24, 100 * 16 / 24, 100 * 16 / 24])


def test_grade_recovery_by_hand(parts):
    gr = lib.grade_recovery(parts, 0)
    assert gr["basis"] == "area"
    # richest first: P1 (16/16), P3 (4/16), P2 (4/20), P4 (0/9)
    assert gr["recovery_pct"].tolist() == pytest.approx([0, 100 * 16 / 24, 100 * 20 / 24, 100, 100])
    assert gr["grade_pct"].tolist() == pytest.approx([100, 100, 100 * 20 / 32, 100 * 24 / 52, 100 * 24 / 61])
    # by mass: densities 2, 4, 8: P1 32/32, P3 8/(8+32+32), P2 8/(8+64), P4 0/36
    gm = lib.grade_recovery(parts, 0, np.array([2.0, 4.0, 8.0]))
    assert gm["basis"] == "mass"
    assert gm["grade_pct"][2] == pytest.approx(100 * 40 / (32 + 72))
    assert gm["mass_pull_pct"][-1] == pytest.approx(100)
    # a phase present without a density falls back to area
    assert lib.grade_recovery(parts, 0, np.array([2.0, np.nan, 8.0]))["basis"] == "area"


def test_liberation_class_edges():
    f = np.array([0.0, 1e-9, 0.1, 0.0999, 0.3, 0.95, 0.99999, 1.0])
    assert [lib.LIB_CLASSES[i] for i in lib.liberation_class(f)] == [
        "0",
        "0-10",
        "10-20",
        "0-10",
        "30-40",
        "90-<100",
        "90-<100",
        "100",
    ]


# ---------------------------------------------------------------------------------------------- watershed


def _discs(centres, r, shape=(80, 140)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.any([(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r for cy, cx in centres], axis=0)


@pytest.mark.parametrize("work_px", [4_000_000, 2_000])
def test_watershed_splits_touching_discs(work_px):
    v = _discs([(40, 40), (40, 74)], 20)  # overlap: a neck 2 x sqrt(20² - 17²) ≈ 21 px wide
    p, n = separate_particles(v, work_px=work_px)
    assert n == 2
    sizes = np.bincount(p[v])[1:]
    assert abs(int(sizes[0]) - int(sizes[1])) < 0.1 * sizes.sum()
    # each disc's centre is in a different particle, and the cut is near x = 57
    assert p[40, 40] != p[40, 74]
    cut = np.flatnonzero(p[40, 30:90] != p[40, 30])[0] + 30
    assert abs(cut - 57) <= (1 if work_px > 10_000 else 3)
    assert separate_particles(v, split_touching=False)[1] == 1


def test_watershed_leaves_single_shapes_alone():
    assert separate_particles(_discs([(40, 40)], 25))[1] == 1
    rect = np.zeros((60, 120), bool)
    rect[20:40, 10:110] = True  # an elongated particle: a ridge of equal distance, one marker
    assert separate_particles(rect)[1] == 1
    apart = _discs([(40, 30), (40, 100)], 15)
    p, n = separate_particles(apart)
    assert n == 2 and (p > 0).sum() == apart.sum()


def test_particles_match_skimage_regionprops():
    from skimage.measure import regionprops_table

    v = _discs([(20, 20), (20, 60), (60, 30), (55, 100), (60, 118)], 12)
    p, n = separate_particles(v)
    t = regionprops_table(p, properties=("label", "area"))
    assert n == len(t["label"]) and sorted(t["label"]) == list(range(1, n + 1))
    lab = np.where(v, 0, -1)
    g = grain_statistics(lab, v, 0.5, class_names=["x"], particles=p)
    parts = particle_properties(p, n, g.grains, 1, 0.5)
    assert parts.area_px.tolist() == t["area"].astype(int).tolist()


def test_grade_recovery_interval_brackets_the_curve_and_shrinks_with_more_particles():
    rng = np.random.default_rng(0)

    def mount(n_side):
        lab = np.full((n_side * 10, n_side * 10), -1)
        for i in range(n_side):
            for j in range(n_side):
                k = int(rng.integers(0, 9))  # 0..8 px of phase 0 in an 8x8 particle of phase 1
                lab[i * 10 : i * 10 + 8, j * 10 : j * 10 + 8] = 1
                lab[i * 10 : i * 10 + 8, j * 10 : j * 10 + k] = 0
        v = lab >= 0
        p, n = separate_particles(v)
        g = grain_statistics(lab, v, 1.0, class_names=["t", "g"], particles=p)
        return particle_properties(p, n, g.grains, 2, 1.0)

    widths = []
    for n_side in (8, 24):
        parts = mount(n_side)
        gr = lib.grade_recovery(parts, 0)
        ci = lib.grade_recovery_interval(parts, 0, n_boot=200)
        at = [
            gr["grade_pct"][min(int(np.searchsorted(gr["recovery_pct"], r - 1e-9)), parts.n)]
            for r in (50, 90)
        ]
        assert ci[0, 49] <= at[0] <= ci[1, 49] and ci[0, 89] <= at[1] <= ci[1, 89]
        widths.append(ci[1, 89] - ci[0, 89])
    assert widths[1] < widths[0]  # 9x the particles: a narrower interval
