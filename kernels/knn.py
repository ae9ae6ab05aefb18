"""k-nearest-neighbour edges between EDS positions (the paper's ablation alternative to Delaunay).

Each point links to its k nearest other points (squared distance, then lowest index on ties);
the union is symmetrised into undirected edges.  Exact grid-bucketed search in Numba: points
are sorted into square cells of about one point each, and each point scans rings of cells
until the k-th best distance is provably smaller than anything outside the scanned block.
Duplicated positions are ordinary points at distance 0.  Unlike Delaunay, the kNN graph may
be disconnected (the paper's argument for Delaunay).

:func:`pixel_knn` is the same search from every pixel of a field to the points (the fusion
model's candidates, :mod:`mingraph.graphs.candidates`): cells over the whole field, rows of
pixels in parallel, ties in distance to the lowest index; tested equal to a brute-force sort.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .delaunay import sorted_unique_edges


@njit(cache=True)
def _bucket(r, c, r0, c0, s, ncr, ncc):
    n = r.shape[0]
    cell = np.empty(n, np.int64)
    start = np.zeros(ncr * ncc + 1, np.int64)
    for i in range(n):
        cell[i] = ((r[i] - r0) // s) * ncc + (c[i] - c0) // s
        start[cell[i] + 1] += 1
    for i in range(ncr * ncc):
        start[i + 1] += start[i]
    fill = start[:-1].copy()
    order = np.empty(n, np.int64)
    for i in range(n):  # stable: within a cell, points stay in index order
        order[fill[cell[i]]] = i
        fill[cell[i]] += 1
    return start, order


@njit(cache=True, inline="always")
def _search(ri, ci, skip, r, c, k, r0, c0, s, ncr, ncc, start, order, bd, bi):
    """The k nearest points to (ri, ci) but ``skip`` into bd (d²) and bi (index), nearest first
    (ties: lowest index); returns how many were found."""
    cnt = 0
    cr = (ri - r0) // s
    cc = (ci - c0) // s
    # distance from the query to the border of its own cell (cells are s x s)
    off = min(
        min(ri - r0 - cr * s, (cr + 1) * s - 1 - (ri - r0)),
        min(ci - c0 - cc * s, (cc + 1) * s - 1 - (ci - c0)),
    )
    ring = 0
    while True:
        for gr in range(cr - ring, cr + ring + 1):
            if gr < 0 or gr >= ncr:
                continue
            edge_row = gr == cr - ring or gr == cr + ring
            step = 1 if edge_row else 2 * ring
            gc = cc - ring
            while gc <= cc + ring:
                if 0 <= gc < ncc:
                    cell = gr * ncc + gc
                    for q in range(start[cell], start[cell + 1]):
                        j = order[q]
                        if j == skip:
                            continue
                        dr = r[j] - ri
                        dc = c[j] - ci
                        d = dr * dr + dc * dc
                        if cnt < k or d < bd[cnt - 1] or (d == bd[cnt - 1] and j < bi[cnt - 1]):
                            p = cnt if cnt < k else k - 1
                            while p > 0 and (bd[p - 1] > d or (bd[p - 1] == d and bi[p - 1] > j)):
                                if p < k:
                                    bd[p] = bd[p - 1]
                                    bi[p] = bi[p - 1]
                                p -= 1
                            bd[p] = d
                            bi[p] = j
                            if cnt < k:
                                cnt += 1
                gc += step if ring > 0 else 1
        bound = ring * s + off + 1  # every unscanned point is at least this far
        if (cnt == k and bd[k - 1] < bound * bound) or (ring > ncr and ring > ncc):
            return cnt
        ring += 1


@njit(cache=True, parallel=True)
def _knn(r, c, k, r0, c0, s, ncr, ncc, start, order):
    n = r.shape[0]
    out = np.full((n, k), -1, np.int64)
    for i in prange(n):
        bd = np.empty(k, np.int64)
        bi = np.empty(k, np.int64)
        cnt = _search(r[i], c[i], i, r, c, k, r0, c0, s, ncr, ncc, start, order, bd, bi)
        for q in range(cnt):
            out[i, q] = bi[q]
    return out


def knn_neighbours(rc: np.ndarray, k: int) -> np.ndarray:
    """(n, k) int64 indices of each point's k nearest other points (ties: lowest index), -1 padded if n <= k."""
    rc = np.asarray(rc).reshape(-1, 2).astype(np.int64)
    n = rc.shape[0]
    if k < 1:
        raise ValueError(f"knn: k must be >= 1, got {k}")
    if n == 0:
        return np.zeros((0, k), np.int64)
    r = np.ascontiguousarray(rc[:, 0])
    c = np.ascontiguousarray(rc[:, 1])
    r0, c0 = int(r.min()), int(c.min())
    hr, hc = int(r.max()) - r0 + 1, int(c.max()) - c0 + 1
    s = max(1, int(math.sqrt(hr * hc / n)))
    ncr, ncc = (hr + s - 1) // s, (hc + s - 1) // s
    start, order = _bucket(r, c, r0, c0, s, ncr, ncc)
    return _knn(r, c, int(k), r0, c0, s, ncr, ncc, start, order)


