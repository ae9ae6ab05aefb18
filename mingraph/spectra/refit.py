"""The refits that name what the strict deviance test leaves unknown on a real detector, whose
spectra the physics misses by more than counting noise (its O Kα and continuum): the free-element
refit with the composition test (:func:`refine_unknown`), and the unmixing of spectra that are two
of the set's phases under the beam (:func:`unmix`).  Both change a result in place;
:func:`mingraph.spectra.physics.classify_spectra` runs them where the set's dispersion says so."""

from __future__ import annotations

import numpy as np

from mingraph.spectra.physics_model import PhysicsModel
from mingraph.spectra.physics_result import NO_FIT, OK, Settings
from mingraph.spectra.quantify import (
    MIXTURE_SHARES,
    blend_misfit,
    candidate_components,
    cation_matrix,
    composition_check,
    fit_amounts,
)


def refine_unknown(y: np.ndarray, post: np.ndarray, model: PhysicsModel, s: Settings, out: dict) -> None:
    """Refit the spectra that fit no class (status NO_FIT) with free element amounts, in place.

    For each of the ``refine_classes`` most probable classes, the best candidate's components are
    fitted by EM; of the classes whose cation composition passes (largest |Δ|/σ within
    ``k_sigma``), the closest (``refine_pick="composition"``: smallest largest |Δ|/σ, as vendors'
    composition rules) or the most likely (``"likelihood"``, which the physics' O Kα and continuum
    errors on real detectors bias) becomes the label; unknown's probability drops to 0.  A
    spectrum the mixture search flagged (its posterior is on its pair alone) tries the classes of
    its likeliest single candidates instead: on the real chevkinite map, Fe-chlorite spectra
    paired with ilmenite by the likelihood were left unknown (94 % of the map classified, 96 %
    with this ranking).
    """
    # a spectrum the physics misses by far more than any mineral of a real map is no mineral at all
    # (flat noise, a detector artefact): its relative misfit (D - E(N)) / N per bin stays above
    # refine_max_misfit (measured: at most 0.0012 on the real chevkinite map's classified pixels,
    # 0.005 for Poisson noise of any level, which the refit would otherwise call graphite)
    misfit = (out["deviance"] - out["noise_deviance"]) / np.maximum(out["counts"], 1.0)
    todo = np.flatnonzero(
        (out["status"] == NO_FIT) & (out["counts"] >= s.refine_min_counts) & (misfit <= s.refine_max_misfit)
    )
    if todo.size == 0:
        return
    ll = y[todo] @ model.log_shapes
    order = np.argsort(-post[todo], axis=1)[:, : s.refine_classes]
    # a spectrum the mixture search flagged has a posterior on its pair alone: rank its classes
    # by their best single candidate's likelihood instead, so the refit tries the likeliest phases
    mixed = np.flatnonzero(out["mixture"][todo])
    if mixed.size:
        class_ll = np.maximum.reduceat(ll[mixed], model.class_start[:-1], axis=1)
        order[mixed] = np.argsort(-class_ll, axis=1)[:, : s.refine_classes]
    best_worst = np.full(todo.size, np.inf)
    best_cls = np.full(todo.size, -1)
    best_wt = np.zeros((todo.size, len(model.elements)))
    first_wt = np.zeros_like(best_wt)
    zindex = {z: i for i, z in enumerate(model.elements)}
    for r in range(order.shape[1]):
        cls = order[:, r]
        lo, hi = model.class_start[cls], model.class_start[cls + 1]
        cand = np.array([lo_ + int(ll[i, lo_:hi_].argmax()) for i, (lo_, hi_) in enumerate(zip(lo, hi))])
        for kk in np.unique(cand):
            rows = np.flatnonzero(cand == kk)
            comps, ids = candidate_components(model, int(kk))
            a, _ = fit_amounts(y[todo[rows]], np.broadcast_to(comps, (rows.size, *comps.shape)))
            invisible = sum(w for z, w in zip(model.elements, model.cand_wt[kk]) if z < 8)
            own_w = {z: w for z, w in zip(model.elements, model.cand_wt[kk])}
            mass = np.array([own_w.get(z, 0.0) if z in own_w and own_w[z] > 0 else 0.01 for z in ids])
            amounts = a * mass[None, :] * (ids != 0)[None, :]
            frac = amounts / np.maximum(amounts.sum(1, keepdims=True), 1e-300) * (1.0 - invisible)
            worst = composition_check(
                model, np.full(rows.size, kk), frac, list(ids), s.rel_tol, s.abs_tol, s.foreign_tol
            )
            # among the classes whose composition passes, the closest (or the most likely)
            key = worst if s.refine_pick == "composition" else -ll[rows, kk]
            score = np.where(worst <= s.k_sigma, key, np.inf)
            better = score < best_worst[rows]
            sel = rows[better]
            best_worst[sel] = score[better]
            best_cls[sel] = model.cand_class[kk]
            wt_full = np.zeros((sel.size, len(model.elements)))
            for j, z in enumerate(ids):
                if z in zindex:
                    wt_full[:, zindex[z]] = frac[better, j]
            best_wt[sel] = wt_full
            if r == 0:  # what an unknown spectrum reports: its composition in the likeliest matrix
                for j, z in enumerate(ids):
                    if z in zindex:
                        first_wt[rows, zindex[z]] = frac[:, j]
    ok = np.isfinite(best_worst)
    out["wt"][todo[~ok]] = 100.0 * first_wt[~ok]
    idx = todo[ok]
    n_cls = len(model.library)
    out["label"][idx] = best_cls[ok]
    out["status"][idx] = OK
    p = out["probabilities"][idx]
    p[:, :n_cls] = post[idx]
    p[:, n_cls] = 0.0
    rows, top = np.arange(idx.size), p[:, :n_cls].argmax(1)  # the label gets the largest probability
    p[rows, top], p[rows, best_cls[ok]] = p[rows, best_cls[ok]], p[rows, top]
    out["probabilities"][idx] = p
    out["wt"][idx] = 100.0 * best_wt[ok]


