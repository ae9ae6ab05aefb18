"""The physics spectrum classifier: which mineral of a library explains each spectrum, if any.

No training: every class's expected spectrum comes from its formula (or composition range) and
the instrument (:mod:`mingraph.spectra.physics_model`).  For each spectrum y of N counts:

1. Screening: the multinomial log-likelihood Σ_b y_b log p_kb of every candidate k (every lattice
   point of every class's composition range) in one matrix product.  The Poisson deviance of
   candidate k with its scale fitted is D_k = 2 (Σ y log y − N log N − Σ y log p_k).
2. Goodness of fit: the best candidate's D against what counting noise alone gives at N counts,
   z = (D − E(N) − τ² N) / √V(N) (E, V exact for Poisson counts; τ the relative model error
   tolerated, whose deviance grows as τ² N).  A spectrum with z > ``z_unknown`` fits no class:
   **unknown**.  The dispersion φ = max(1, D / E(N)) (quasi-likelihood, McCullagh & Nelder 1989,
   §9.2) tempers the class probabilities, so a spectrum the physics fits worse than noise gives
   less sure probabilities.
3. Class probabilities: P(c) ∝ mean over c's candidates of exp(−(D_k − D_min) / (2φ)) (a uniform
   prior over classes and over each class's range), times 1 − P(unknown).
4. Mixture: the best candidates of the two most probable classes mixed, y ~ N (α p_1 + (1−α) p_2),
   α fitted by Newton's method on the Poisson likelihood, where the single fit is worse than
   noise by 2 σ; flagged where the deviance falls by more than ``mix_deviance`` · φ + τ² N
   with 0.1 ≤ α ≤ 0.9 (two phases under the beam; a fall the model error could give is not one).
5. Composition: element mass fractions of the best candidate (or of the mixture), in wt %.

Spectra with fewer than ``min_counts`` counts in the fitted range are "unknown: too few counts".

Where the physics does not reach counting noise on the typical spectrum of the set (median
D / E(N) above ``refine_dispersion``: a real detector and natural minerals), the spectra that fit
no class are refitted with free element amounts and accepted by a composition test
(:mod:`mingraph.spectra.quantify`).  Where it does (simulated data), the strict deviance test
alone decides, so a mineral missing from the list is unknown rather than its nearest neighbour,
and a spectrum that the set's phases do not name alone is tried as a blend of them and the mount
(a grain boundary; :func:`mingraph.spectra.blends.name_blends`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import ndtr

from mingraph.acquire.fields import N_CHANNELS
from mingraph.common.errors import InputError
from mingraph.spectra.blends import blend_share, name_blends
from mingraph.spectra.physics_model import PhysicsModel
from mingraph.spectra.physics_result import NO_FIT, NOT_LISTED, OK, TOO_FEW, PhysicsResult, Settings
from mingraph.spectra.refit import refine_unknown, unmix


def _best_pair(
    y: np.ndarray, k1: np.ndarray, model: PhysicsModel
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two candidates of different classes and α whose mixture α p_a + (1 − α) p_b best explains y.

    Greedy, as conditional-gradient (Frank-Wolfe) steps on the Poisson likelihood: from the best
    single candidate, the 8 candidates of other classes with the largest likelihood gradient
    Σ y p_k / p_a are each mixed with it (α fitted) and the best kept; then the first is re-chosen
    the same way against the second.  Returns (a, b, α, log-likelihood Σ y log(mixture)).
    """
    p = model.shapes
    cls = model.cand_class
    rows = np.arange(y.shape[0])

    def partner(fixed: np.ndarray, base: np.ndarray, n_try: int = 8):
        """The candidate of another class than ``fixed`` that mixes best with it (of the n_try
        of largest gradient), its α and the mixture's log-likelihood."""
        g = (y / base) @ p.T
        g[cls[None, :] == cls[fixed][:, None]] = -np.inf
        tries = np.argsort(-g, axis=1)[:, :n_try]
        best = (np.full(y.shape[0], -np.inf), tries[:, 0].copy(), np.ones(y.shape[0]))
        for t in range(tries.shape[1]):
            k = tries[:, t]
            a, _ = _mixture(y, p[fixed], p[k])
            ll = (y * np.log(a[:, None] * p[fixed] + (1 - a[:, None]) * p[k])).sum(1)
            better = ll > best[0]
            best[0][better], best[1][better], best[2][better] = ll[better], k[better], a[better]
        return best

    ka = k1
    ll1, kb, a = partner(ka, p[ka])
    ll2, ka2, a2 = partner(kb, a[:, None] * p[ka] + (1 - a[:, None]) * p[kb])
    take = ll2 > ll1  # the first re-chosen against the mixture: kb with share a2, ka2 with 1 - a2
    ka = np.where(take, ka2, ka)
    a = np.where(take, 1.0 - a2, a)
    del rows
    return ka, kb, a, np.maximum(ll1, ll2)


