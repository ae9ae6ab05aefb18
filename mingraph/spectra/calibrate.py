"""The instrument a spectrum was recorded with, and its energy calibration refined from the data.

mingraph's readers put every spectrum on the 10 eV grid with the file's own energy axis.  That
axis can be off by a few channels, and files rarely state the detector's resolution.  The
physics classifier needs both, so they are fitted to the summed spectrum of a map or point set:

    E_true = offset_ev + gain * E_grid        (eV)
    FWHM(E)² = FWHM(Mn Kα)² + 2.5 (E - 5895)  (eV²; Fiori & Newbury 1978, as the simulator)

The summed spectrum is modelled as non-negative amounts of each element's X-ray lines (energies,
fluorescence yields and radiative rates from xraylib, Schoonjans et al. 2011; sub-shell
ionisation by the simulator's Bethe-form cross section) plus a non-negative cubic B-spline
background, weighted by 1/max(y, 1) (Neyman's χ²), and solved by NNLS (Lawson & Hanson 1974)
for every trial (offset, gain, FWHM).  Those three are found from the file's values by variable
projection (Golub & Pereyra 1973): least squares on the NNLS fit's residuals, whose Jacobian
(Kaufman 1975) comes from the lines' analytic derivatives, by ``scipy.optimize.least_squares``
(trust-region reflective, Branch, Coleman & Li 1999); five or six trials where Nelder-Mead took
80-115 (0.03 s against 0.6-0.8 s on the real maps' sums).  This is how EDS software
calibrates from a spectrum with known peaks (Goldstein et al., *Scanning Electron Microscopy
and X-ray Microanalysis*, 4th ed., 2018, ch. 16), with every line of every candidate element
fitted at once rather than a few hand-picked peaks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy.interpolate import BSpline
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import least_squares, nnls
from scipy.special import ndtr, ndtri

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


@lru_cache(maxsize=4096)
def _families(
    z: int, beam_kev: float, lo_ev: float, hi_ev: float
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Line (energies eV, relative areas) of element z per template: K, L and M families apart for
    Z < 40, one template for heavier elements (their M, L and K lines tied by the physics).

    They depend on the beam and the range only, not on the calibration, so they are cached (the
    arrays are read-only)."""
    import xraylib

    e_kev, omega_r, nb, edge = element_lines(z, beam_kev)
    if e_kev.size == 0:
        return ()
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
        if m.any() and area[m].sum() > 0:  # lines of one energy (e.g. of two sub-shells) as one
            e_f, at = np.unique(e_ev[m], return_inverse=True)
            a_f = np.bincount(at.ravel(), weights=area[m]) / area[m].sum()
            e_f.flags.writeable = a_f.flags.writeable = False
            out.append((e_f, a_f))
    return tuple(out)


def _edge(z: int, shell: int) -> float | None:
    """Edge energy (keV) of a sub-shell of element z; None when xraylib has none."""
    import xraylib

    try:
        return float(xraylib.EdgeEnergy(z, shell)) or None
    except ValueError:
        return None


LINE_REACH = 8.0
"""Gaussian σ either side of its centre that :func:`_render` integrates a line of its family's
whole area over; beyond, under Φ(-8) = 6.2e-16 of the area lies on each side."""
LINE_TAIL = float(ndtr(-LINE_REACH))
"""What a line may leave out on either side, as a fraction of its family's area: a line of
relative area a is integrated within k σ of its centre, a Φ(-k) = :data:`LINE_TAIL` (k ≤ 8)."""


