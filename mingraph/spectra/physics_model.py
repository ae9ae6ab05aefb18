"""Expected spectra of a mineral library at an instrument's conditions, and what counting noise alone gives.

Every class of a library (:mod:`mingraph.spectra.mineral_library`) becomes one or more
*candidates*: one per lattice point of its composition range.  A candidate's expected spectrum
mixes its end members' spectra, each computed by the simulator's physics
(:mod:`mingraph.acquire.simulate.eds_physics`: xraylib lines, Bethe-form ionisation, Philibert
absorption, Kramers continuum, detector window and resolution) per incident electron, weighted
by the end members' mass fractions (the first-order rule that X-ray yield follows mass
concentration, Castaing 1951).  The spectrum is computed on the true energy axis and moved onto
the recorded grid through the instrument's calibration, conserving counts.

For the classifier the grid is summed into *bins* (40 eV below ``fine_kev``, 100 eV above; the
detector's ~130 eV resolution loses nothing to 40 eV bins) between ``lo_ev`` (above the carbon
coat's C Kα at 277 eV) and the beam energy.  A uniform floor of ``FLOOR`` of the counts stands
for what no model holds (stray, pile-up and escape counts).

Counting noise: a spectrum y of N counts drawn from the candidate's shape p has Poisson deviance
D = 2 Σ_b [y_b log(y_b / (N p_b)) − (y_b − N p_b)] (McCullagh & Nelder, *Generalized Linear
Models*, 1989, §2.3) with mean E(N) = Σ_b e(N p_b) and variance V(N) = Σ_b v(N p_b), where e(μ)
and v(μ) are the exact mean and variance of the unit deviance of one Poisson(μ) count, summed
over its probability mass (tabulated once).  Channels are independent Poisson counts, so the sums
hold; they are tabulated per candidate against log N.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.special import xlogy
from scipy.stats import poisson

from mingraph.acquire.fields import CHANNEL_EV
from mingraph.acquire.simulate.eds_physics import phase_physics
from mingraph.common.errors import InputError
from mingraph.spectra.calibrate import Instrument
from mingraph.spectra.element_spectra import element_spectra, to_recorded
from mingraph.spectra.mineral_library import LibraryMineral, mass_composition

FLOOR = 1e-4
"""Fraction of every spectrum's counts spread uniformly over the bins (what no model holds)."""
LOG_N_GRID = np.linspace(np.log(20.0), np.log(2e6), 64)
"""Total counts (log) at which each candidate's noise-only deviance mean and variance are tabulated."""


@cache
def _unit_deviance_moments() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log μ grid, and the mean and variance of the unit Poisson deviance at each μ (brute-force sums)."""
    log_mu = np.linspace(np.log(1e-7), np.log(1e4), 361)
    mean, var = np.empty_like(log_mu), np.empty_like(log_mu)
    for i, mu in enumerate(np.exp(log_mu)):
        y = np.arange(int(mu + 12 * np.sqrt(mu) + 30))
        pm = poisson.pmf(y, mu)
        d = 2.0 * (xlogy(y, y / mu) - (y - mu))
        mean[i] = pm @ d
        var[i] = pm @ (d - mean[i]) ** 2
    return log_mu, mean, var


def noise_moments(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the unit Poisson deviance 2[y log(y/μ) − (y − μ)], y ~ Poisson(μ).

    Exact sums over the Poisson mass, tabulated on a log grid of μ from 1e-7 to 1e4 and
    interpolated; beyond 1e4 the asymptotes 1 + 1/(6μ) and 2 hold (the χ² limit, one degree of
    freedom).

    At μ = 0.01 by hand: 2μ·e^-μ + 2(ln 100 − 0.99)·μe^-μ + ... = 0.0198 + 0.0716 + ... ≈ 0.092.

    >>> m, v = noise_moments(np.array([0.01, 1.0, 1e5]))
    >>> np.round(m, 3).tolist(), np.round(v, 2).tolist()
    ([0.092, 1.147, 1.0], [0.52, 1.36, 2.0])
    """
    log_mu, mean, var = _unit_deviance_moments()
    x = np.log(np.maximum(np.asarray(mu, dtype=np.float64), 1e-7))
    m = np.interp(x, log_mu, mean)
    v = np.interp(x, log_mu, var)
    big = x > log_mu[-1]
    m = np.where(big, 1.0 + 1.0 / (6.0 * np.exp(np.minimum(x, 50.0))), m)
    v = np.where(big, 2.0, v)
    return m, v


