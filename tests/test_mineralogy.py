"""Modal mineralogy and bad input: hand-worked examples and brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mingraph.analyse import mineralogy as M
from mingraph.analyse.mineralogy.particles import separate_particles
from mingraph.common.errors import InputError

# 4x4, phase 0 in the top-left 3x2 block, phase 1 elsewhere
L4 = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
V4 = np.ones((4, 4), dtype=bool)


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
        (lambda: separate_particles(V4, min_distance_px=0), "min_distance_px"),
        (lambda: separate_particles(L4, min_distance_px=3), "valid"),
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
        assert all(x["touches_border"] for x in g.rows())
        M.association_matrix(lab, v, 2, 1.0)
