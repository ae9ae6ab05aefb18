"""Grain-boundary spectra named by likelihood: blends of two of the set's own phases.

Where the physics reaches counting noise (simulated spectra, or a detector it models well), a
spectrum measured near a grain boundary is two phases under the beam, in the share the beam's
footprint gives them.  Judged as one phase it either fits none (unknown), or it fits a third
mineral whose composition lies between the two (a quartz–microcline boundary passes for
polylithionite: K, Al, Si and invisible Li).  :func:`name_blends` tests such spectra against every
blend α · p_a + (1 − α) · p_b of the best candidates of two of the set's phases and names the
majority phase, as vendors give a boundary pixel to its majority phase.

The composition counterpart for a real detector, whose spectra the physics misses by more than
counting noise, is :func:`mingraph.spectra.refit.unmix`.
"""

from __future__ import annotations

import numpy as np

from mingraph.spectra.physics_model import FLOOR, PhysicsModel, end_member_spectrum
from mingraph.spectra.physics_result import NO_FIT, OK, Settings
from mingraph.spectra.refit import MIN_PRESENT

BLEND_TOP = 5
"""Phases of the set tried per spectrum (the most likely alone); every ordered pair of them is blended."""
PENALTY = 2.0
"""Log-likelihood a blend gives up for each share beyond the first when it is weighed against a
reference mineral (an information-criterion penalty, AIC's 1 a parameter doubled; on leave-one-out,
before "not in the list" spectra were kept out of blending, 1.0 let 12 of hematite's 72 spectra pass
for a magnetite blend and 2.0 let 9; with them kept out, 0.5 and 2.0 both give the unblended 7)."""
MIN_SHARE = 0.01
"""A blend component's share below which it counts as absent (for the penalty on free shares)."""
MOUNT_FORMULA = "C21H25O5"
"""The mounting medium under the beam at a grain's edge: bisphenol-A epoxy cured with an amine,
approximately (the simulator's resin, :data:`mingraph.acquire.simulate.minerals.EPOXY`).  It is a
blend component, never a label: most of its photons are continuum and C Kα, below the fitted range."""


def mount_shape(model: PhysicsModel, formula: str = MOUNT_FORMULA) -> np.ndarray:
    """(B,) float64 the mounting medium's expected spectrum in ``model``'s bins, normalised and
    floored as the model's candidates are (:func:`mingraph.spectra.physics_model.with_continuum`).

    >>> from mingraph.spectra.mineral_library import simulator_library
    >>> from mingraph.spectra.physics_model import build_model
    >>> from mingraph.spectra.calibrate import Instrument
    >>> m = build_model(simulator_library()[:1], Instrument(beam_kev=20.0))
    >>> p = mount_shape(m)
    >>> p.shape == (m.shapes.shape[1],), bool(np.isclose(p.sum(), 1.0))
    (True, True)
    """
    e = model.edges
    spec = end_member_spectrum(formula, model.instrument)
    line = np.maximum(np.add.reduceat(spec[e[0] : e[-1]], e[:-1] - e[0]), 0.0)
    shape = line / max(line.sum(), 1e-300)
    return (1.0 - FLOOR) * shape + FLOOR / shape.size


def blend_share(y: np.ndarray, p1: np.ndarray, p2: np.ndarray, iters: int = 8) -> np.ndarray:
    """α (n,) maximising Σ_b y_b log(α p1_b + (1 − α) p2_b) on [0, 1], by Newton steps from 0.8.

    Parameters
    ----------
    y
        (n, B) counts in the model's bins.
    p1, p2
        (n, B) the two expected spectra (each row sums to 1).

    Returns
    -------
    numpy.ndarray
        (n,) float64 share of ``p1``.  The log-likelihood is concave in α, so Newton's steps
        (clipped to [0, 1]) converge to its maximum.

    Examples
    --------
    >>> p1, p2 = np.array([[0.9, 0.1]]), np.array([[0.1, 0.9]])
    >>> float(np.round(blend_share(np.array([[50.0, 50.0]]), p1, p2)[0], 6))
    0.5
    """
    a = np.full(y.shape[0], 0.8)
    d = p1 - p2
    for _ in range(iters):
        m = p2 + a[:, None] * d
        g = (y * d / m).sum(1)
        h = -(y * (d / m) ** 2).sum(1)
        a = np.clip(a - g / np.minimum(h, -1e-12), 0.0, 1.0)
    return a


