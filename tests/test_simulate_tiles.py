"""The simulator's contracts: tiles (shapes, sizes, determinism, class coverage, BSE contrast) and the
SimulatedEds source (counts, Poisson statistics, boundary mixing, per-pixel determinism, timings)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mingraph.acquire.fields import N_CHANNELS, EdsSource, Field, channel_of
from mingraph.acquire.simulate import (
    DEFAULT_PARAMS,
    SimulatedEds,
    class_names,
    mineral_index,
    mineral_spectrum,
    simulate_tile,
)
from mingraph.acquire.simulate.bse import render_bse
from mingraph.acquire.simulate.texture import EPOXY_KIND
from mingraph.common.errors import InputError

QTZ, ZRN = mineral_index("quartz"), mineral_index("zircon")


def _boundary_labels() -> np.ndarray:
    lab = np.full((9, 12), QTZ, dtype=np.int32)
    lab[:, 6:] = ZRN  # boundary between columns 5 and 6
    return lab


# --- tiles -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h, w", [(1, 1), (1, 40), (40, 1), (2, 3), (37, 150), (150, 150)])
def test_every_tile_size_works(h, w):
    for seed in range(4):
        t = simulate_tile(seed, h, w)
        assert t.bse.shape == t.valid.shape == t.labels.shape == (h, w)
        assert t.bse.dtype == np.float32 and t.valid.dtype == np.bool_ and t.labels.dtype == np.int32
        assert np.isfinite(t.bse).all() and t.bse.min() >= 0.0 and t.bse.max() <= 1.0
        np.testing.assert_array_equal(t.valid, t.labels >= 0)
        assert t.labels.min() >= -1 and t.labels.max() < 50
        s = t.field()
        assert isinstance(s, Field) and isinstance(s.eds, EdsSource) and s.class_names == class_names()
        sp = s.eds.spectra(np.array([h - 1]), np.array([w - 1]))
        assert sp.shape == (1, N_CHANNELS) and sp.dtype == np.float32


def test_square_by_default_and_bad_sizes_refused():
    assert simulate_tile(0, 20).labels.shape == (20, 20)
    for bad in (0, -3, 2.5):
        with pytest.raises(InputError):
            simulate_tile(0, bad)
    with pytest.raises(InputError, match="grain_um"):
        simulate_tile(0, 10, params={"grain_um": -1})
    with pytest.raises(InputError, match="nope"):
        simulate_tile(0, 10, params={"nope": 1})
    with pytest.raises(InputError, match="seed"):
        simulate_tile(-1, 10)


def test_same_seed_same_tile_bit_for_bit_and_different_seeds_differ():
    a, b, c = simulate_tile(12345, 150), simulate_tile(12345, 150), simulate_tile(12346, 150)
    for f in ("bse", "valid", "labels", "kind"):
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes()
    assert a.eds_params == b.eds_params
    assert not np.array_equal(a.bse, c.bse) and not np.array_equal(a.labels, c.labels)


def test_eds_params_are_json_and_rebuild_the_source():
    t = simulate_tile(3, 60)
    params = json.loads(json.dumps(t.eds_params))
    rows, cols = np.array([5, 30, 59]), np.array([0, 31, 59])
    np.testing.assert_array_equal(
        SimulatedEds(t.labels, 3, params).spectra(rows, cols), t.eds.spectra(rows, cols)
    )


def test_every_class_appears_and_granite_minerals_dominate():
    pixels = np.zeros(50, dtype=np.int64)
    tiles_with = np.zeros(50, dtype=np.int64)
    invalid = []
    for seed in range(300):
        t = simulate_tile(seed, 150)
        counts = np.bincount(t.labels[t.valid], minlength=50)
        pixels += counts
        tiles_with += counts > 0
        invalid.append(1.0 - t.valid.mean())
    assert (tiles_with >= 10).all(), [n for n, k in zip(class_names(), tiles_with) if k < 10]
    share = pixels / pixels.sum()
    top = {class_names()[i] for i in np.argsort(-share)[:3]}
    assert top == {"quartz", "albite", "microcline"}
    assert share[[mineral_index(n) for n in ("zircon", "thorite", "pyrochlore", "molybdenite")]].max() < 0.005
    invalid = np.array(invalid)
    assert (invalid == 0).mean() > 0.2 and (invalid > 0.2).mean() > 0.2  # sections and mounts both occur


def test_bse_contrast_follows_mean_z():
    lab = np.full((60, 90), QTZ, dtype=np.int32)
    lab[:, 30:60] = mineral_index("albite")
    lab[:, 60:] = ZRN
    kind = np.zeros(lab.shape, np.int8)
    lab[:10, :] = -1
    kind[:10, :] = EPOXY_KIND
    img = render_bse(lab, kind, np.zeros(lab.shape, np.int32), np.random.default_rng(0), DEFAULT_PARAMS)
    q, ab, z, ep = img[20:, 3:27].mean(), img[20:, 33:57].mean(), img[20:, 63:87].mean(), img[:8].mean()
    assert abs(q - ab) < 0.1 * abs(q - z)
    assert ep < q < z
    # image = gain·η + offset (gain 1.9, offset 0.03, 3 % jitter): quartz η 0.1268 -> 0.271
    assert q == pytest.approx(1.9 * 0.1268 + 0.03, rel=0.1)


def test_tile_bse_is_brighter_on_heavy_phases():
    hi, lo = [], []
    for seed in range(40):
        t = simulate_tile(seed, 100)
        heavy = np.isin(
            t.labels, [mineral_index(n) for n in ("galena", "thorite", "cassiterite", "zircon", "tantalite")]
        )
        light = t.labels == QTZ
        if heavy.sum() > 20 and light.sum() > 20:
            hi.append(np.median(t.bse[heavy]))
            lo.append(np.median(t.bse[light]))
    assert len(hi) >= 3 and min(hi) > max(lo)


# --- SimulatedEds ------------------------------------------------------------------------------------


def test_counts_are_poisson_integers_matching_the_dwell():
    lab = np.full((40, 40), QTZ, dtype=np.int32)
    src = SimulatedEds(lab, 7, {"counts_per_ms": 1600.0, "dwell_ms": 1.25})
    r, c = np.divmod(np.arange(1600), 40)
    sp = src.spectra(r, c)
    assert sp.dtype == np.float32 and np.isfinite(sp).all() and sp.min() >= 0
    np.testing.assert_array_equal(sp, np.round(sp))
    totals = sp.sum(axis=1)
    assert totals.mean() == pytest.approx(2000.0, rel=0.01)
    assert totals.var() / totals.mean() == pytest.approx(1.0, abs=0.15)  # Poisson: variance = mean
    si = channel_of(1740)
    assert sp[:, si].mean() == pytest.approx(mineral_spectrum("quartz")[si], rel=0.05)
    half = SimulatedEds(lab, 7, {"counts_per_ms": 800.0}).spectra(r[:400], c[:400]).sum(axis=1).mean()
    assert half == pytest.approx(1000.0, rel=0.02)


@pytest.mark.parametrize("mean", [0.05, 0.8, 4.0, 9.9, 10.1, 37.0, 145.0, 900.0])
def test_channel_counts_follow_the_poisson_law(mean):
    """Chi-square goodness of fit of 20 000 draws against scipy's Poisson pmf, both samplers (<10, >=10)."""
    src = SimulatedEds(np.full((100, 200), QTZ, dtype=np.int32), 11, {})
    r, c = np.divmod(np.arange(20000), 200)
    lam = np.zeros((r.size, src._nchan))
    lam[:, 300] = mean
    out = np.zeros((r.size, N_CHANNELS), np.float32)
    from mingraph.acquire.simulate.eds import poisson_spectra

    poisson_spectra(
        lam, r.astype(np.uint64), c.astype(np.uint64), src._key[0], src._key[1], 0, out[:, : src._nchan]
    )
    k = out[:, 300].astype(int)
    assert out[:, :300].sum() == 0 and out[:, 301:].sum() == 0
    dist = stats.poisson(mean)
    lo, hi = int(dist.ppf(1e-4)), int(dist.ppf(1 - 1e-4))
    edges = np.arange(lo, hi + 2)
    obs = np.histogram(np.clip(k, lo, hi), bins=edges)[0]
    exp = np.diff(np.concatenate([[0.0], dist.cdf(edges[1:-1] - 1), [1.0]])) * k.size
    obs_p, exp_p = [], []  # pool sparse bins so every expected count exceeds 5
    acc_o = acc_e = 0.0
    for o, e in zip(obs, exp):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e > 5:
            obs_p.append(acc_o)
            exp_p.append(acc_e)
            acc_o = acc_e = 0.0
    obs_p[-1] += acc_o
    exp_p[-1] += acc_e
    if len(obs_p) > 1:
        assert stats.chisquare(obs_p, exp_p).pvalue > 1e-3
    assert k.mean() == pytest.approx(mean, rel=0.05, abs=0.01)