MIN_PRESENT = 3
"""Spectra of a class, classified as it alone, that make it a phase of the set (for unmixing)."""


def unmix(out: dict, model: PhysicsModel, s: Settings) -> None:
    """Name the majority phase of spectra that fit no class but a blend of two phases of the set
    (two grains under the beam: a grain boundary), in place.

    The set's phases are the classes that at least :data:`MIN_PRESENT` spectra are classified as
    alone.  Each spectrum left unknown after the free-element refit (enough counts, a misfit a
    mineral can have) is tested against every blend α · a + (1 − α) · b of two of their
    candidates, α from 0.5 to ``blend_max_share`` (:func:`mingraph.spectra.quantify.blend_misfit`,
    on the cations its refit measured).  Where the closest blend passes the composition test at
    ``blend_k_sigma`` σ, the majority phase a is its label, with probability α and b's 1 − α (as
    vendors give a boundary pixel to its majority phase), and the spectrum is flagged a mixture
    with partner b.

    A blend has two free choices (the partner and α), so its test is stricter than one phase's
    (0.75 σ against 2 σ).  Measured on the real chevkinite map (900 spectra, the shipped
    library): 96 % of spectra classified against 77 % without unmixing; with titanite or ilmenite
    left out of the list, 92 % and 60 % of their spectra stay unknown (100 % and 63 % without
    unmixing; at 2 σ and α up to 0.95, 7 % and 13 %: blends then imitate a missing phase).
    """
    misfit = (out["deviance"] - out["noise_deviance"]) / np.maximum(out["counts"], 1.0)
    todo = np.flatnonzero(
        (out["status"] == NO_FIT) & (out["counts"] >= s.refine_min_counts) & (misfit <= s.refine_max_misfit)
    )
    alone = (out["status"] == OK) & ~out["mixture"]
    classes, counts = np.unique(out["label"][alone], return_counts=True)
    present = classes[counts >= MIN_PRESENT]
    if todo.size == 0 or present.size < 2:
        return
    cands = np.flatnonzero(np.isin(model.cand_class, present))
    ref, zs = cation_matrix(model, cands)
    ia, ib = np.meshgrid(np.arange(cands.size), np.arange(cands.size), indexing="ij")
    two = model.cand_class[cands][ia] != model.cand_class[cands][ib]
    ia, ib = ia[two], ib[two]
    col = {z: i for i, z in enumerate(model.elements)}
    meas = out["wt"][todo][:, [col[z] for z in zs]].astype(np.float64)
    meas /= np.maximum(meas.sum(1, keepdims=True), 1e-300)
    shares = MIXTURE_SHARES[MIXTURE_SHARES <= s.blend_max_share + 1e-9]
    worst, pair, alpha = blend_misfit(meas, ref[ia], ref[ib], s.rel_tol, s.abs_tol, s.foreign_tol, shares)
    good = worst <= s.blend_k_sigma
    idx = todo[good]
    c1 = model.cand_class[cands[ia[pair[good]]]]
    c2 = model.cand_class[cands[ib[pair[good]]]]
    n_cls = len(model.library)
    p = np.zeros((idx.size, n_cls + 1), np.float32)
    p[np.arange(idx.size), c1], p[np.arange(idx.size), c2] = alpha[good], 1.0 - alpha[good]
    out["label"][idx], out["second"][idx], out["status"][idx] = c1, c2, OK
    out["probabilities"][idx] = p
    out["mixture"][idx], out["partner"][idx], out["fraction"][idx] = True, c2, alpha[good]
    out["candidate"][idx] = cands[ia[pair[good]]]
