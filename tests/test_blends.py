"""Grain-boundary blends named by likelihood (mingraph.spectra.blends), against independent references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from mingraph.acquire.simulate.eds_physics import mineral_spectrum
from mingraph.spectra.blends import blend_share, blend_weights, mount_shape, name_blends
from mingraph.spectra.calibrate import Instrument
from mingraph.spectra.mineral_library import simulator_library
from mingraph.spectra.physics import classify_spectra
from mingraph.spectra.physics_model import build_model, end_member_spectrum
from mingraph.spectra.physics_result import Settings

INST = Instrument(beam_kev=20.0)


@pytest.fixture(scope="module")
def model():
    return build_model(simulator_library(), INST)


def _draw(rng, shape, counts, n=1):
    return rng.poisson(shape / shape.sum() * counts, (n, shape.size)).astype(np.float64)


def test_blend_share_is_the_likelihood_maximum_on_a_fine_grid():
    rng = np.random.default_rng(1)
    p1, p2 = rng.dirichlet(np.ones(40), 5), rng.dirichlet(np.ones(40), 5)
    for truth in (0.0, 0.3, 0.75, 1.0):
        y = rng.poisson(2000 * (truth * p1 + (1 - truth) * p2)).astype(np.float64)
        a = blend_share(y, p1, p2, iters=30)
        grid = np.linspace(0, 1, 20001)
        ll = np.log(grid[None, :, None] * p1[:, None] + (1 - grid[None, :, None]) * p2[:, None])
        brute = grid[(y[:, None] * ll).sum(2).argmax(1)]
        np.testing.assert_allclose(a, brute, atol=2e-4)


def test_blend_weights_match_scipy_on_the_simplex():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(30), (3, 4))  # 3 spectra, 4 components
    w_true = np.array([[0.6, 0.3, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]])
    y = rng.poisson(5000 * np.einsum("nt,ntb->nb", w_true, p)).astype(np.float64)
    w = blend_weights(y, p, iters=2000)
    for i in range(3):

        def nll(v, i=i):
            return -(y[i] * np.log(np.maximum(v @ p[i], 1e-300))).sum()

        ref = minimize(
            nll,
            np.full(4, 0.25),
            method="SLSQP",
            bounds=[(0, 1)] * 4,
            constraints={"type": "eq", "fun": lambda v: v.sum() - 1},
            options={"ftol": 1e-12, "maxiter": 500},
        )
        assert nll(w[i]) <= ref.fun + 1e-3  # EM reaches scipy's optimum (or better)
        np.testing.assert_allclose(w[i], ref.x, atol=5e-3)
    np.testing.assert_allclose(w.sum(1), 1.0)


def test_mount_shape_is_the_epoxys_binned_spectrum(model):
    e = model.edges
    spec = end_member_spectrum("C21H25O5", INST)
    ref = np.array([spec[a:b].sum() for a, b in zip(e[:-1], e[1:])])
    ref = 0.9999 * ref / ref.sum() + 1e-4 / ref.size
    np.testing.assert_allclose(mount_shape(model), ref, rtol=1e-9)


def _set(rng, names, per=8, counts=2000):
    return np.concatenate([_draw(rng, mineral_spectrum(n, {"beam_kev": 20.0}), counts, per) for n in names])


def test_a_boundary_spectrum_is_named_its_majority_phase(model):
    """Three grains under the beam (a triple junction), 55 : 25 : 20: alone, such spectra pass for
    beryl or polylithionite or fit nothing; as a blend of the set's phases they are quartz."""
    rng = np.random.default_rng(3)
    s = {n: mineral_spectrum(n, {"beam_kev": 20.0}) for n in ("quartz", "microcline", "muscovite")}
    s = {n: v / v.sum() for n, v in s.items()}
    pure = _set(rng, list(s))
    blend = _draw(rng, 0.55 * s["quartz"] + 0.25 * s["microcline"] + 0.2 * s["muscovite"], 2000, 10)
    y = np.concatenate([pure, blend])
    off = classify_spectra(y, model, Settings(blends=False))
    on = classify_spectra(y, model)
    n = len(pure)
    assert sum(lab != "quartz" for lab in off.label_names()[n:]) >= 2
    assert on.label_names()[n:] == ["quartz"] * 10
    assert on.mixture[n:].all()
    assert set(on.partner[n:]) <= {model.names.index("microcline"), model.names.index("muscovite")}
    assert abs(on.fraction[n:].mean() - 0.55) < 0.05 and np.abs(on.fraction[n:] - 0.55).max() < 0.15
    np.testing.assert_allclose(on.probabilities[n:].sum(1), 1.0, atol=1e-5)
    # the pure spectra are untouched
    np.testing.assert_array_equal(on.label[:n], off.label[:n])
    np.testing.assert_array_equal(on.probabilities[:n], off.probabilities[:n])


def test_a_grain_edge_over_the_mount_is_the_grain(model):
    rng = np.random.default_rng(4)
    q = mineral_spectrum("quartz", {"beam_kev": 20.0})
    epoxy = end_member_spectrum("C21H25O5", INST)
    e0 = model.edges[0]
    epoxy = np.where(np.arange(3000) >= e0, epoxy, 0.0)  # its counts in the fitted range
    edge = _draw(rng, 0.75 * q / q.sum() + 0.25 * epoxy / epoxy.sum(), 3000, 5)
    y = np.concatenate([_set(rng, ["quartz", "albite"]), edge])
    r = classify_spectra(y, model)
    assert r.label_names()[-5:] == ["quartz"] * 5


def test_a_mineral_missing_from_the_list_stays_unknown():
    """Leave albite out: its spectra are not a blend of the set's quartz and microcline."""
    from mingraph.spectra.reference_minerals import reference_model

    lib = [m for m in simulator_library() if m.name != "albite"]
    model = build_model(lib, INST)
    rng = np.random.default_rng(5)
    y = np.concatenate([_set(rng, ["quartz", "microcline", "muscovite"]), _set(rng, ["albite"], per=10)])
    r = classify_spectra(y, model, reference=reference_model(model))
    assert all(lab.startswith("unknown") for lab in r.label_names()[-10:])
    assert not r.mixture[-10:].any()


def test_name_blends_needs_two_phases_of_the_set(model):
    rng = np.random.default_rng(6)
    y = _set(rng, ["quartz"], per=5)
    r = classify_spectra(y, model, Settings(blends=False))
    out = {
        k: np.array(getattr(r, k), copy=True)
        for k in (
            "label",
            "status",
            "probabilities",
            "second",
            "counts",
            "deviance",
            "noise_deviance",
            "z",
            "mixture",
            "partner",
            "fraction",
            "wt",
            "candidate",
        )
    }
    assert not name_blends(y, out, model, Settings()).any()
