"""The calibration fit (variable projection by least squares) against independent references: its
line derivatives against finite differences, its warm-started NNLS against scipy's, and its fitted
offset, gain and FWHM against a slow reference fit (Nelder-Mead over the NNLS χ², every line
integrated over every channel by scipy) on a simulated summed spectrum of known calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize, nnls
from scipy.stats import norm

from mingraph.acquire.simulate.eds_physics import fwhm_ev, phase_physics
from mingraph.spectra import calibrate as cal
from mingraph.spectra.calibrate import Instrument, fit_calibration
from mingraph.spectra.physics_model import to_recorded

TRUTH = Instrument(20.0, 35.0, 124.0, offset_ev=-13.0, gain=1.0008)
ELEMENTS = [8, 9, 12, 13, 14, 15, 19, 20, 22, 26]
LO, HI = 25, 1900  # the fit's channels at 20 kV (250 eV to 19 keV)


@pytest.fixture(scope="module")
def summed() -> np.ndarray:
    total = np.zeros(3000)
    for f in ("CaTiSiO5", "FeTiO3", "KAlSi3O8", "Ca5P3O12F", "Mg2SiO4"):
        s = to_recorded(phase_physics(f, 20.0, 35.0, 124.0), TRUTH)
        total += s / s.sum() * 2e5
    return np.random.default_rng(9).poisson(total).astype(float)


def _lines(zs=ELEMENTS) -> list[tuple[np.ndarray, np.ndarray]]:
    return [fam for z in zs for fam in cal._families(z, 20.0, 50.0, 19200.0)]


def _templates_by_scipy(lines, inst: Instrument) -> np.ndarray:
    """Every line's Gaussian integrated over every channel edge of the range (no reach)."""
    edges = np.arange(LO, HI + 1) * cal.CHANNEL_EV
    out = np.zeros((len(lines), HI - LO))
    for i, (e, a) in enumerate(lines):
        centre = (e - inst.offset_ev) / inst.gain
        sigma = fwhm_ev(e, inst.fwhm_mnka_ev) * cal.SIGMA_PER_FWHM / inst.gain
        out[i] = (a[:, None] * np.diff(norm.cdf(edges[None, :], centre[:, None], sigma[:, None]))).sum(0)
    return out


def reference_fit(y: np.ndarray, start: Instrument, fit_gain: bool):
    """The calibration fit as it was before the variable projection: the same candidate families
    (kept when the start explains ~5 σ of counts), Neyman weights and B-spline background, the
    amounts by scipy's NNLS, the three parameters by Nelder-Mead run to tight tolerances.  Returns
    the fitted instrument and the reference's χ² of any instrument."""
    yw = y[LO:HI]
    w = 1.0 / np.sqrt(np.maximum(yw, 1.0))
    lines, bkg = _lines(), cal._background(LO, HI)

    def chi2(inst, keep):
        a = np.vstack([_templates_by_scipy([lines[i] for i in keep], inst), bkg])
        coef, rnorm = nnls((a * w).T, yw * w, maxiter=50 * a.shape[0])
        return rnorm**2, coef

    _, coef = chi2(start, range(len(lines)))
    amt = coef[: len(lines)] * _templates_by_scipy(lines, start).sum(1)
    keep = [i for i in range(len(lines)) if amt[i] > 5.0 * math.sqrt(yw.sum()) * 0.01]

    def inst_of(p):
        g = start.gain * (1.0 + p[1] * 1e-3) if fit_gain else start.gain
        return Instrument(20.0, 35.0, abs(p[2]), start.offset_ev + p[0], g, "fitted")

    def cost(q):
        return chi2(inst_of(q if fit_gain else [q[0], 0.0, q[1]]), keep)[0]

    p0 = np.array([0.0, 0.0, start.fwhm_mnka_ev])
    simplex = p0 + np.array([[0, 0, 0], [15.0, 0, 0], [0, 3.0, 0], [0, 0, 15.0]])
    if not fit_gain:
        p0, simplex = p0[[0, 2]], simplex[[0, 1, 3]][:, [0, 2]]
    opts = {"initial_simplex": simplex, "xatol": 1e-4, "fatol": 1e-10 * cost(p0), "maxiter": 2000}
    res = minimize(cost, p0, method="Nelder-Mead", options=opts)
    best = res.x if fit_gain else [res.x[0], 0.0, res.x[1]]
    return inst_of(best), lambda inst: chi2(inst, keep)[0]