def blend_weights(y: np.ndarray, p: np.ndarray, iters: int = 60) -> np.ndarray:
    """Shares w (n, T) ≥ 0, Σ w = 1, maximising Σ_b y_b log(Σ_t w_t p_tb): the maximum-likelihood
    proportions of a finite mixture with fixed components, by EM (Dempster, Laird & Rubin 1977:
    w_t ← w_t Σ_b y_b p_tb / (N Σ_s w_s p_sb), which never lowers the likelihood).

    Parameters
    ----------
    y
        (n, B) counts in the model's bins.
    p
        (n, T, B) each spectrum's T expected spectra (rows summing to 1); float32 runs in float32.
    iters
        EM steps.

    Returns
    -------
    numpy.ndarray
        (n, T) float64 shares.

    Examples
    --------
    >>> p = np.array([[[0.9, 0.1], [0.1, 0.9]]])
    >>> np.round(blend_weights(np.array([[70.0, 30.0]]), p), 3).tolist()
    [[0.75, 0.25]]
    """
    n_t = p.shape[1]
    w = np.full((y.shape[0], n_t), 1.0 / n_t, dtype=p.dtype)
    cnt = np.maximum(y.sum(1, keepdims=True), 1e-30).astype(p.dtype)
    y = y.astype(p.dtype, copy=False)
    for _ in range(iters):
        mix = np.maximum(np.einsum("nt,ntb->nb", w, p), 1e-30)
        w = w * np.einsum("nb,ntb->nt", y / mix, p) / cnt
    return w.astype(np.float64)


def set_phases(out: dict, n_classes: int) -> np.ndarray:
    """(P,) int64 the set's phases: classes that at least :data:`MIN_PRESENT` spectra are
    classified as alone (status OK, no mixture)."""
    alone = (out["status"] == OK) & ~out["mixture"] & (out["label"] < n_classes)
    classes, counts = np.unique(out["label"][alone], return_counts=True)
    return classes[counts >= MIN_PRESENT]