def knn_edges(rc: np.ndarray, k: int) -> np.ndarray:
    """Undirected kNN edges (m, 2) int32 (i < j, unique, sorted): i-j if j is among i's k nearest or vice versa."""
    nb = knn_neighbours(rc, k)
    n = nb.shape[0]
    src = np.repeat(np.arange(n, dtype=np.int64), nb.shape[1])
    dst = nb.reshape(-1)
    keep = dst >= 0
    pairs = np.stack([np.minimum(src[keep], dst[keep]), np.maximum(src[keep], dst[keep])], 1)
    return sorted_unique_edges(pairs, n).astype(np.int32)


@njit(cache=True, parallel=True)
def _pixel_knn(h, w, r, c, k, s, ncr, ncc, start, order, idx, dist):
    for pr in prange(h):
        bd = np.empty(k, np.int64)
        bi = np.empty(k, np.int64)
        for pc in range(w):
            cnt = _search(np.int64(pr), np.int64(pc), -1, r, c, k, 0, 0, s, ncr, ncc, start, order, bd, bi)
            for q in range(cnt):
                idx[pr, pc, q] = bi[q]
                dist[pr, pc, q] = np.float32(np.sqrt(np.float64(bd[q])))


def pixel_knn(shape: tuple[int, int], rc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's k nearest points: ((H, W, k) int64 indices, (H, W, k) float32 distances).

    Nearest first, ties in distance to the lowest index; −1 and 0 beyond the n-th point when a
    field has fewer than k points.  ``rc`` (n, 2) integer row/col inside the (H, W) field.

    Examples
    --------
    >>> idx, dist = pixel_knn((1, 4), np.array([[0, 0], [0, 2]]), 2)
    >>> idx[0].tolist()
    [[0, 1], [0, 1], [1, 0], [1, 0]]
    >>> dist[0, 3].tolist()
    [1.0, 3.0]
    """
    h, w = int(shape[0]), int(shape[1])
    rc = np.asarray(rc).reshape(-1, 2).astype(np.int64)
    n = rc.shape[0]
    if k < 1:
        raise ValueError(f"pixel_knn: k must be >= 1, got {k}")
    idx = np.full((h, w, k), -1, np.int64)
    dist = np.zeros((h, w, k), np.float32)
    if n == 0 or h * w == 0:
        return idx, dist
    r = np.ascontiguousarray(rc[:, 0])
    c = np.ascontiguousarray(rc[:, 1])
    s = max(1, int(math.sqrt(h * w / n)))  # about one point a cell
    ncr, ncc = (h + s - 1) // s, (w + s - 1) // s
    start, order = _bucket(r, c, 0, 0, s, ncr, ncc)
    _pixel_knn(h, w, r, c, min(int(k), n), s, ncr, ncc, start, order, idx, dist)
    return idx, dist
