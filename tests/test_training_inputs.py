"""The fusion trainer's inputs as an instrument gives them: masks (none, BSE window, rough), BSE
detector changes and point patterns, each checked against a reference computed another way."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mingraph.acquire.simulate import simulate_tile
from mingraph.common.errors import InputError
from mingraph.learn import recipe as rcp
from mingraph.learn import train_fusion as tf
from mingraph.learn.training_inputs import augment_bse, model_mask

NO_POINTS = np.zeros((0, 2), np.int64)


def _blob(h=40, w=40):
    v = np.zeros((h, w), bool)
    v[8:30, 6:34] = True
    v[14:20, 14:22] = False  # a hole
    return v


def test_none_and_exact_masks_and_points_always_count():
    v, rng = _blob(), np.random.default_rng(0)
    rc = np.array([[0, 0], [15, 15]])
    none = model_mask(v, np.zeros(v.shape), rc, "none", rng)
    assert none.all()
    exact = model_mask(v, np.zeros(v.shape), rc, "exact", rng)
    want = v.copy()
    want[0, 0] = want[15, 15] = True
    np.testing.assert_array_equal(exact, want)


def test_window_mask_is_the_bse_at_or_above_the_drawn_level():
    bse = np.random.default_rng(1).random((30, 30))
    for seed in range(5):
        got = model_mask(
            np.ones(bse.shape, bool), bse, NO_POINTS, "window", np.random.default_rng(seed), (0.1, 0.4)
        )
        t = np.random.default_rng(seed).uniform(0.1, 0.4)
        level = bse.min() + t * (bse.max() - bse.min())
        np.testing.assert_array_equal(got, bse >= level)
        assert 0.55 < got.mean() < 0.95  # 10-40 % of the range cut off a uniform image


def test_rough_mask_is_the_exact_one_grown_or_shrunk_by_the_drawn_radius():
    v, seen = _blob(), set()
    outside, inside = ndimage.distance_transform_edt(~v), ndimage.distance_transform_edt(v)
    for seed in range(30):
        got = model_mask(v, np.zeros(v.shape), NO_POINTS, "rough", np.random.default_rng(seed), rough_px=3)
        r = int(np.random.default_rng(seed).integers(-3, 4))
        seen.add(np.sign(r))
        want = outside <= r if r > 0 else (inside > -r if r < 0 else v)  # distance to the edge
        np.testing.assert_array_equal(got, want, err_msg=f"radius {r}")
    assert seen == {-1, 0, 1}


def test_a_list_of_modes_draws_each():
    v = _blob()
    sums = {
        int(model_mask(v, np.zeros(v.shape), NO_POINTS, ["none", "exact"], np.random.default_rng(s)).sum())
        for s in range(20)
    }
    assert sums == {v.size, int(v.sum())}


def test_gain_offset_contrast_by_hand_and_nothing_drawn_without_augmentation():
    b = np.random.default_rng(2).random((16, 16)).astype(np.float32)
    rng = np.random.default_rng(3)
    assert augment_bse(b, {}, rng) is b and augment_bse(b, None, rng) is b
    assert rng.random() == np.random.default_rng(3).random()  # nothing drawn
    got = augment_bse(
        b, {"gamma": [0.7, 1.4], "gain": [0.8, 1.2], "offset": [-0.1, 0.1]}, np.random.default_rng(4)
    )
    r = np.random.default_rng(4)
    g, k, o = r.uniform(0.7, 1.4), r.uniform(0.8, 1.2), r.uniform(-0.1, 0.1)
    np.testing.assert_allclose(got, b.astype(np.float64) ** g * k + o, rtol=1e-6)


def test_drift_is_a_plane_charging_brightens_a_few_scan_lines_and_noise_has_its_sigma():
    b = np.random.default_rng(5).random((64, 64)).astype(np.float32)
    d = augment_bse(b, {"drift": 0.2}, np.random.default_rng(6)).astype(np.float64) - b
    np.testing.assert_allclose(np.diff(d, 2, axis=0), 0, atol=1e-5)  # linear in rows ...
    np.testing.assert_allclose(np.diff(d, 2, axis=1), 0, atol=1e-5)  # ... and in columns
    assert 0 < np.abs(d).max() <= 0.2 + 1e-6
    c = augment_bse(b, {"charging": 1.0}, np.random.default_rng(7)).astype(np.float64) - b
    rows = np.flatnonzero(np.abs(c).max(1) > 1e-6)
    assert len(rows) == 64 // 32 and (c >= -1e-6).all()
    for r in rows:
        on = np.flatnonzero(c[r] > 1e-6)
        assert (np.diff(c[r, on]) < 0).all() and on[-1] == 63  # decays to the right, to the line's end
    np.testing.assert_allclose(augment_bse(b, {"charging": 0.0}, np.random.default_rng(7)), b)
    n = augment_bse(b, {"noise": [0.05, 0.05]}, np.random.default_rng(8)).astype(np.float64) - b
    assert abs(n.std() - 0.05) < 0.003 and abs(n.mean()) < 0.005


def test_training_items_with_no_mask_and_grid_points():
    tile = simulate_tile(100003, 48)
    field = tile.field()
    enc = tf.load_training_encoder("shipped")
    opts = {"points": "grid", "mask": "none", "bse_augment": {"gain": [1.5, 1.5]}}
    g, p, y = tf.training_item(field, enc, 4, 48, 0.02, np.random.default_rng(0), 1, opts)
    assert g.valid.all() and (y[~field.valid] == -1).all() and (y[field.valid] >= 0).all()
    rows, cols = np.unique(g.eds_rc[:, 0]), np.unique(g.eds_rc[:, 1])
    assert len(set(np.diff(rows))) <= 2 and len(set(np.diff(cols))) <= 2  # a lattice (spacing 1/sqrt(f))
    assert p.shape == (len(g.eds_rc), 50)
    g0, _, _ = tf.training_item(field, enc, 4, 48, 0.02, np.random.default_rng(0), 1, {"points": "grid"})
    np.testing.assert_array_equal(g0.eds_rc, g.eds_rc)  # the same lattice: the mask and gain draw after it
    np.testing.assert_array_equal(g0.valid, field.valid)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"mask": "sometimes"}, "mask: expected one of exact, none, window, rough or a list of them"),
        ({"mask": []}, "mask: expected one of exact"),
        ({"mask_window": [0.3, 0.1]}, "mask_window: expected [low, high]"),
        ({"bse_augment": {"blur": 1}}, "bse_augment: expected an object of gamma, gain"),
        ({"bse_augment": {"gain": [1.2, 0.8]}}, "bse_augment.gain: expected [low, high]"),
        ({"bse_augment": {"charging": 2}}, "bse_augment.charging: expected a probability"),
        ({"points": "spiral"}, 'points: expected "random", "grid" or a list of them'),
    ],
)
def test_bad_input_recipe_fields_are_refused_in_one_line(change, message):
    with pytest.raises(InputError, match="^r.json: " + message.replace("[", r"\[").replace("(", r"\(")):
        rcp.check(change, "r.json")


def test_counts_scale_a_simulated_dwell_and_thin_measured_spectra():
    from types import SimpleNamespace

    field = simulate_tile(100003, 48).field()
    rc = np.argwhere(field.valid)[::7][:200]
    full, third = tf.spectra_at(field, rc, 1), tf.spectra_at(field, rc, 1, counts=1 / 3)
    want = field.eds.params["counts_per_ms"] * field.eds.params["dwell_ms"]  # the simulator's counts
    assert abs(full.sum(1).mean() / want - 1) < 0.05 and abs(third.sum(1).mean() / (want / 3) - 1) < 0.05
    # measured spectra: each count kept with probability 0.25 (never more counts than measured)
    measured = SimpleNamespace(eds=SimpleNamespace(spectra=lambda r, c: full))
    thin = tf.spectra_at(measured, rc, 0, counts=0.25, rng=np.random.default_rng(0))
    assert (thin <= full).all() and abs(thin.sum() / full.sum() - 0.25) < 0.01
    np.testing.assert_array_equal(tf.spectra_at(measured, rc, 0, counts=2.0), full)  # no counts invented