class _Edges:
    """Every line of a list of templates at one trial instrument, at the channel edges within its
    reach (:data:`LINE_TAIL`; clipped to the range): the normal CDF there and, on demand, the
    template sum's derivatives by offset (per eV), gain (per unit) and FWHM(Mn Kα) (per eV).

    A line of true energy E lands on the grid at (E - offset) / gain with σ(E) / gain, σ from
    :func:`~mingraph.acquire.simulate.eds_physics.fwhm_ev`; at grid edge x its CDF is Φ(u) with
    u = (gain x - E + offset) / σ(E), so ∂u/∂offset = 1/σ, ∂u/∂gain = x/σ and
    ∂u/∂FWHM = -u F / (2.355² σ²) (zero where the FWHM is floored at 20 eV)."""

    def __init__(self, lines: list[tuple[np.ndarray, np.ndarray]], inst: Instrument, lo: int, hi: int):
        self.n_templates, self.lo, self.hi = len(lines), lo, hi
        n_lines = [len(ln[0]) for ln in lines]
        e = np.concatenate([ln[0] for ln in lines]) if lines else np.zeros(0)
        a = np.concatenate([ln[1] for ln in lines]) if lines else np.zeros(0)
        row = np.repeat(np.arange(len(lines)), n_lines)
        sig = fwhm_ev(e, inst.fwhm_mnka_ev) * SIGMA_PER_FWHM if e.size else e  # true eV
        k = np.minimum(LINE_REACH, -ndtri(np.minimum(LINE_TAIL / np.maximum(a, 1e-300), 0.5)))
        centre, reach = (e - inst.offset_ev) / inst.gain, k * sig / inst.gain  # grid eV
        first = np.clip(np.floor((centre - reach) / CHANNEL_EV).astype(np.int64), lo, hi)
        last = np.clip(np.ceil((centre + reach) / CHANNEL_EV).astype(np.int64), lo, hi)
        inside = last > first  # lines with at least one channel in the range
        e, a, row, sig, first, last = (v[inside] for v in (e, a, row, sig, first, last))
        count = last - first + 1  # edges of each line
        edge = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count - first, count)
        self.x = edge * CHANNEL_EV
        self.s = np.repeat(sig, count)
        self.u = (inst.gain * self.x - np.repeat(e, count) + inst.offset_ev) / self.s
        self.cdf = ndtr(self.u)
        # the channels: line j's i-th has edges k, k + 1 at k = (its edges before) + i = (channels before) + j + i
        of_line = np.repeat(np.arange(e.size), count - 1)
        self.pair = np.arange(of_line.size) + of_line
        self.channel = edge[self.pair] - lo
        self.area, self.row = a[of_line], row[of_line]
        floored = sig <= 20.0 * SIGMA_PER_FWHM  # fwhm_ev's floor: σ does not move with F there
        self.dsig = np.where(floored, 0.0, inst.fwhm_mnka_ev * SIGMA_PER_FWHM**2 / sig)  # ∂σ/∂F
        self.count = count

    def templates(self) -> np.ndarray:
        """(templates, hi - lo) the lines integrated over the channels, summed per template."""
        n = self.hi - self.lo
        part = np.diff(self.cdf)[self.pair] * self.area
        flat = self.row * n + self.channel
        return np.bincount(flat, weights=part, minlength=self.n_templates * n).reshape(self.n_templates, n)

    def derivatives(self, amounts: np.ndarray) -> np.ndarray:
        """(3, hi - lo) derivatives of ``amounts @ templates()`` by offset, gain and FWHM(Mn Kα)."""
        pdf_s = np.exp(-0.5 * self.u * self.u) * (1.0 / math.sqrt(2.0 * math.pi)) / self.s  # ∂Φ/∂offset
        w = amounts[self.row] * self.area
        n, lo, hi = self.hi - self.lo, self.pair, self.pair + 1
        return np.stack(
            [
                np.bincount(self.channel, weights=(d[hi] - d[lo]) * w, minlength=n)
                for d in (pdf_s, pdf_s * self.x, -pdf_s * self.u * np.repeat(self.dsig, self.count))
            ]
        )


def _render(lines: list[tuple[np.ndarray, np.ndarray]], inst: Instrument, lo: int, hi: int) -> np.ndarray:
    """(templates, hi - lo) Gaussian line families integrated over grid channels lo..hi.

    Each line is integrated over the channels within its reach: what lies beyond, on either side, is
    under :data:`LINE_TAIL` (6.2e-16) of its family's area; all lines at once."""
    return _Edges(lines, inst, lo, hi).templates()


@lru_cache(maxsize=16)
def _background(lo: int, hi: int) -> np.ndarray:
    """(basis, hi - lo) cubic B-splines: knots every 0.5 keV up to 3 keV, then every 2 keV
    (cached, read-only)."""
    e = (np.arange(lo, hi) + 0.5) * CHANNEL_EV
    inner = np.unique(np.concatenate([np.arange(lo * 10, 3000, 500), np.arange(3000, hi * 10, 2000)]))
    t = np.concatenate([[lo * 10.0] * 3, inner, [hi * 10.0] * 4]).astype(np.float64)
    n = len(t) - 4
    out = np.nan_to_num(
        np.array([BSpline.basis_element(t[i : i + 5], extrapolate=False)(e) for i in range(n)])
    )
    out.flags.writeable = False
    return out