def test_boundary_pixels_mix_phases_and_interior_pixels_do_not():
    src = SimulatedEds(_boundary_labels(), 1, {})
    zr, si = channel_of(2042), channel_of(1740)
    qtz, zrn = mineral_spectrum("quartz"), mineral_spectrum("zircon")
    ex = src.expected(np.full(12, 4), np.arange(12))
    np.testing.assert_allclose(ex[1], qtz, rtol=1e-9)  # interiors: pure phase spectra
    np.testing.assert_allclose(ex[10], zrn, rtol=1e-9)
    # the pixels either side of the boundary carry the other phase's line: w = share of the other phase
    w_zr_in_qtz = (ex[5, zr] - qtz[zr]) / (zrn[zr] - qtz[zr])
    w_si_in_zrn = (ex[6, si] - zrn[si]) / (qtz[si] - zrn[si])
    assert 0.1 < w_zr_in_qtz < 0.5 and 0.1 < w_si_in_zrn < 0.5
    assert w_zr_in_qtz == pytest.approx(w_si_in_zrn)  # symmetric footprint
    # footprint = Gaussian (σ = 0.7 px) sampled on the pixel grid; along a row its weights are
    # exp(-k²/0.98): 1, 0.3604, 0.0169, 0.0001 for |k| = 0..3, so the share at k ≥ 1 is 0.3774 / 1.7548
    assert w_zr_in_qtz == pytest.approx(0.3774 / 1.7548, abs=2e-4)
    noisy = src.spectra(np.full(200, 4), np.full(200, 5))  # same pixel: identical draws
    assert np.array_equal(noisy[0], noisy[-1])
    sp = src.spectra(np.arange(9), np.full(9, 5))
    assert (sp[:, zr - 3 : zr + 4].sum(axis=1) > 10).all() and (sp[:, si - 3 : si + 4].sum(axis=1) > 50).all()
    no_mix = SimulatedEds(_boundary_labels(), 1, {"mix_sigma_px": 0.0}).expected(np.array([4]), np.array([5]))
    np.testing.assert_allclose(no_mix[0], qtz, rtol=1e-9)


