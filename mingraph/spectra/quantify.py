"""Standardless composition of a spectrum in the matrix of its best class, and the composition test.

Natural minerals are not their ideal formulas: biotite carries Ti, ilmenite Mn, amphiboles Na and
K.  Where a spectrum fits no candidate within counting noise, it is refitted with every element
free: y ~ Poisson(Σ_j a_j L_j), where the components L_j are the candidate's own line spectra of
each element (per its mass fraction in the formula), its continuum, and 1 wt % of each common
substituent (``MINOR``) in its pure-element physics.  The non-negative amounts a_j are the
Poisson maximum-likelihood solution by the EM algorithm for Poisson linear models (Shepp & Vardi
1982; Richardson 1972, Lucy 1974), run for a fixed number of multiplicative updates from the
formula.  The amounts give the element wt % (standardless: the matrix physics of the candidate
stands in for standards; oxygen by fit, normalised to the candidate's invisible H, Li, Be, B
and C).

The composition test compares the cations (Z >= 11, renormalised to 1, so the poorly modelled
O Kα at 0.5 keV does not decide) with the candidate's: an element passes when it lies within
``k`` σ, σ = max(abs_tol, rel_tol · w) for an element of the formula and ``foreign_tol`` for
one it lacks.  A spectrum that passes is that class; one that fails
is unknown.
"""

from __future__ import annotations

import numpy as np
import xraylib

from mingraph.acquire.fields import N_CHANNELS
from mingraph.acquire.simulate.minerals import composition
from mingraph.spectra.element_spectra import element_spectra
from mingraph.spectra.mineral_library import mass_composition
from mingraph.spectra.physics_model import PhysicsModel

MINOR = (11, 12, 13, 14, 15, 16, 17, 19, 20, 22, 24, 25, 26, 29, 30)
"""Elements fitted in every matrix: Na, Mg, Al, Si, P, S, Cl, K, Ca, Ti, Cr, Mn, Fe, Cu, Zn (not Ba
or Ce, whose L lines sit under Ti K)."""
VISIBLE_Z = 8
"""Elements from O up are seen in the fitted range (H, Li, Be, B and C are taken from the formula)."""