class _Projection:
    """The weighted spectrum's NNLS on line templates and background at trial instruments, the
    residuals and their variable-projection Jacobian (Golub & Pereyra 1973; Kaufman 1975).

    At a trial instrument the amounts solve min ‖W (y - A c)‖², c ≥ 0 (W = 1/√max(y, 1)).  Each
    solve starts from the previous one's amounts: Lawson & Hanson's (1974) active-set method on the
    Gram matrix, where a step is least squares on the positive set by its Cholesky factor, ends
    when no other column would lower the χ² (the Karush-Kuhn-Tucker conditions: the NNLS optimum),
    in a step or two where the trial moved little; the first solve (or one that fails) is
    ``scipy.optimize.nnls``'s from scratch.  The residuals' Jacobian by the
    three nonlinear parameters is Kaufman's: -P⊥ W (∂A/∂p) c, P⊥ the projection orthogonal to the
    positive amounts' weighted columns."""

    def __init__(
        self, lines: list[tuple[np.ndarray, np.ndarray]], w: np.ndarray, yw: np.ndarray, lo: int, hi: int
    ):
        self.lines, self.w, self.b, self.lo, self.hi = lines, w, yw * w, lo, hi
        self.bkg = _background(lo, hi) * w  # (basis, channels), weighted
        self.gram_bkg, self.h_bkg = self.bkg @ self.bkg.T, self.bkg @ self.b
        self.coef: np.ndarray | None = None  # the last solution's amounts (the next one's start)
        self.n_solves = 0
        self._last: tuple | None = None

    def solve(self, inst: Instrument) -> tuple[float, np.ndarray, np.ndarray]:
        """χ² (weighted residual sum of squares), amounts (templates, then background) and the
        weighted residuals at ``inst``."""
        self.n_solves += 1
        edges = _Edges(self.lines, inst, self.lo, self.hi)
        tw = edges.templates() * self.w
        a = np.vstack([tw, self.bkg])  # (columns, channels)
        gram = np.block([[tw @ tw.T, tw @ self.bkg.T], [self.bkg @ tw.T, self.gram_bkg]])
        h = np.concatenate([tw @ self.b, self.h_bkg])
        coef, factor = self._warm(gram, h)
        if coef is None:
            coef, _ = nnls(a.T, self.b, maxiter=50 * a.shape[0])
        self.coef = coef
        r = self.b - coef @ a
        self._last = (inst, edges, a, gram, coef, factor, float(r @ r), r)
        return float(r @ r), coef, r

    def at(self, inst: Instrument) -> tuple[float, np.ndarray, np.ndarray]:
        """:meth:`solve` at ``inst``, the last solve's when that was at ``inst``."""
        if self._last is not None and self._last[0] == inst:
            return self._last[6], self._last[4], self._last[7]
        return self.solve(inst)

    def _warm(self, gram: np.ndarray, h: np.ndarray):
        """NNLS by Lawson & Hanson's active-set method on the Gram matrix (``gram`` = AᵀA,
        ``h`` = Aᵀb), from the previous solution (feasible: its positive amounts stay the start's
        set); its amounts and the Cholesky factor of its positive set's Gram matrix, or (None, None)
        where there is no previous solution, a factorisation fails or it takes over 3 x columns
        steps."""
        if self.coef is None:
            return None, None
        x, s = self.coef.copy(), self.coef > 0
        tol = 1e-10 * np.sqrt(np.diag(gram) * (self.b @ self.b))  # a gradient this small is zero
        factor = None
        try:
            for _ in range(3 * h.size):
                z = np.zeros(h.size)
                if s.any():
                    factor = cho_factor(gram[np.ix_(s, s)], check_finite=False)
                    z[s] = cho_solve(factor, h[s], check_finite=False)
                neg = np.flatnonzero(s & (z <= 0))
                if neg.size:  # step towards z until the first amount reaches zero; it leaves the set
                    ratio = x[neg] / (x[neg] - z[neg])
                    x = x + ratio.min() * (z - x)
                    x[neg[np.argmin(ratio)]] = 0.0
                    s &= x > 0
                    x[~s] = 0.0
                    continue
                x = z
                grad = h - gram[:, s] @ x[s]  # -1/2 the χ² gradient: a column with grad > 0 would enter
                grad[s] = -np.inf
                j = int(np.argmax(grad - tol))
                if grad[j] <= tol[j]:
                    return x, factor if s.any() else None
                s[j] = True
        except np.linalg.LinAlgError:
            pass
        return None, None

    def jacobian(self) -> np.ndarray:
        """(channels, 3) Kaufman Jacobian of the last solve's residuals by offset (per eV), gain
        (per unit) and FWHM(Mn Kα) (per eV)."""
        inst, edges, a, gram, coef, factor = self._last[:6]
        x = (edges.derivatives(coef[: edges.n_templates]) * self.w).T  # (channels, 3)
        s = coef > 0
        if s.any():
            if factor is None:
                try:
                    factor = cho_factor(gram[np.ix_(s, s)], check_finite=False)
                except np.linalg.LinAlgError:
                    factor = None
            if factor is not None:
                x = x - a[s].T @ cho_solve(factor, a[s] @ x, check_finite=False)
            else:
                x = x - a[s].T @ np.linalg.lstsq(a[s].T, x, rcond=None)[0]
        return -x


