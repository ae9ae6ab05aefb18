"""Liberation of a target mineral: composition and free-surface classes by particle size, cumulative
liberation yield, binary/ternary locking and the theoretical grade–recovery curve.

Plain functions on a :class:`~mingraph.analyse.mineralogy.particles.ParticleResult`. Shares are of
*classified* pixels (the rule of :func:`~mingraph.analyse.mineralogy.validate.classified_labels`): an
unclassified pixel inside a particle counts for the particle's size but not its composition. The
target's amount in a particle is its pixel count (area; within one mineral, mass is proportional).

Liberation classes (as TIMA/MLA tables): ``0`` (particle without the target), ``0-10``, ``10-20``, …,
``80-90``, ``90-<100`` (left-closed, right-open, % of the particle's classified area) and ``100``
(free). Free-surface % is the share of the target's boundary (4-neighbour pixel edges) that faces
the outside of the particle, of its boundary with the outside or another classified phase (after
Gaudin 1939 / Petruk 2000 "free surface" liberation); edges on unclassified pixels and the image
edge are unknown and left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from mingraph.analyse.mineralogy.particles import ParticleResult
from mingraph.common.errors import InputError

LIB_CLASSES = ["0", *[f"{a}-{a + 10}" for a in range(0, 90, 10)], "90-<100", "100"]
"""The 12 liberation class labels, in order."""
N_LIB = len(LIB_CLASSES)


def liberation_class(fraction: np.ndarray) -> np.ndarray:
    """Class index 0..11 of fractions in [0, 1]: 0 for exactly 0, 11 for exactly 1, else 1 + floor(10 f)."""
    f = np.asarray(fraction, dtype=np.float64)
    f = np.round(f, 12)  # pixel-count ratios such as 3/10 are exact in decimal
    idx = 1 + np.floor(f * 10).astype(np.int64)
    idx = np.clip(idx, 1, 10)
    idx[f <= 0] = 0
    idx[f >= 1] = 11
    return idx


def _target(parts: ParticleResult, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_cls = parts.composition_px.shape[1]
    if not (0 <= int(target) < n_cls):
        raise InputError("liberation", "target", f"class id {target!r} outside [0, {n_cls - 1}]")
    col = parts.composition_px[:, int(target)]
    rows = col.nonzero()[0]
    amount = np.asarray(col[rows].todense()).ravel()
    return rows, amount, amount / parts.classified_px[rows]


def size_index(ecd_um: np.ndarray, edges_um: np.ndarray) -> np.ndarray:
    """Size class of each ECD: i for edges[i] <= ecd < edges[i+1]; the last class is closed above."""
    i = np.searchsorted(edges_um, ecd_um, side="right") - 1
    return np.clip(i, 0, len(edges_um) - 2)


def liberation_matrix(parts: ParticleResult, target: int, by: str = "composition") -> sparse.csr_matrix:
    """(n_particles, 12) target pixels of each particle in its liberation class (one nonzero per row).

    ``by``: ``"composition"`` (area % of the particle) or ``"surface"`` (free-surface %). Particles
    without the target have no entry; for ``surface``, a particle whose target has no known boundary
    has no entry either (see :func:`liberation_by_size`, ``unknown_px``).
    """
    rows, amount, frac = _target(parts, target)
    if by == "surface":
        free = np.asarray(parts.free_edges[rows, int(target)].todense()).ravel()
        locked = np.asarray(parts.locked_edges[rows, int(target)].todense()).ravel()
        known = (free + locked) > 0
        rows, amount = rows[known], amount[known]
        frac = free[known] / (free[known] + locked[known])
    elif by != "composition":
        raise InputError("liberation", "by", f"expected 'composition' or 'surface', got {by!r}")
    cls = liberation_class(frac)
    return sparse.coo_matrix((amount, (rows, cls)), shape=(parts.n, N_LIB)).tocsr()


def liberation_by_size(
    parts: ParticleResult, target: int, size_edges_um: np.ndarray, by: str = "composition"
) -> dict[str, np.ndarray]:
    """Liberation classes of ``target`` per particle-size class.

    Returns ``target_px`` (n_size + 1, 12): target pixels per size class (last row: all sizes) and
    liberation class; ``particles`` (same shape): particle counts (class ``0`` counts the particles
    without the target); ``pct`` (same shape): % of the size class's target in each liberation class;
    ``unknown_px`` (n_size + 1,): target pixels with no known boundary (``surface`` only).
    """
    m = liberation_matrix(parts, target, by).tocoo()
    s = size_index(parts.ecd_um, np.asarray(size_edges_um, dtype=np.float64))
    n_s = len(size_edges_um) - 1
    tpx = np.zeros((n_s + 1, N_LIB))
    cnt = np.zeros((n_s + 1, N_LIB), np.int64)
    np.add.at(tpx, (s[m.row], m.col), m.data)
    np.add.at(cnt, (s[m.row], m.col), 1)
    if by == "composition":
        has = np.zeros(parts.n, bool)
        has[m.row] = True
        cnt[:n_s, 0] = np.bincount(s[~has], minlength=n_s)[:n_s]
    rows, amount, _ = _target(parts, target)
    total = np.bincount(s[rows], weights=amount, minlength=n_s)[:n_s]
    tpx[n_s], cnt[n_s] = tpx[:n_s].sum(0), cnt[:n_s].sum(0)
    unknown = np.append(total - tpx[:n_s].sum(1), 0.0)
    unknown[n_s] = unknown[:n_s].sum()
    den = tpx.sum(1, keepdims=True)
    pct = np.divide(100.0 * tpx, den, out=np.zeros_like(tpx), where=den > 0)
    return {"target_px": tpx, "particles": cnt, "pct": pct, "unknown_px": np.clip(unknown, 0, None)}


def cumulative_yield(parts: ParticleResult, target: int, grades_pct: np.ndarray | None = None) -> np.ndarray:
    """Cumulative liberation yield: % of the target in particles whose target grade (area %) is >= x.

    ``grades_pct`` (m,) the x values (default 0, 1, …, 100); returns (m,) %.
    """
    x = np.arange(101.0) if grades_pct is None else np.asarray(grades_pct, dtype=np.float64)
    _, amount, frac = _target(parts, target)
    order = np.argsort(frac)
    f, a = np.round(frac[order] * 100.0, 10), amount[order]
    tail = np.concatenate([np.cumsum(a[::-1])[::-1], [0.0]])  # tail[i] = target in particles i..end
    tot = a.sum()
    i = np.searchsorted(f, x, side="left")
    return 100.0 * tail[i] / tot if tot > 0 else np.zeros_like(x)


def locking(parts: ParticleResult, target: int, trace_pct: float = 0.0) -> dict[str, Any]:
    """Where the target sits: liberated, binary with each other phase, ternary, or in 4+ phase particles.

    A particle holding the target and exactly one other phase (above ``trace_pct`` % of its
    classified area) is a binary with that phase; two others: ternary; three or more: complex.
    Returns ``target_px`` dict with keys ``liberated``, ``binary`` ((n_classes,) by partner),
    ``ternary``, ``complex``, each the target pixels there, and ``unit_matrix`` (n_particles,
    n_classes + 3) those amounts per particle (columns: binary partners, liberated, ternary, complex).
    """
    rows, amount, _ = _target(parts, target)
    fr = parts.fractions()[rows].tocoo()
    other = (fr.col != int(target)) & (fr.data * 100.0 > float(trace_pct))
    n_other = np.bincount(fr.row[other], minlength=rows.size)
    n_cls = parts.composition_px.shape[1]
    partner = np.full(rows.size, -1, np.int64)
    partner[fr.row[other]] = fr.col[other]  # meaningful where n_other == 1
    col = np.where(
        n_other == 0, n_cls, np.where(n_other == 1, partner, np.where(n_other == 2, n_cls + 1, n_cls + 2))
    )
    unit = sparse.coo_matrix((amount, (rows, col)), shape=(parts.n, n_cls + 3)).tocsr()
    sums = np.asarray(unit.sum(axis=0)).ravel()
    return {
        "binary": sums[:n_cls],
        "liberated": float(sums[n_cls]),
        "ternary": float(sums[n_cls + 1]),
        "complex": float(sums[n_cls + 2]),
        "unit_matrix": unit,
    }


def grade_recovery(
    parts: ParticleResult, target: int, densities: np.ndarray | None = None
) -> dict[str, np.ndarray | str]:
    """Theoretical grade–recovery of ``target``: particles taken richest first (perfect separation).

    With ``densities`` (n_classes,) g/cm³ known for every phase present, grades are mass % (area ×
    density); otherwise area % (``basis`` says which). Returns ``recovery_pct`` and ``grade_pct``
    ((n+1,) arrays starting at (0, grade of the richest particle)), ``mass_pull_pct`` (cumulative % of
    the sample), and ``basis``.
    """
    comp = parts.composition_px
    basis = "area"
    present = np.asarray(comp.sum(axis=0)).ravel() > 0
    if densities is not None and np.all(np.isfinite(np.asarray(densities)[present])):
        comp = comp @ sparse.diags(np.nan_to_num(np.asarray(densities, np.float64)))
        basis = "mass"
    comp = sparse.csr_matrix(comp)
    total = np.asarray(comp.sum(axis=1)).ravel()
    tgt = np.asarray(comp[:, int(target)].todense()).ravel()
    keep = total > 0
    total, tgt = total[keep], tgt[keep]
    g = np.divide(tgt, total, out=np.zeros_like(tgt), where=total > 0)
    order = np.argsort(-g, kind="stable")
    ct, cm = np.cumsum(tgt[order]), np.cumsum(total[order])
    t_all, m_all = (ct[-1], cm[-1]) if ct.size else (0.0, 0.0)
    rec = np.concatenate([[0.0], 100.0 * ct / t_all]) if t_all > 0 else np.zeros(ct.size + 1)
    grade = np.concatenate([[100.0 * g[order[0]] if g.size else 0.0], 100.0 * ct / np.maximum(cm, 1e-300)])
    pull = np.concatenate([[0.0], 100.0 * cm / m_all]) if m_all > 0 else np.zeros(ct.size + 1)
    return {"recovery_pct": rec, "grade_pct": grade, "mass_pull_pct": pull, "basis": basis}


def grade_recovery_interval(
    parts: ParticleResult,
    target: int,
    densities: np.ndarray | None = None,
    recoveries_pct: np.ndarray | None = None,
    n_boot: int = 200,
    seed: int = 0,
    chunk: int = 25,
) -> np.ndarray:
    """(2, m) 95 % percentile interval of the grade at each recovery (default 1..100 %), bootstrapping particles.

    Each replicate draws the particles with replacement and recomputes the curve (the richest-first
    order is the same: it depends on each particle's grade only).
    """
    from mingraph.analyse.mineralogy.bootstrap import interval

    r = np.arange(1.0, 101.0) if recoveries_pct is None else np.asarray(recoveries_pct, dtype=np.float64)
    comp = parts.composition_px
    present = np.asarray(comp.sum(axis=0)).ravel() > 0
    if densities is not None and np.all(np.isfinite(np.asarray(densities)[present])):
        comp = comp @ sparse.diags(np.nan_to_num(np.asarray(densities, np.float64)))
    comp = sparse.csr_matrix(comp)
    total = np.asarray(comp.sum(axis=1)).ravel()
    tgt = np.asarray(comp[:, int(target)].todense()).ravel()
    keep = np.flatnonzero(total > 0)
    g = tgt[keep] / total[keep]
    order = keep[np.argsort(-g, kind="stable")]
    t_s, m_s = tgt[order], total[order]
    n = parts.n
    rng = np.random.default_rng(seed)
    reps = np.full((int(n_boot), r.size), np.nan)
    for b0 in range(0, int(n_boot), chunk):
        b1 = min(int(n_boot), b0 + chunk)
        w = np.stack([np.bincount(rng.integers(0, n, n), minlength=n)[order] for _ in range(b0, b1)])
        ct, cm = np.cumsum(w * t_s, axis=1), np.cumsum(w * m_s, axis=1)
        for i in range(b1 - b0):
            if ct.shape[1] == 0 or ct[i, -1] <= 0:
                continue
            j = np.minimum(np.searchsorted(100.0 * ct[i] / ct[i, -1], r - 1e-9), ct.shape[1] - 1)
            reps[b0 + i] = 100.0 * ct[i, j] / cm[i, j]
    return interval(reps)