def bin_edges(inst: Instrument, lo_ev: float = 450.0, fine_kev: float = 10.0, hi_kev: float | None = None):
    """(B + 1,) channel indices of the classifier's bin edges: 4 channels a bin, 10 above ``fine_kev``.

    >>> e = bin_edges(Instrument(beam_kev=15.0))
    >>> int(e[0]), int(e[-1]), len(e) - 1
    (45, 1470, 286)
    """
    top = min(inst.beam_kev * 0.98 if hi_kev is None else hi_kev, 29.9) * 1000.0
    lo = int(lo_ev // CHANNEL_EV)
    fine = int(min(fine_kev * 1000.0, top) // CHANNEL_EV)
    hi = int(top // CHANNEL_EV)
    e = list(range(lo, fine, 4)) + list(range(fine, hi, 10)) + [hi]
    return np.unique(np.asarray(e, dtype=np.int64))


@dataclass
class PhysicsModel:
    """Expected binned spectra of every candidate of a library, with their noise tables.

    ``shapes`` (K, B) float64 rows summing to 1; ``log_shapes`` (B, K) float32 for the screening
    product; ``cand_class`` (K,) int64 class of each candidate (contiguous per class),
    ``class_start`` (C + 1,) its first candidate; ``cand_x`` list of (k,) mole fractions;
    ``cand_wt`` (K, n_elements) element mass fractions, ``elements`` their atomic numbers;
    ``noise_mean``/``noise_var`` (K, len(LOG_N_GRID)); ``edges`` the bin edges in channels.
    """

    library: list[LibraryMineral]
    instrument: Instrument
    edges: np.ndarray
    shapes: np.ndarray
    log_shapes: np.ndarray
    cand_class: np.ndarray
    class_start: np.ndarray
    cand_x: list
    cand_wt: np.ndarray
    elements: list[int]
    noise_mean: np.ndarray
    noise_var: np.ndarray
    line_part: np.ndarray | None = None  # (K, B) binned line photons per electron, unnormalised
    continuum_part: np.ndarray | None = None  # (K, B) binned continuum photons per electron
    continuum_scale: float = 1.0

    @property
    def names(self) -> list[str]:
        """Class names in class order."""
        return [m.name for m in self.library]

    @property
    def class_matrix(self) -> np.ndarray:
        """(K, C) float32 0/1: candidate k belongs to class c (sums over a class as one product)."""
        out = np.zeros((self.cand_class.size, len(self.library)), np.float32)
        out[np.arange(self.cand_class.size), self.cand_class] = 1.0
        return out

    def bin(self, spectra: np.ndarray) -> np.ndarray:
        """(n, 3000) counts -> (n, B) float32 counts in the model's bins (summed in float32).

        Runs of equal-width bins are summed as strided slices (several times faster than
        ``np.add.reduceat``, which it equals).
        """
        a = np.asarray(spectra)
        out = np.empty((a.shape[0], self.edges.size - 1), np.float32)
        w = np.diff(self.edges)
        b = 0
        while b < w.size:
            e = b
            while e < w.size and w[e] == w[b]:
                e += 1
            j0, width, k = int(self.edges[b]), int(w[b]), e - b
            seg = a[:, j0 : j0 + width * k].astype(np.float32).reshape(a.shape[0], k, width)
            acc = seg[:, :, 0].copy()
            for i in range(1, width):
                acc += seg[:, :, i]
            out[:, b:e] = acc
            b = e
        return out

    def noise(self, cand: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noise-only deviance mean and variance (n,) for candidates ``cand`` (n,) at ``counts`` (n,)."""
        x = np.clip(np.log(np.maximum(counts, 1.0)), LOG_N_GRID[0], LOG_N_GRID[-1])
        t = (x - LOG_N_GRID[0]) / (LOG_N_GRID[1] - LOG_N_GRID[0])
        i = np.minimum(t.astype(np.int64), len(LOG_N_GRID) - 2)
        f = t - i
        m = self.noise_mean[cand, i] * (1 - f) + self.noise_mean[cand, i + 1] * f
        v = self.noise_var[cand, i] * (1 - f) + self.noise_var[cand, i + 1] * f
        return m, v


@cache
def end_member_spectrum(formula: str, inst: Instrument) -> np.ndarray:
    """The expected spectrum of one end-member formula as the detector records it (cached).

    Parameters
    ----------
    formula : str
        A chemical formula, e.g. ``"SiO2"``.
    inst : Instrument
        Beam energy (kV), take-off angle (degrees), resolution and the energy scale.

    Returns
    -------
    (3000,) float64
        Expected photons per electron per steradian in each 10 eV channel: the simulator's
        physics (:mod:`mingraph.acquire.simulate.eds_physics`) put on the recorded energy scale by
        :func:`mingraph.spectra.element_spectra.to_recorded`.

    Raises
    ------
    ValueError
        A formula that does not parse (mineral lists are checked when read, by
        :func:`mingraph.spectra.mineral_library.read_library`).

    Examples
    --------
    >>> s = end_member_spectrum("SiO2", Instrument(beam_kev=20.0))
    >>> s.shape, int(np.argmax(s[100:])) + 100  # Si Kα at 1.740 keV
    ((3000,), 173)
    """
    true = phase_physics(formula, float(inst.beam_kev), float(inst.takeoff_deg), float(inst.fwhm_mnka_ev))
    return to_recorded(true, inst)


def build_model(
    library: list[LibraryMineral], inst: Instrument, lo_ev: float = 450.0, continuum_scale: float = 1.0
) -> PhysicsModel:
    """The expected spectra of every class of ``library`` (all lattice points of each range) at ``inst``.

    Parameters
    ----------
    library
        Classes, in the order the classifier reports them.
    inst
        Beam, take-off, resolution and calibration.
    lo_ev
        Lowest energy used (eV; the default leaves out the carbon coat's C Kα).
    continuum_scale
        Factor on the physics' continuum (1 = Kramers' textbook constant; see :func:`with_continuum`).

    Raises
    ------
    InputError
        For an empty library.

    Examples
    --------
    >>> from mingraph.spectra.mineral_library import simulator_library
    >>> m = build_model(simulator_library()[:2], Instrument(beam_kev=20.0))
    >>> m.shapes.shape[0], bool(np.allclose(m.shapes.sum(1), 1.0))
    (2, True)
    """
    if not library:
        raise InputError("mineral library", "minerals", "no minerals to classify against")
    edges = bin_edges(inst, lo_ev)
    lines, conts, cls, xs, comps = [], [], [], [], []
    for c, minr in enumerate(library):
        ems = [end_member_spectrum(f, inst) for _, f in minr.end_members]
        cont = [element_spectra(f, inst)[2] for _, f in minr.end_members]
        for x in minr.grid():
            mw, wt = mass_composition(minr, x)
            s = sum(w * e for w, e in zip(mw, ems))
            k = sum(w * e for w, e in zip(mw, cont))
            lines.append(
                np.add.reduceat(s[edges[0] : edges[-1]] - k[edges[0] : edges[-1]], edges[:-1] - edges[0])
            )
            conts.append(np.add.reduceat(k[edges[0] : edges[-1]], edges[:-1] - edges[0]))
            cls.append(c)
            xs.append(x)
            comps.append(wt)
    elements = sorted({z for w in comps for z in w})
    cand_wt = np.array([[w.get(z, 0.0) for z in elements] for w in comps])
    cand_class = np.asarray(cls, dtype=np.int64)
    class_start = np.searchsorted(cand_class, np.arange(len(library) + 1))
    m = PhysicsModel(
        list(library), inst, edges, None, None, cand_class, class_start, xs, cand_wt, elements, None, None
    )
    m.line_part, m.continuum_part = np.maximum(np.array(lines), 0.0), np.array(conts)
    return with_continuum(m, continuum_scale)


def with_continuum(model: PhysicsModel, scale: float) -> PhysicsModel:
    """``model`` with every candidate's continuum times ``scale`` (shapes and noise tables redone).

    The physics' Kramers constant is a textbook value; a real detector's continuum (including
    counts it records short of their energy) sits above it, so the classifier fits one factor
    for the instrument (:func:`fit_continuum_scale`).
    """
    shapes = model.line_part + scale * model.continuum_part
    shapes = shapes / shapes.sum(1, keepdims=True)
    shapes = (1.0 - FLOOR) * shapes + FLOOR / shapes.shape[1]
    n = np.exp(LOG_N_GRID)
    mean = np.empty((shapes.shape[0], n.size))
    var = np.empty_like(mean)
    for g, ng in enumerate(n):
        mu, v = noise_moments(shapes * ng)
        mean[:, g], var[:, g] = mu.sum(1), v.sum(1)
    out = PhysicsModel(
        model.library,
        model.instrument,
        model.edges,
        shapes,
        np.ascontiguousarray(np.log(shapes).T.astype(np.float32)),
        model.cand_class,
        model.class_start,
        model.cand_x,
        model.cand_wt,
        model.elements,
        mean,
        var,
    )
    out.line_part, out.continuum_part, out.continuum_scale = (
        model.line_part,
        model.continuum_part,
        float(scale),
    )
    return out


def fit_continuum_scale(model: PhysicsModel, binned: np.ndarray, cand: np.ndarray) -> float:
    """The continuum factor (0.25-8) maximising Σ_i y_i · log p_{k_i} for spectra (n, B) assigned
    to candidates ``cand`` (n,) (bounded Brent search on its logarithm, ``scipy.optimize``)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(binned, dtype=np.float64)
    ks, inv = np.unique(cand, return_inverse=True)
    ysum = np.zeros((ks.size, y.shape[1]))
    np.add.at(ysum, inv, y)  # the likelihood only needs each candidate's summed counts
    lp, cp = model.line_part[ks], model.continuum_part[ks]

    def nll(t: float) -> float:
        p = lp + np.exp(t) * cp
        p = p / p.sum(1, keepdims=True)
        p = (1.0 - FLOOR) * p + FLOOR / p.shape[1]
        return -float(np.sum(ysum * np.log(p)))

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.25), np.log(8.0)), method="bounded").x))