def fit_calibration(
    summed: np.ndarray,
    start: Instrument,
    elements: list[int] | None = None,
    lo_ev: float = 250.0,
    hi_ev: float | None = None,
    fit_gain: bool = True,
) -> CalibrationFit:
    """Refine offset, gain and FWHM at Mn Kα from a summed spectrum on the 10 eV grid.

    The line families are those the file's values explain with at least ~5 σ of counts (one NNLS
    of every candidate element's lines); the three parameters then minimise the Neyman χ² of the
    NNLS fit by variable projection (:class:`_Projection`) with ``scipy.optimize.least_squares``'s
    trust-region reflective method (Branch, Coleman & Li 1999) within the :class:`Instrument`'s
    bounds.

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
    CalibrationFit whose ``instrument`` has ``source="fitted"``; its ``n_evaluations`` counts the
    NNLS solves.

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
        for fam in _families(z, float(start.beam_kev), float(lo_ev) - 200.0, float(hi_ev) + 200.0):
            lines.append(fam)
            owner.append(z)
    with _one_blas_thread():
        return _fit(yw, start, lines, owner, lo, hi, fit_gain)


@lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's handle on the BLAS libraries loaded (numpy's and scipy's, both loaded by
    this module's imports)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    """A context in which BLAS runs on one thread: the fit's matrices are ~2000 x 70, where a
    second thread gains little and, when the cores are busy, waits for a descheduled peer (measured
    2.9 s instead of 0.19 s for the chevkinite map's fit at load ~4 on 2 cores)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def _fit(
    yw: np.ndarray,
    start: Instrument,
    lines: list[tuple[np.ndarray, np.ndarray]],
    owner: list[int],
    lo: int,
    hi: int,
    fit_gain: bool,
) -> CalibrationFit:
    """:func:`fit_calibration` of the counts ``yw`` of grid channels lo..hi and the candidate
    line families ``lines`` (of elements ``owner``)."""
    w = 1.0 / np.sqrt(np.maximum(yw, 1.0))
    every = _Projection(lines, w, yw, lo, hi)
    _, coef, _ = every.solve(start)
    # keep the line families the start explains with at least ~5 sigma of counts
    amt = coef[: len(lines)] * every._last[1].templates().sum(1)
    keep = [i for i in range(len(lines)) if amt[i] > 5.0 * math.sqrt(max(yw.sum(), 1.0)) * 0.01]
    keep = keep or list(range(len(lines)))
    fit = _Projection([lines[i] for i in keep], w, yw, lo, hi)
    fit.coef = np.concatenate([every.coef[keep], every.coef[len(lines) :]])
    fit.n_solves = every.n_solves

    # p = (offset - start's, eV; gain / start's - 1, per mille; FWHM(Mn Kα), eV), within the
    # Instrument's bounds; the gain is fitted in per mille so all three move by a few units
    g_scale = start.gain * 1e-3
    lower = [-500.0 - start.offset_ev, (0.9 / start.gain - 1.0) * 1e3, 40.0]
    upper = [500.0 - start.offset_ev, (1.1 / start.gain - 1.0) * 1e3, 400.0]
    free = [0, 1, 2] if fit_gain else [0, 2]

    def inst_of(q: np.ndarray) -> Instrument:
        p = np.zeros(3)
        p[free] = q
        return Instrument(
            start.beam_kev,
            start.takeoff_deg,
            p[2],
            start.offset_ev + p[0],
            start.gain + g_scale * p[1],
            "fitted",
        )

    def residuals(q: np.ndarray) -> np.ndarray:
        return fit.at(inst_of(q))[2]

    def jacobian(q: np.ndarray) -> np.ndarray:
        fit.at(inst_of(q))
        return (fit.jacobian() * [1.0, g_scale, 1.0])[:, free]

    q0 = np.clip(np.array([0.0, 0.0, start.fwhm_mnka_ev])[free], np.array(lower)[free], np.array(upper)[free])
    res = least_squares(
        residuals,
        q0,
        jac=jacobian,
        bounds=(np.array(lower)[free], np.array(upper)[free]),
        method="trf",
        x_scale=1.0,
        ftol=1e-10,
        xtol=1e-4,  # a step under ~0.01 (eV, per mille) ends it: the next would be ~20x smaller
        gtol=1e-10,
    )
    inst = inst_of(res.x)
    chi2, _, _ = fit.at(inst)
    import xraylib

    names = tuple(sorted({xraylib.AtomicNumberToSymbol(owner[i]) for i in keep}))
    dof = max(hi - lo - len(keep) - fit.bkg.shape[0] - 3, 1)
    return CalibrationFit(inst, start, names, float(chi2 / dof), fit.n_solves)