def name_blends(
    spectra: np.ndarray,
    out: dict,
    model: PhysicsModel,
    s: Settings,
    reference: PhysicsModel | None = None,
    chunk: int = 2048,
) -> np.ndarray:
    """Name the majority phase of spectra that are a blend of the set's phases, in place.

    Tried: every spectrum with enough counts, status OK or "no mineral fits" (never one that a
    reference mineral explains), whose label is not one of the set's phases (:func:`set_phases`:
    unknown, or a class fewer than :data:`MIN_PRESENT` spectra are alone).  For each, the
    :data:`BLEND_TOP` set phases whose best candidates explain it best alone, and the mount
    (:func:`mount_shape`), get their maximum-likelihood shares (:func:`blend_weights`).  Spectra
    whose deviance already fails the noise test at the bound Σ y log max_t p_t (no mixture beats
    its largest component) are not fitted.  The blend is accepted where

    - it fits to counting noise: z = (D − E(N) − τ² N) / √V(N) ≤ ``z_unknown``, with D its
      Poisson deviance and E, V the noise moments of the majority phase's candidate
      (:mod:`mingraph.spectra.physics_model`);
    - it explains the spectrum at least as well as any single candidate of the list;
    - and, less :data:`PENALTY` for each share beyond the first, better than any reference
      mineral alone or with the mount (a mineral outside the list is not imitated by a blend).

    Then the mineral of the largest share a is the label; the class probabilities are the
    minerals' shares (the mount's left out, renormalised), the spectrum is flagged a mixture with
    the second mineral b as partner, and its deviance, z and composition are the blend's.

    Parameters
    ----------
    spectra
        (n, 3000) raw counts on the 10 eV grid, as given to
        :func:`~mingraph.spectra.physics.classify_spectra`.
    out
        That function's per-spectrum result arrays (changed in place).
    model, s, reference
        Its physics model, settings and reference minerals.
    chunk
        Spectra per block (memory ~ chunk × candidates × 8 bytes).

    Returns
    -------
    numpy.ndarray
        (n,) bool: the spectra named here.

    Examples
    --------
    A 60:40 blend of two phases the set holds alone is named its majority phase:

    >>> from mingraph.spectra.mineral_library import simulator_library
    >>> from mingraph.spectra.physics_model import build_model
    >>> from mingraph.spectra.physics import classify_spectra
    >>> from mingraph.spectra.calibrate import Instrument
    >>> from mingraph.acquire.simulate.eds_physics import mineral_spectrum
    >>> rng = np.random.default_rng(0)
    >>> q, k = (mineral_spectrum(n, {"beam_kev": 20.0}) for n in ("quartz", "microcline"))
    >>> y = np.concatenate([rng.poisson(m * 2000 / m.sum(), (8, 3000)) for m in (q, k)]
    ...     + [rng.poisson((0.6 * q / q.sum() + 0.4 * k / k.sum()) * 4000, (1, 3000))])
    >>> r = classify_spectra(y, build_model(simulator_library(), Instrument(beam_kev=20.0)))
    >>> r.label_names()[-1], bool(r.mixture[-1]), round(float(r.fraction[-1]), 1)
    ('quartz', True, 0.6)
    """
    n_cls = len(model.library)
    named = np.zeros(len(out["label"]), bool)
    present = set_phases(out, n_cls)
    todo = np.flatnonzero(
        ~np.isin(out["label"], present)
        & np.isin(out["status"], (OK, NO_FIT))
        & (out["counts"] >= s.min_counts)
    )
    if present.size < 2 or todo.size == 0:
        return named
    ranges = [np.arange(model.class_start[c], model.class_start[c + 1]) for c in present]
    p, nb = model.shapes, model.shapes.shape[1]
    mount = mount_shape(model)
    for i0 in range(0, todo.size, chunk):
        rows = todo[i0 : i0 + chunk]
        y = model.bin(np.asarray(spectra)[rows]).astype(np.float64)
        m = y.shape[0]
        cnt = y.sum(1)
        h = (y * np.log(np.maximum(y, 1.0))).sum(1) - cnt * np.log(np.maximum(cnt, 1.0))
        ll = y.astype(np.float32) @ model.log_shapes  # (m, K): screening in float32, as classify_spectra's
        single = ll.max(1).astype(np.float64)
        best_k = np.stack([ks[ll[:, ks].argmax(1)] for ks in ranges], 1)  # (m, P) each phase's best
        order = np.argsort(-np.take_along_axis(ll, best_k, 1), 1)[:, :BLEND_TOP]
        tops = np.take_along_axis(best_k, order, 1)
        comps = np.concatenate([p[tops], np.broadcast_to(mount, (m, 1, nb))], axis=1)  # (m, T + 1, B)
        # no blend beats Σ y log max_t p_t (a mixture never exceeds its largest component), so a
        # spectrum whose deviance at that bound already fails the noise test is not fitted
        bound = np.maximum(2.0 * (h - (y * np.log(comps.max(1))).sum(1)), 0.0)
        limit = np.zeros(m)  # the noise test's largest allowance over the candidates the label can be
        for t in range(tops.shape[1]):
            e_t, v_t = model.noise(tops[:, t], cnt)
            limit = np.maximum(limit, e_t + s.z_unknown * np.sqrt(v_t))
        limit += s.tolerance**2 * cnt
        keep = bound <= limit
        if not keep.any():
            continue
        rows, y, cnt, h, single, tops, comps = (a[keep] for a in (rows, y, cnt, h, single, tops, comps))
        m = y.shape[0]
        w_all = blend_weights(y, comps.astype(np.float32))  # the shares in float32, the likelihood in float64
        blend_ll = (y * np.log(np.einsum("mt,mtb->mb", w_all, comps))).sum(1)
        w = w_all[:, :-1] / np.maximum(w_all[:, :-1].sum(1, keepdims=True), 1e-300)  # the minerals' shares
        first = w.argmax(1)
        w2 = w.copy()
        w2[np.arange(m), first] = -1.0
        second = w2.argmax(1)
        ka, kb = tops[np.arange(m), first], tops[np.arange(m), second]
        alpha = w[np.arange(m), first]
        dev = np.maximum(2.0 * (h - blend_ll), 0.0)
        e, v = model.noise(ka, cnt)
        z = (dev - e - s.tolerance**2 * cnt) / np.sqrt(v)
        # the blend's free shares cost PENALTY each beyond the first against the reference minerals
        held = blend_ll - PENALTY * np.maximum((w_all > MIN_SHARE).sum(1) - 1, 0)
        ok = (z <= s.z_unknown) & (blend_ll >= single)
        if reference is not None:  # an unlisted mineral alone, or with the mount, explains it better
            ll_ref = y.astype(np.float32) @ reference.log_shapes
            rk = ll_ref.argmax(1)
            ref_comps = np.stack([reference.shapes[rk], np.broadcast_to(mount, (m, nb))], axis=1)
            w_ref = blend_weights(y, ref_comps.astype(np.float32))
            ref_mount = (y * np.log(np.einsum("mt,mtb->mb", w_ref, ref_comps))).sum(1) - PENALTY
            ok &= held > np.maximum(ll_ref.max(1).astype(np.float64), ref_mount)
        idx, g = rows[ok], np.flatnonzero(ok)
        c1, c2 = model.cand_class[ka[g]], model.cand_class[kb[g]]
        prob = np.zeros((idx.size, n_cls + 1), np.float32)
        np.add.at(
            prob,
            (np.repeat(np.arange(idx.size), tops.shape[1]), model.cand_class[tops[g]].ravel()),
            w[g].ravel(),
        )
        out["label"][idx], out["second"][idx], out["status"][idx] = c1, c2, OK
        out["probabilities"][idx] = prob
        out["mixture"][idx], out["partner"][idx], out["fraction"][idx] = True, c2, alpha[g]
        out["candidate"][idx] = ka[g]
        out["deviance"][idx], out["noise_deviance"][idx], out["z"][idx] = dev[g] / nb, e[g] / nb, z[g]
        out["wt"][idx] = 100.0 * np.einsum("mt,mte->me", w[g], model.cand_wt[tops[g]])
        named[idx] = True
    return named