def _mixture(y: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """α (n,) maximising Σ y log(α p1 + (1 − α) p2) on [0, 1] (:func:`~mingraph.spectra.blends.blend_share`),
    and the gain in log-likelihood over α = 1 (n,)."""
    a = blend_share(y, p1, p2)
    ll = (y * np.log(p2 + a[:, None] * (p1 - p2))).sum(1) - (y * np.log(p1)).sum(1)
    return a, ll


def classify_spectra(
    spectra: np.ndarray,
    model: PhysicsModel,
    settings: Settings | None = None,
    reference: PhysicsModel | None = None,
) -> PhysicsResult:
    """Classify (n, 3000) count spectra against a physics model.

    Parameters
    ----------
    spectra
        (n, 3000) raw counts on the 10 eV grid (integer or float; not normalised).
    model
        From :func:`mingraph.spectra.physics_model.build_model`.
    settings
        Thresholds (default :class:`Settings`).
    reference
        Minerals *not* in the list that the physics knows (e.g. the shipped library less the
        list's names, :func:`~mingraph.spectra.reference_minerals.reference_model`).  A spectrum that one of them explains at least as
        well as the list's best class (their share of the joint probability ≥ 1/2) is unknown:
        "fits a mineral not in the list"; their share adds to unknown's probability.

    Returns
    -------
    PhysicsResult

    Raises
    ------
    InputError
        For spectra of the wrong shape, or negative or non-finite counts.

    Examples
    --------
    >>> from mingraph.spectra.mineral_library import simulator_library
    >>> from mingraph.spectra.physics_model import build_model
    >>> from mingraph.spectra.calibrate import Instrument
    >>> from mingraph.acquire.simulate.eds_physics import mineral_spectrum
    >>> m = build_model(simulator_library(), Instrument(beam_kev=25.0))
    >>> y = np.random.default_rng(0).poisson(mineral_spectrum("titanite", {"dwell_ms": 2.5}))[None]
    >>> r = classify_spectra(y, m)
    >>> r.label_names(), bool(r.probabilities[0, r.label[0]] > 0.99), bool(abs(r.z[0]) < 4)
    (['titanite'], True, True)
    """
    s = settings or Settings()
    y_all = np.asarray(spectra)
    if y_all.ndim != 2 or y_all.shape[1] != N_CHANNELS:
        raise InputError("spectra", "shape", f"expected (n, {N_CHANNELS}) counts, got {y_all.shape}")
    n, n_cls = y_all.shape[0], len(model.library)
    starts = model.class_start[:-1]
    sizes = np.diff(model.class_start).astype(np.float64)
    out = {
        "label": np.zeros(n, np.int64),
        "status": np.zeros(n, np.int8),
        "probabilities": np.zeros((n, n_cls + 1), np.float32),
        "second": np.zeros(n, np.int64),
        "counts": np.zeros(n),
        "deviance": np.zeros(n),
        "noise_deviance": np.zeros(n),
        "z": np.zeros(n),
        "mixture": np.zeros(n, bool),
        "partner": np.full(n, -1, np.int64),
        "fraction": np.ones(n),
        "wt": np.zeros((n, len(model.elements)), np.float32),
        "candidate": np.zeros(n, np.int64),
    }
    nb = model.shapes.shape[1]

    def one(i0: int) -> np.ndarray:  # one block, written into its rows of ``out``
        raw = y_all[i0 : i0 + s.chunk]
        if not np.isfinite(raw).all() or (raw < 0).any():
            raise InputError("spectra", "counts", "negative or non-finite counts")
        y = model.bin(raw)
        m = y.shape[0]
        cnt = y.sum(1, dtype=np.float64)
        h = (y * np.log(np.maximum(y, 1.0))).sum(1, dtype=np.float64) - cnt * np.log(np.maximum(cnt, 1.0))
        ll = y @ model.log_shapes  # (m, K) float32
        best = ll.argmax(1)
        ll_best = ll[np.arange(m), best].astype(np.float64)  # the best candidate: deviance, dispersion
        dev = np.maximum(2.0 * (h - ll_best), 0.0)
        e, v = model.noise(best, cnt)
        phi = np.maximum(1.0, dev / e)
        lb32, inv_phi = ll_best.astype(np.float32)[:, None], (1.0 / phi).astype(np.float32)[:, None]
        rel = np.exp(np.minimum((ll - lb32) * inv_phi, 0.0))  # float32 throughout: memory-bound
        cls_p = (rel @ model.class_matrix) / sizes
        post = cls_p / cls_p.sum(1, keepdims=True)
        if reference is not None:  # the joint share of minerals the list does not hold
            ll_ref = y @ reference.log_shapes
            ref_rel = np.exp(np.minimum((ll_ref - lb32) * inv_phi, 50.0))
            ref_p = np.maximum.reduceat(ref_rel, reference.class_start[:-1], axis=1)  # each its best point
            ref_sum, cls_sum = ref_p.sum(1), cls_p.sum(1)
            ref_gain = ll_ref.max(1) - ll_best  # the best reference candidate over the best listed one
            outside = ref_sum / (ref_sum + cls_sum)
        else:
            outside = np.zeros(m)
        c1 = post.argmax(1)
        masked = post.copy()
        masked[np.arange(m), c1] = -1.0
        c2 = masked.argmax(1) if n_cls > 1 else c1
        # the best candidate of c1 (the overall best, unless a range's mean outweighs it); c2's and
        # the mixture only where the single fit is worse than counting noise by 2 σ
        k1 = best.copy()
        k2 = best.copy()
        mix = np.zeros(m, bool)
        gain = np.zeros(m)
        alpha = np.ones(m)
        redo = np.flatnonzero(model.cand_class[best] != c1)
        maybe = np.flatnonzero(dev > e + 2.0 * np.sqrt(v))
        for rows, cls, ks in ((redo, c1, k1),):
            if rows.size:
                sub = ll[rows]
                at_max = sub >= np.maximum.reduceat(sub, starts, axis=1)[:, model.cand_class]
                ks[rows] = (at_max & (model.cand_class[None, :] == cls[rows, None])).argmax(1)
        if maybe.size and n_cls > 1:
            ka, kb, a_m, g_m = _best_pair(y[maybe].astype(np.float64), k1[maybe], model)
            g_m = g_m - ll_best[maybe]  # log-likelihood gained over the best single candidate
            need = s.mix_deviance * phi[maybe] + s.tolerance**2 * cnt[maybe]
            flag = (2.0 * g_m > need) & (a_m >= 0.1) & (a_m <= 0.9)
            rows = maybe[flag]
            dom = a_m[flag] >= 0.5  # the dominant phase is the label, the other its partner
            k1[rows] = np.where(dom, ka[flag], kb[flag])
            k2[rows] = np.where(dom, kb[flag], ka[flag])
            alpha[rows] = np.where(dom, a_m[flag], 1.0 - a_m[flag])
            gain[rows] = g_m[flag]
            mix[rows] = True
            c1[rows], c2[rows] = model.cand_class[k1[rows]], model.cand_class[k2[rows]]
            post[rows] = 0.0
            post[rows, c1[rows]] = alpha[rows]
            post[rows, c2[rows]] = 1.0 - alpha[rows]
        if reference is not None and mix.any():
            # a mixture of two listed phases that explains the spectrum better than any reference
            # mineral does is the list's answer (a grain boundary), not a mineral outside the list
            mixed = mix & (gain > ref_gain)
            outside[mixed] = 0.0
        dev_used = np.where(mix, np.maximum(dev - 2.0 * gain, 0.0), dev)
        z = (dev_used - e - s.tolerance**2 * cnt) / np.sqrt(v)
        u = ndtr(z - s.z_unknown)
        few = cnt < s.min_counts
        u = np.where(few, 1.0, u)
        listed = (1.0 - u) * (1.0 - outside)
        probs = np.concatenate([post * listed[:, None], 1.0 - listed[:, None]], axis=1).astype(np.float32)
        label = np.where(listed < 0.5, n_cls, c1)
        status = np.where(few, TOO_FEW, np.where(u > 0.5, NO_FIT, np.where(outside >= 0.5, NOT_LISTED, OK)))
        status = status.astype(np.int8)
        wt = np.where(
            mix[:, None],
            alpha[:, None] * model.cand_wt[k1] + (1 - alpha[:, None]) * model.cand_wt[k2],
            model.cand_wt[k1],
        )
        sl = slice(i0, i0 + m)
        out["label"][sl], out["status"][sl], out["probabilities"][sl] = label, status, probs
        out["second"][sl], out["counts"][sl] = c2, cnt
        out["deviance"][sl], out["noise_deviance"][sl], out["z"][sl] = dev_used / nb, e / nb, z
        out["mixture"][sl], out["partner"][sl] = mix, np.where(mix, c2, -1)
        out["fraction"][sl] = np.where(mix, alpha, 1.0)
        out["wt"][sl] = 100.0 * wt
        out["candidate"][sl] = k1
        return post

    # blocks on threads: numpy's array operations release the GIL, so the cores share the work
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, max(1, -(-n // s.chunk)))) as ex:
        posts = list(ex.map(one, range(0, n, s.chunk)))
    enough = out["counts"] >= s.min_counts
    disp = float(np.median(out["deviance"][enough] / out["noise_deviance"][enough])) if enough.any() else 1.0
    if s.refine == "always" or (s.refine == "auto" and disp > s.refine_dispersion):
        for j, i0 in enumerate(range(0, n, s.chunk)):
            sl = slice(i0, i0 + s.chunk)
            refine_unknown(model.bin(y_all[sl]), posts[j], model, s, {k: v[sl] for k, v in out.items()})
        unmix(out, model, s)
    elif s.blends:  # the physics reaches noise: grain boundaries by likelihood
        name_blends(y_all, out, model, s, reference)
    import xraylib

    return PhysicsResult(
        dispersion=disp,
        names=model.names,
        elements=[xraylib.AtomicNumberToSymbol(z) for z in model.elements],
        **out,
    )
