"""The instrument a spectrum was recorded with, and its energy calibration refined from the data.

mingraph's readers put every spectrum on the 10 eV grid with the file's own energy axis.  That
axis can be off by a few channels, and files rarely state the detector's resolution.  The
physics classifier needs both, so they are fitted to the summed spectrum of a map or point set:

    E_true = offset_ev + gain * E_grid        (eV)
    FWHM(E)² = FWHM(Mn Kα)² + 2.5 (E - 5895)  (eV²; Fiori & Newbury 1978, as the simulator)

The summed spectrum is modelled as non-negative amounts of each element's X-ray lines (energies,
fluorescence yields and radiative rates from xraylib, Schoonjans et al. 2011; sub-shell
ionisation by the simulator's Bethe-form cross section) plus a non-negative cubic B-spline
background, weighted by 1/max(y, 1) (Neyman's χ²), and solved by NNLS (Lawson & Hanson 1974,
``scipy.optimize.nnls``) for every trial (offset, gain, FWHM); those three are found by
Nelder-Mead (``scipy.optimize.minimize``) from the file's values.  This is how EDS software
calibrates from a spectrum with known peaks (Goldstein et al., *Scanning Electron Microscopy
and X-ray Microanalysis*, 4th ed., 2018, ch. 16), with every line of every candidate element
fitted at once rather than a few hand-picked peaks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.interpolate import BSpline
from scipy.optimize import minimize, nnls
from scipy.special import ndtr

from mingraph.acquire.fields import CHANNEL_EV, N_CHANNELS
from mingraph.acquire.simulate.eds_physics import (
    detector_efficiency,
    element_lines,
    fwhm_ev,
    ionisations,
    mean_ionisation_kev,
)
from mingraph.common.errors import InputError

SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
MIN_CALIBRATION_COUNTS = 2000
"""Counts (in the fitted range) a summed spectrum needs for :func:`fit_calibration`."""


def calibration_counts(summed: np.ndarray, start: Instrument, lo_ev: float = 250.0) -> float:
    """Counts of ``summed`` in the range :func:`fit_calibration` fits (``lo_ev`` up to 95 % of the
    beam energy, at most 20 keV)."""
    hi_ev = min(0.95 * start.beam_kev * 1000.0, 20000.0)
    return float(np.asarray(summed, np.float64)[int(lo_ev // CHANNEL_EV) : int(hi_ev // CHANNEL_EV)].sum())


@dataclass(frozen=True)
class Instrument:
    """Acquisition conditions: beam (kV), take-off angle (degrees), FWHM at Mn Kα (eV) and the
    energy calibration ``E_true = offset_ev + gain * E_grid`` (eV); ``source`` says where the
    values came from (``"metadata"``, ``"default"``, ``"fitted"``)."""

    beam_kev: float = 20.0
    takeoff_deg: float = 35.0
    fwhm_mnka_ev: float = 130.0
    offset_ev: float = 0.0
    gain: float = 1.0
    source: str = "default"

    def __post_init__(self):
        checks = {
            "beam_kev": 1.0 <= self.beam_kev <= 30.0,
            "takeoff_deg": 5.0 <= self.takeoff_deg <= 90.0,
            "fwhm_mnka_ev": 40.0 <= self.fwhm_mnka_ev <= 400.0,
            "offset_ev": abs(self.offset_ev) <= 500.0,
            "gain": 0.9 <= self.gain <= 1.1,
        }
        for k, ok in checks.items():
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and ok):
                raise InputError("instrument", k, f"out of range: {v!r}")

    def to_dict(self) -> dict:
        """JSON-able record (what outputs store)."""
        return asdict(self)

    def true_energy(self, grid_ev: np.ndarray | float) -> np.ndarray | float:
        """True energy (eV) of grid energies ``grid_ev``."""
        return self.offset_ev + self.gain * np.asarray(grid_ev, dtype=np.float64)


@dataclass(frozen=True)
class CalibrationFit:
    """The fitted instrument, the file's starting values, the elements whose lines were fitted,
    and the fit's reduced Neyman χ² (1 = counting noise only)."""

    instrument: Instrument
    start: Instrument
    elements: tuple[str, ...]
    reduced_chi2: float
    n_evaluations: int

    def to_dict(self) -> dict:
        """JSON-able record."""
        return {
            "instrument": self.instrument.to_dict(),
            "start": self.start.to_dict(),
            "elements": list(self.elements),
            "reduced_chi2": self.reduced_chi2,
            "n_evaluations": self.n_evaluations,
        }