def candidate_components(model: PhysicsModel, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(J, B) binned components of candidate k and their atomic numbers (J,) (0 = continuum).

    Own elements at their formula mass fraction (amount 1 = the formula), the continuum, then 1 wt %
    of every ``MINOR`` element the candidate lacks.
    """
    minr = model.library[model.cand_class[k]]
    mw, wt = mass_composition(minr, model.cand_x[k])
    e = model.edges
    own: dict[int, np.ndarray] = {}
    cont = np.zeros(N_CHANNELS)
    for wi, (_, f) in zip(mw, minr.end_members):
        zs, lines, c = element_spectra(f, model.instrument)
        fracs = dict(composition(f))
        for z, line in zip(zs, lines):
            own[z] = own.get(z, 0.0) + wi * fracs[z] * line
        cont = cont + wi * c
    comps, ids = [], []
    for z in sorted(own):
        if z >= VISIBLE_Z:
            comps.append(own[z])
            ids.append(z)
    comps.append(cont)
    ids.append(0)
    for z in MINOR:
        if z not in own:
            _, lines, _ = element_spectra(xraylib.AtomicNumberToSymbol(z), model.instrument)
            comps.append(0.01 * lines[0])
            ids.append(z)
    a = np.array([np.add.reduceat(c[e[0] : e[-1]], e[:-1] - e[0]) for c in comps])
    return a, np.array(ids)


def fit_amounts(y: np.ndarray, comps: np.ndarray, iters: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Poisson ML non-negative amounts a (n, J) of components (n, J, B) for counts y (n, B), by EM.

    Starts from 1 for the first components and 0.1 for ``MINOR`` ones (EM keeps a zero at zero),
    all scaled to the total counts.  Returns (amounts (n, J), expected counts (n, B)).

    >>> c = np.array([[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]])
    >>> a, mu = fit_amounts(np.array([[30.0, 10.0, 40.0]]), c, iters=500)
    >>> np.round(a, 2).tolist()
    [[30.0, 10.0]]
    """
    y = np.asarray(y, dtype=np.float64)
    tot = comps.sum(2)  # (n, J)
    a = np.ones(tot.shape)
    scale = y.sum(1) / np.maximum(np.einsum("nj,njb->nb", a, comps).sum(1), 1e-300)
    a *= scale[:, None]
    for _ in range(iters):
        mu = np.einsum("nj,njb->nb", a, comps)
        a *= np.einsum("njb,nb->nj", comps, y / np.maximum(mu, 1e-300)) / np.maximum(tot, 1e-300)
    return a, np.einsum("nj,njb->nb", a, comps)


def cation_shares(model: PhysicsModel, k: int) -> dict[int, float]:
    """Candidate ``k``'s cations (Z >= 11) as shares of their total mass, {Z: share}.

    Examples
    --------
    >>> from mingraph.spectra.calibrate import Instrument
    >>> from mingraph.spectra.mineral_library import read_library
    >>> from mingraph.spectra.physics_model import build_model
    >>> lib = [m for m in read_library() if m.name in ("quartz", "albite")]
    >>> m = build_model(lib, Instrument(beam_kev=20.0))
    >>> {z: round(w, 3) for z, w in cation_shares(m, 1).items()}  # albite: Na 22.99, Al 26.98, 3 Si 84.26
    {11: 0.171, 13: 0.201, 14: 0.628}
    """
    ref = {int(z): float(w) for z, w in zip(model.elements, model.cand_wt[k]) if z >= 11 and w > 0}
    total = sum(ref.values()) or 1.0
    return {z: w / total for z, w in ref.items()}


def cation_misfit(
    ref: dict[int, float], wt: np.ndarray, ids: list[int], rel: float, abs_: float, foreign: float
) -> float:
    """Largest |Δ| / σ over cations between measured shares ``wt`` (J,) of elements ``ids`` and
    the reference shares ``ref`` ({Z: share}, summing to 1): σ = max(abs_, rel · r) for an
    element of the reference, ``foreign`` for one it lacks (the module docstring's test).

    Examples
    --------
    >>> round(cation_misfit({14: 1.0}, np.array([0.9, 0.1]), [14, 26], 0.35, 0.03, 0.03), 3)
    3.333
    """
    meas = {z: w for z, w in zip(ids, wt) if z >= 11}
    tm = sum(meas.values()) or 1.0
    worst = 0.0
    for z in set(ref) | set(meas):
        r, mm = ref.get(z, 0.0), meas.get(z, 0.0) / tm
        worst = max(worst, abs(mm - r) / (max(abs_, rel * r) if z in ref else foreign))
    return float(worst)


def composition_check(
    model: PhysicsModel,
    cand: np.ndarray,
    wt: np.ndarray,
    ids: list[int],
    rel: float,
    abs_: float,
    foreign: float,
) -> np.ndarray:
    """(n,) largest |Δ| / σ over cations between measured shares ``wt`` (n, J) of elements ``ids``
    and the candidates' (n,) (:func:`cation_misfit`)."""
    return np.array(
        [cation_misfit(cation_shares(model, kk), wt[i], ids, rel, abs_, foreign) for i, kk in enumerate(cand)]
    )


MIXTURE_SHARES = np.round(np.arange(0.5, 0.951, 0.05), 2)
"""The dominant phase's mass shares tried by :func:`blend_misfit` (0.5 to 0.95)."""


def cation_matrix(model: PhysicsModel, cands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(len(cands), E) cation shares of candidates ``cands`` over the model's elements from Na up
    (Z >= 11), each row summing to 1, and those elements' atomic numbers (E,)."""
    zs = np.asarray(model.elements)
    keep = zs >= 11
    r = np.asarray(model.cand_wt, np.float64)[np.asarray(cands)][:, keep]
    return r / np.maximum(r.sum(1, keepdims=True), 1e-300), zs[keep]


def blend_misfit(
    meas: np.ndarray,
    ref_a: np.ndarray,
    ref_b: np.ndarray,
    rel: float,
    abs_: float,
    foreign: float,
    shares: np.ndarray = MIXTURE_SHARES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The composition test of two phases under the beam, for every pair at once.

    ``meas`` (n, E) measured cation shares (rows summing to 1); ``ref_a``, ``ref_b`` (P, E) the
    cation shares of the P pairs' dominant and second phases.  Each pair is blended as
    α · a + (1 − α) · b for α in ``shares``, and tested as :func:`cation_misfit` does (σ =
    max(abs_, rel · r) for an element of either phase, ``foreign`` for one neither holds).  The
    blend is of cation mass shares, each phase's own matrix ignored (a standardless
    approximation).  Returns, for each spectrum, the least largest |Δ| / σ (n,), the pair giving
    it (n,) int and its α (n,).

    Examples
    --------
    >>> q, ab = np.array([[0.0, 0.0, 1.0]]), np.array([[0.171, 0.201, 0.628]])  # Na, Al, Si
    >>> worst, pair, alpha = blend_misfit(0.7 * q + 0.3 * ab, q, ab, 0.35, 0.03, 0.03)
    >>> float(round(worst[0], 6)), int(pair[0]), float(alpha[0])
    (0.0, 0, 0.7)
    """
    al = np.asarray(shares, np.float64)[None, :, None]
    blend = al * ref_a[:, None, :] + (1.0 - al) * ref_b[:, None, :]  # (P, A, E)
    held = (ref_a > 0)[:, None, :] | (ref_b > 0)[:, None, :]
    sigma = np.where(held, np.maximum(abs_, rel * blend), foreign)
    n = len(meas)
    worst = np.full(n, np.inf)
    pair = np.zeros(n, np.int64)
    alpha = np.full(n, float(shares[0]))
    for i0 in range(0, n, 16):  # (16, P, A, E) at a time
        d = np.abs(meas[i0 : i0 + 16, None, None, :] - blend[None]) / sigma[None]
        w = d.max(-1).reshape(d.shape[0], -1)
        best = w.argmin(1)
        worst[i0 : i0 + 16] = w[np.arange(len(best)), best]
        pair[i0 : i0 + 16], k = np.divmod(best, len(shares))
        alpha[i0 : i0 + 16] = np.asarray(shares)[k]
    return worst, pair, alpha