def test_invalid_pixels_emit_epoxy_or_nothing():
    lab = np.full((5, 5), -1, dtype=np.int32)
    ep = SimulatedEds(lab, 0, {}).expected(np.array([2]), np.array([2]))[0]
    np.testing.assert_allclose(ep, mineral_spectrum("epoxy"))
    assert ep[channel_of(277)] > ep[channel_of(1740)]  # C Kα
    assert SimulatedEds(lab, 0, {"invalid_spectrum": "none"}).spectra(np.array([2]), np.array([2])).sum() == 0


def test_spectrum_depends_only_on_seed_and_pixel_not_on_the_request():
    t = simulate_tile(5, 150)
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 150, 300), rng.integers(0, 150, 300)
    a = SimulatedEds(t.labels, 5, t.eds_params).spectra(rows, cols)
    perm = rng.permutation(300)
    b = SimulatedEds(t.labels, 5, t.eds_params).spectra(rows[perm], cols[perm])
    np.testing.assert_array_equal(a[perm], b)
    single = SimulatedEds(t.labels, 5, t.eds_params).spectra(rows[17:18], cols[17:18])
    np.testing.assert_array_equal(single[0], a[17])
    other_seed = SimulatedEds(t.labels, 6, t.eds_params).spectra(rows, cols)
    other_draw = SimulatedEds(t.labels, 5, t.eds_params, draw=1).spectra(rows, cols)
    assert not np.array_equal(a, other_seed) and not np.array_equal(a, other_draw)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 2**40), data=st.data())
def test_any_subset_in_any_order_gives_the_same_spectra(h, w, seed, data):
    labels = np.random.default_rng(seed % 1000).integers(-1, 50, (h, w))
    n = data.draw(st.integers(1, 20))
    rows = np.array(data.draw(st.lists(st.integers(0, h - 1), min_size=n, max_size=n)))
    cols = np.array(data.draw(st.lists(st.integers(0, w - 1), min_size=n, max_size=n)))
    full = SimulatedEds(labels, seed, {}).spectra(rows, cols)
    assert np.isfinite(full).all() and full.min() >= 0
    k = data.draw(st.integers(0, n - 1))
    one = SimulatedEds(labels, seed, {}).spectra(rows[k : k + 1], cols[k : k + 1])
    np.testing.assert_array_equal(one[0], full[k])