def _families(z: int, beam_kev: float, lo_ev: float, hi_ev: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Line (energies eV, relative areas) of element z per template: K, L and M families apart for
    Z < 40, one template for heavier elements (their M, L and K lines tied by the physics)."""
    import xraylib

    e_kev, omega_r, nb, edge = element_lines(z, beam_kev)
    if e_kev.size == 0:
        return []
    a = xraylib.AtomicWeight(z)
    n_ion = ionisations(edge, beam_kev, z / a, math.log(mean_ionisation_kev(z)))
    e_ev = e_kev * 1000.0
    eff = np.interp(e_ev, (np.arange(N_CHANNELS) + 0.5) * CHANNEL_EV, detector_efficiency())
    area = omega_r * nb * n_ion * eff
    inside = (e_ev >= lo_ev) & (e_ev < hi_ev)
    fam = np.zeros(e_ev.size, np.int64)
    if z < 40:  # K, L and M families apart: 0, 1, 2 by the sub-shell edge that holds the vacancy
        l3, m5 = (_edge(z, xraylib.L3_SHELL), _edge(z, xraylib.M5_SHELL))
        fam = np.where(edge > l3 * 1.5 if l3 else edge > 0, 0, np.where(edge >= (m5 or 0) * 1.5, 1, 2))
    out = []
    for f in np.unique(fam):
        m = inside & (fam == f)
        if m.any() and area[m].sum() > 0:
            out.append((e_ev[m], area[m] / area[m].sum()))
    return out


def _edge(z: int, shell: int) -> float | None:
    """Edge energy (keV) of a sub-shell of element z; None when xraylib has none."""
    import xraylib

    try:
        return float(xraylib.EdgeEnergy(z, shell)) or None
    except ValueError:
        return None


def _render(lines: list[tuple[np.ndarray, np.ndarray]], inst: Instrument, lo: int, hi: int) -> np.ndarray:
    """(templates, hi - lo) Gaussian line families integrated over grid channels lo..hi.

    Each line is integrated over the channels within :data:`LINE_REACH` σ of its centre (beyond,
    under 1e-15 of its area), all lines at once."""
    n = hi - lo
    out = np.zeros((len(lines), n))
    if not lines:
        return out
    e = np.concatenate([ln[0] for ln in lines])
    a = np.concatenate([ln[1] for ln in lines])
    row = np.repeat(np.arange(len(lines)), [len(ln[0]) for ln in lines])
    centre = (e - inst.offset_ev) / inst.gain  # where a true energy lands on the grid
    sigma = fwhm_ev(e, inst.fwhm_mnka_ev) * SIGMA_PER_FWHM / inst.gain
    first = np.floor((centre - LINE_REACH * sigma) / CHANNEL_EV).astype(np.int64) - lo
    last = np.ceil((centre + LINE_REACH * sigma) / CHANNEL_EV).astype(np.int64) - lo
    width = int(max(1, (last - first).max()))
    col = first[:, None] + np.arange(width + 1)[None, :]  # channel edges, lo-relative
    cdf = ndtr(((col + lo) * CHANNEL_EV - centre[:, None]) / sigma[:, None])
    part = np.diff(cdf, axis=1) * a[:, None]  # (lines, width): channel col[:, :-1]
    ch = col[:, :-1]
    ok = (ch >= 0) & (ch < n)
    flat = (row[:, None] * n + ch)[ok]
    out += np.bincount(flat, weights=part[ok], minlength=len(lines) * n).reshape(len(lines), n)
    return out


LINE_REACH = 8.0
"""Gaussian σ either side of a line's centre that :func:`_render` integrates it over."""


def _background(lo: int, hi: int) -> np.ndarray:
    """(basis, hi - lo) cubic B-splines: knots every 0.5 keV up to 3 keV, then every 2 keV."""
    e = (np.arange(lo, hi) + 0.5) * CHANNEL_EV
    inner = np.unique(np.concatenate([np.arange(lo * 10, 3000, 500), np.arange(3000, hi * 10, 2000)]))
    t = np.concatenate([[lo * 10.0] * 3, inner, [hi * 10.0] * 4]).astype(np.float64)
    n = len(t) - 4
    out = np.array([BSpline.basis_element(t[i : i + 5], extrapolate=False)(e) for i in range(n)])
    return np.nan_to_num(out)


def fit_calibration(
    summed: np.ndarray,
    start: Instrument,
    elements: list[int] | None = None,
    lo_ev: float = 250.0,
    hi_ev: float | None = None,
    fit_gain: bool = True,
) -> CalibrationFit:
    """Refine offset, gain and FWHM at Mn Kα from a summed spectrum on the 10 eV grid.

    Parameters
    ----------
    summed
        (3000,) counts (any dtype; the sum of a map's or a point set's spectra).
    start
        The file's values (beam and take-off are kept; offset, gain and FWHM are starting points).
    elements
        Atomic numbers whose lines may be present (default: Z = 6..92).
    lo_ev, hi_ev
        Energy range fitted (grid eV; ``hi_ev`` defaults to 95 % of the beam energy, at most 20 keV).
    fit_gain
        Fit the gain too (else it stays at ``start.gain``).

    Returns
    -------
    CalibrationFit whose ``instrument`` has ``source="fitted"``.

    Raises
    ------
    InputError
        For a spectrum of the wrong shape, negative or non-finite counts, or fewer than 2000 counts
        in the range (too few to place peaks).

    Examples
    --------
    >>> from mingraph.acquire.simulate.eds_physics import phase_physics
    >>> true = Instrument(20.0, 35.0, 124.0, offset_ev=12.0, gain=1.0)
    >>> s = phase_physics("CaTiSiO5", 20.0, 35.0, 124.0)
    >>> grid = (np.arange(3001) * 10.0 - 12.0) / 1.0   # grid edges in true eV, shifted by the offset
    >>> from mingraph.spectra.physics_model import to_recorded
    >>> y = to_recorded(s, true) / s.sum() * 1e6
    >>> fit = fit_calibration(y, Instrument(20.0, 35.0, 130.0), elements=[8, 14, 20, 22])
    >>> round(fit.instrument.offset_ev), round(fit.instrument.fwhm_mnka_ev)
    (12, 124)
    """
    y = np.asarray(summed, dtype=np.float64)
    if y.shape != (N_CHANNELS,) or not np.isfinite(y).all() or (y < 0).any():
        raise InputError("summed spectrum", "counts", f"expected ({N_CHANNELS},) non-negative counts")
    hi_ev = min(0.95 * start.beam_kev * 1000.0, 20000.0) if hi_ev is None else hi_ev
    lo, hi = int(lo_ev // CHANNEL_EV), int(hi_ev // CHANNEL_EV)
    yw = y[lo:hi]
    if yw.sum() < MIN_CALIBRATION_COUNTS:
        raise InputError("summed spectrum", "counts", f"{yw.sum():.0f} counts: too few to fit a calibration")
    zs = list(range(6, 93)) if elements is None else sorted(set(int(z) for z in elements))
    lines, owner = [], []
    for z in zs:
        for fam in _families(z, start.beam_kev, lo_ev - 200.0, hi_ev + 200.0):
            lines.append(fam)
            owner.append(z)
    bkg = _background(lo, hi)
    w = 1.0 / np.sqrt(np.maximum(yw, 1.0))
    n_eval = [0]

    def solve(inst: Instrument, keep: list[int]) -> tuple[float, np.ndarray]:
        a = np.vstack([_render([lines[i] for i in keep], inst, lo, hi), bkg])
        coef, rnorm = nnls((a * w).T, yw * w, maxiter=50 * a.shape[0])
        n_eval[0] += 1
        return rnorm**2, coef

    _, coef = solve(start, list(range(len(lines))))
    # keep the line families the start explains with at least ~5 sigma of counts
    amt = coef[: len(lines)] * _render(lines, start, lo, hi).sum(1)
    keep = [i for i in range(len(lines)) if amt[i] > 5.0 * math.sqrt(max(yw.sum(), 1.0)) * 0.01]
    keep = keep or list(range(len(lines)))

    def inst_of(p: np.ndarray) -> Instrument:
        g = start.gain * (1.0 + p[1] * 1e-3) if fit_gain else start.gain
        return Instrument(start.beam_kev, start.takeoff_deg, abs(p[2]), start.offset_ev + p[0], g, "fitted")

    def cost(p: np.ndarray) -> float:
        try:
            return solve(inst_of(p), keep)[0]
        except InputError:
            return float("inf")

    p0 = np.array([0.0, 0.0, start.fwhm_mnka_ev])
    simplex = p0 + np.array([[0, 0, 0], [15.0, 0, 0], [0, 3.0, 0], [0, 0, 15.0]])
    if not fit_gain:
        simplex = simplex[[0, 1, 3]][:, [0, 2]]
        res = minimize(
            lambda q: cost(np.array([q[0], 0.0, q[1]])),
            p0[[0, 2]],
            method="Nelder-Mead",
            options={"initial_simplex": simplex, "xatol": 0.2, "fatol": 1e-6 * cost(p0)},
        )
        best = np.array([res.x[0], 0.0, res.x[1]])
    else:
        res = minimize(
            cost,
            p0,
            method="Nelder-Mead",
            options={"initial_simplex": simplex, "xatol": 0.2, "fatol": 1e-6 * cost(p0)},
        )
        best = res.x
    inst = inst_of(best)
    chi2, _ = solve(inst, keep)
    import xraylib

    names = tuple(sorted({xraylib.AtomicNumberToSymbol(owner[i]) for i in keep}))
    dof = max(hi - lo - len(keep) - bkg.shape[0] - 3, 1)
    return CalibrationFit(inst, start, names, float(chi2 / dof), n_eval[0])