@pytest.mark.parametrize("fit_gain", [True, False])
def test_fit_equals_the_slow_reference_fit(summed, fit_gain):
    start = Instrument(20.0, 35.0, 130.0)
    ref, chi2 = reference_fit(summed, start, fit_gain)
    fit = fit_calibration(summed, start, elements=ELEMENTS, fit_gain=fit_gain)
    got = fit.instrument
    assert got.offset_ev == pytest.approx(ref.offset_ev, abs=0.2)
    assert got.gain == pytest.approx(ref.gain, abs=2e-5)
    assert got.fwhm_mnka_ev == pytest.approx(ref.fwhm_mnka_ev, abs=0.2)
    assert fit_gain or got.gain == start.gain
    assert chi2(got) <= chi2(ref) * (1 + 1e-7)  # the same minimum, by the reference's own χ²
    if fit_gain:  # and both near the truth
        assert got.offset_ev == pytest.approx(TRUTH.offset_ev, abs=2.0)
        assert got.gain == pytest.approx(TRUTH.gain, abs=3e-4)
        assert got.fwhm_mnka_ev == pytest.approx(TRUTH.fwhm_mnka_ev, abs=2.0)


def test_line_derivatives_match_finite_differences():
    lines = _lines([8, 14, 20, 22, 26, 56, 82])
    inst = Instrument(20.0, 35.0, 131.0, offset_ev=-9.0, gain=0.9985)
    amounts = np.random.default_rng(3).random(len(lines)) * 1e4
    got = cal._Edges(lines, inst, LO, HI).derivatives(amounts)
    steps = {"offset_ev": 1e-3, "gain": 1e-7, "fwhm_mnka_ev": 1e-3}
    for k, (name, h) in enumerate(steps.items()):
        up = Instrument(**{**inst.to_dict(), name: getattr(inst, name) + h})
        down = Instrument(**{**inst.to_dict(), name: getattr(inst, name) - h})
        fd = amounts @ (cal._render(lines, up, LO, HI) - cal._render(lines, down, LO, HI)) / (2 * h)
        np.testing.assert_allclose(got[k], fd, rtol=0, atol=1e-5 * np.abs(fd).max(), err_msg=name)


def test_warm_started_nnls_equals_scipy_nnls(summed):
    """Solves from the previous amounts (the active set moving with the instrument) give scipy's
    NNLS amounts and χ² on the same weighted matrix."""
    yw = summed[LO:HI]
    w = 1.0 / np.sqrt(np.maximum(yw, 1.0))
    proj = cal._Projection(_lines(), w, yw, LO, HI)
    trials = [(0.0, 1.0, 130.0), (-13.0, 1.0008, 124.0), (-11.0, 1.0, 127.0), (25.0, 0.995, 150.0)]
    for k, (off, gain, fwhm) in enumerate(trials):
        chi2, coef, r = proj.solve(Instrument(20.0, 35.0, fwhm, off, gain))
        a = proj._last[2]
        ref, rnorm = nnls(a.T, proj.b, maxiter=50 * a.shape[0])
        assert chi2 == pytest.approx(rnorm**2, rel=1e-9), k
        np.testing.assert_allclose(coef, ref, rtol=1e-6, atol=1e-8 * ref.max())
        assert (coef >= 0).all() and np.allclose(r, proj.b - coef @ a)
