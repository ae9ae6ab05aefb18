"""Where to measure next: the acquisition state and the strategies that need no model.

Every strategy is a function ``choose(state, n, rng) -> (n, 2) int32`` row/col of ``n`` valid,
not yet measured pixels (exactly ``n`` while that many remain), deterministic for a given
``rng``.  The strategies that read the model's prediction (uncertainty, SLADS-style) live in
:mod:`.uncertainty` and :mod:`.slads`; these four reproduce what instruments do today:

* ``random``: uniform over the unmeasured valid pixels.
* ``grid``: TESCAN TIMA's "dots": a square lattice whose spacing gives the session's whole
  budget, visited coarse to fine (every round's points are spread over the field).
* ``segments``: one point per BSE segment, as Zeiss/ThermoFisher MLA's XBSE and Bruker AMICS'
  segmentation mode do: SLIC superpixels of the BSE (Achanta et al. 2012, scikit-image) with as
  many segments as the budget has points, each measured at the segment pixel nearest its
  centroid, largest segments first.
* ``bright``: TIMA's bright-phase points: half of every batch on the grid, half on pixels whose
  BSE exceeds a threshold (heavy phases: sulphides, oxides, native metals), spread apart.
"""

from __future__ import annotations

import numpy as np

from mingraph.acquisition.state import AcquisitionState, Strategy
from mingraph.common.errors import InputError