def test_bad_requests_are_refused():
    src = SimulatedEds(np.zeros((4, 5), np.int32), 0, {})
    with pytest.raises(InputError, match="outside"):
        src.spectra(np.array([4]), np.array([0]))
    with pytest.raises(InputError):
        src.spectra(np.array([0, 1]), np.array([0]))
    with pytest.raises(InputError, match="labels"):
        SimulatedEds(np.full((2, 2), 50), 0, {})
    with pytest.raises(InputError, match="mix_sigma_px"):
        SimulatedEds(np.zeros((2, 2), np.int32), 0, {"mix_sigma_px": -1})
    assert src.spectra(np.array([], int), np.array([], int)).shape == (0, N_CHANNELS)


# --- the Kanaya-Okayama footprint ------------------------------------------------------------------


def test_kanaya_okayama_range_hand_worked_and_scaling():
    from mingraph.acquire.simulate.eds_physics import (
        KO_90_DIAMETER,
        footprint_sigmas_px,
        kanaya_okayama_range_um,
    )

    # quartz SiO2, 25 kV: w(Si) = 28.0855 / 60.0843, A/Z^0.889 per element by hand
    w_si = 28.0855 / 60.0843
    by_hand = 0.0276 * 25**1.67 / 2.65 * (w_si * 28.0855 / 14**0.889 + (1 - w_si) * 15.999 / 8**0.889)
    assert kanaya_okayama_range_um("SiO2", 2.65, 25.0) == pytest.approx(by_hand, rel=1e-3)
    assert 5.0 < by_hand < 6.5  # the 3-5+ µm of silicates at 25 kV (Goldstein et al.)
    # R ∝ E0^1.67 and ∝ 1/ρ
    r25, r15 = (kanaya_okayama_range_um("SiO2", 2.65, e) for e in (25.0, 15.0))
    assert r25 / r15 == pytest.approx((25 / 15) ** 1.67, rel=1e-9)
    assert kanaya_okayama_range_um("SiO2", 5.3, 25.0) == pytest.approx(r25 / 2, rel=1e-9)
    assert KO_90_DIAMETER == pytest.approx(4.2919, abs=1e-4)  # 2·sqrt(2 ln 10)
    sig = footprint_sigmas_px({"footprint": "kanaya-okayama", "pixel_size_um": 0.5})
    assert sig[QTZ] == pytest.approx(min(by_hand / KO_90_DIAMETER / 0.5, 10.0), rel=1e-3)
    assert sig[ZRN] < sig[QTZ]  # zircon is denser and heavier: a smaller interaction volume
    assert (footprint_sigmas_px({}) == 0.7).all()  # the default stays the fixed footprint


def test_kanaya_okayama_footprint_mixes_per_phase_under_the_beam():
    """Each pixel's footprint is the Gaussian of the phase under the beam: checked by brute force."""
    from mingraph.acquire.simulate.eds_physics import footprint_sigmas_px

    lab = _boundary_labels()
    lab[0, 0] = -1  # an epoxy pixel inside the footprint
    params = {"footprint": "kanaya-okayama", "pixel_size_um": 1.0}
    src = SimulatedEds(lab, 3, params)
    sig = footprint_sigmas_px(params)
    rows, cols = np.array([4, 4, 4, 4, 1, 8]), np.array([3, 5, 6, 8, 1, 11])
    got = src.phase_weights(rows, cols)
    for i, (r, c) in enumerate(zip(rows, cols)):
        s = sig[lab[r, c]]
        rad = int(np.ceil(3 * s))
        want = np.zeros(len(sig))
        for dr in range(-rad, rad + 1):
            for dc in range(-rad, rad + 1):
                g = np.exp(-(dr * dr + dc * dc) / (2 * s * s))
                rr, cc = r + dr, c + dc
                if g <= 1e-4 or not (0 <= rr < lab.shape[0] and 0 <= cc < lab.shape[1]):
                    continue  # outside the field: dropped and renormalised, as documented
                want[lab[rr, cc] if lab[rr, cc] >= 0 else len(sig) - 1] += g
        np.testing.assert_allclose(got[i], want / want.sum(), rtol=1e-9, atol=1e-12)
    # quartz (wider footprint) next to the boundary takes more zircon than zircon takes quartz
    assert got[1, ZRN] > got[2, QTZ] > 0
    with pytest.raises(InputError, match="footprint"):
        SimulatedEds(lab, 0, {"footprint": "monte-carlo"})
    with pytest.raises(InputError, match="pixel_size_um"):
        SimulatedEds(lab, 0, {"pixel_size_um": 0})