def _as_rc(flat: np.ndarray, w: int) -> np.ndarray:
    flat = np.asarray(flat, np.int64)
    return np.stack([flat // w, flat % w], axis=1).astype(np.int32).reshape(-1, 2)


def fill_random(state: AcquisitionState, chosen: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``chosen`` (m, 2) topped up to ``n`` points by uniform draws among the free pixels it leaves."""
    chosen = np.asarray(chosen, np.int32).reshape(-1, 2)[:n]
    if len(chosen) >= n:
        return chosen
    free = state.free()
    free[chosen[:, 0], chosen[:, 1]] = False
    idx = np.flatnonzero(free)
    extra = rng.choice(idx, size=min(n - len(chosen), idx.size), replace=False)
    return np.vstack([chosen, _as_rc(extra, free.shape[1])])


def spread_pick(
    score: np.ndarray, candidates: np.ndarray, n: int, min_dist: float, blocked: np.ndarray
) -> np.ndarray:
    """Greedy non-maximum suppression: up to ``n`` flat pixel indices from ``candidates`` in order
    of decreasing ``score`` (1-D, aligned with ``candidates``; ties by candidate order), each at
    Chebyshev distance > ``min_dist`` px from every earlier pick and not on a ``blocked`` (H, W)
    pixel.  ``blocked`` is updated in place (a square of side 2·⌊min_dist⌋ + 1 around each pick)."""
    h, w = blocked.shape
    order = candidates[np.argsort(-np.asarray(score), kind="stable")]
    d = int(np.floor(min_dist))
    flat_blocked = blocked.reshape(-1)
    out: list[int] = []
    for p in order.tolist():
        if flat_blocked[p]:
            continue
        out.append(p)
        if len(out) == n:
            break
        r, c = divmod(p, w)
        blocked[max(0, r - d) : r + d + 1, max(0, c - d) : c + d + 1] = True
    return np.asarray(out, np.int64)


def choose_random(state: AcquisitionState, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` pixels drawn uniformly without replacement from the free valid pixels."""
    return fill_random(state, np.zeros((0, 2), np.int32), n, rng)


def coarse_to_fine(ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
    """A visiting order of lattice nodes (i, j) ≥ 0, coarse to fine: nodes of the sub-lattice of
    step 2^k come before those of step 2^(k−1) (k = trailing zeros of gcd(i, j)), then row-major."""
    g = np.gcd(ii.astype(np.int64), jj.astype(np.int64))
    g = np.where(g == 0, 1 << 30, g)
    level = np.log2(g & -g).astype(np.int64)
    return np.lexsort((jj, ii, -level))


def lattice(state: AcquisitionState, n: int) -> np.ndarray:
    """(m, 2) int32 valid lattice nodes, m ≥ ``n`` where possible, of the square lattice with the
    largest step (a multiple of 0.98^k of √(valid / n)) that holds ``n`` valid nodes, centred on
    the field, in :func:`coarse_to_fine` order."""
    h, w = state.valid.shape
    step = float(np.sqrt(state.n_valid / max(n, 1)))
    for _ in range(400):
        rows = np.floor(np.arange((h % step) / 2 if step < h else h / 2, h, step)).astype(np.int64)
        cols = np.floor(np.arange((w % step) / 2 if step < w else w / 2, w, step)).astype(np.int64)
        ii, jj = np.meshgrid(np.arange(len(rows)), np.arange(len(cols)), indexing="ij")
        ok = state.valid[rows[ii], cols[jj]]
        if ok.sum() >= n or step <= 1.0:
            break
        step = max(1.0, step * 0.98)
    ii, jj = ii[ok], jj[ok]
    o = coarse_to_fine(ii, jj)
    return np.stack([rows[ii[o]], cols[jj[o]]], axis=1).astype(np.int32)


def choose_grid(state: AcquisitionState, n: int, rng: np.random.Generator) -> np.ndarray:
    """The next ``n`` unmeasured nodes of the budget's lattice (:func:`lattice`), coarse to fine."""
    if state.lattice is None:
        state.lattice = lattice(state, state.n_total)
    nodes = state.lattice
    todo = nodes[~state.measured[nodes[:, 0], nodes[:, 1]]]
    return fill_random(state, todo[:n], n, rng)


def bse_segments(
    bse: np.ndarray, valid: np.ndarray, n_segments: int, compactness: float = 0.05
) -> np.ndarray:
    """(H, W) int64 SLIC superpixels (scikit-image) of the BSE scaled by its 1–99 % range, about
    ``n_segments`` of them over the valid pixels; 0 outside ``valid``, segments from 1."""
    from skimage.segmentation import slic

    b = np.asarray(bse, np.float64)
    lo, hi = np.percentile(b[valid] if valid.any() else b, [1, 99])
    scaled = np.clip((b - lo) / max(hi - lo, 1e-12), 0, 1)
    seg = slic(
        scaled,
        n_segments=max(1, int(n_segments)),
        compactness=compactness,
        channel_axis=None,
        mask=valid,
        start_label=1,
    )
    return np.asarray(seg, np.int64)


def segment_points(seg: np.ndarray) -> np.ndarray:
    """(m, 2) int32: for every segment of ``seg`` (labels ≥ 1), its pixel nearest to its centroid
    (the centroid itself when it lies in the segment; ties row-major), largest segments first."""
    from scipy import ndimage

    labels = np.unique(seg[seg > 0])
    if labels.size == 0:
        return np.zeros((0, 2), np.int32)
    cen = np.asarray(ndimage.center_of_mass(np.ones_like(seg), seg, labels)).reshape(-1, 2)
    area = ndimage.sum_labels(np.ones_like(seg), seg, labels)
    rr, cc = np.nonzero(seg > 0)
    lab = seg[rr, cc]
    pos = np.searchsorted(labels, lab)
    d2 = (rr - cen[pos, 0]) ** 2 + (cc - cen[pos, 1]) ** 2
    o = np.lexsort((d2, pos))  # within each segment, nearest first
    first = o[np.r_[True, pos[o][1:] != pos[o][:-1]]]
    pts = np.stack([rr[first], cc[first]], axis=1)
    return pts[np.argsort(-area[pos[first]], kind="stable")].astype(np.int32)


def choose_segments(state: AcquisitionState, n: int, rng: np.random.Generator) -> np.ndarray:
    """The next ``n`` unmeasured segment points (:func:`segment_points` of a SLIC segmentation
    with as many segments as the budget has points); random free pixels once segments run out."""
    if state.segment_points is None:
        state.segmentation = bse_segments(state.bse, state.valid, state.n_total)
        state.segment_points = segment_points(state.segmentation)
    pts = state.segment_points
    todo = pts[~state.measured[pts[:, 0], pts[:, 1]]]
    return fill_random(state, todo[:n], n, rng)


def bright_threshold(bse: np.ndarray, valid: np.ndarray, quantile: float = 0.9) -> float:
    """The BSE level above which a pixel counts as a bright phase: the ``quantile`` of the valid
    pixels' BSE (TIMA takes a user threshold; this default marks the brightest 10 %)."""
    v = np.asarray(bse)[valid] if np.asarray(valid).any() else np.asarray(bse).ravel()
    return float(np.quantile(v, quantile))


def choose_bright(
    state: AcquisitionState, n: int, rng: np.random.Generator, share: float = 0.5, quantile: float = 0.9
) -> np.ndarray:
    """TIMA's bright-phase points: ⌈``share``·n⌉ on free pixels with BSE > :func:`bright_threshold`
    (in random order, at least half a grid spacing apart), the rest on the grid of the remaining
    budget (:func:`choose_grid`), random free pixels when either runs out."""
    if state.bright_level is None:
        state.bright_level = bright_threshold(state.bse, state.valid, quantile)
    t = state.bright_level
    n_bright = int(np.ceil(share * n))
    cand = np.flatnonzero((state.free() & (state.bse > t)).ravel())
    cand = cand[rng.permutation(cand.size)]
    blocked = ~state.free()
    picked = spread_pick(np.zeros(cand.size), cand, n_bright, 0.5 * state.spacing, blocked)
    w = state.valid.shape[1]
    first = _as_rc(picked, w)
    if state.lattice is None:
        state.lattice = lattice(state, max(1, state.n_total - int(np.ceil(share * state.n_total))))
    nodes = state.lattice
    todo = nodes[~state.measured[nodes[:, 0], nodes[:, 1]] & ~blocked[nodes[:, 0], nodes[:, 1]]]
    return fill_random(state, np.vstack([first, todo[: n - len(first)]]), n, rng)


BASIC_STRATEGIES: dict[str, Strategy] = {
    "random": choose_random,
    "grid": choose_grid,
    "segments": choose_segments,
    "bright": choose_bright,
}
"""The strategies that need no model, by name."""


def check_budget(n_valid: int, budget: float, source: str = "acquire") -> int:
    """Points for a budget given as a fraction of the valid pixels (rounded, ≥ 1); raises
    InputError for a fraction outside (0, 1] or a field with no valid pixel."""
    from mingraph.acquire.sampling import n_points

    if not (0.0 < budget <= 1.0):
        raise InputError(source, "--budget", f"expected a fraction of the pixels in (0, 1], got {budget}")
    if n_valid == 0:
        raise InputError(source, "valid", "the field has no valid pixel to measure")
    return n_points(n_valid, budget)
