"""Nearest EDS node of every pixel, exact, with the lowest-index tie-break.

A greedy walk on the Delaunay graph of the distinct EDS positions.  In any Delaunay
triangulation a site that is not nearest to a pixel has a neighbour strictly closer to it (the
bisectors bounding a Voronoi cell are all Delaunay edges, present in every triangulation), and
all sites tied for nearest lie on one empty circle whose polygon edges are Delaunay edges, so a
search over equidistant neighbours from the walk's end finds every tie.  Each row is scanned left
to right, its first walk starting at the site found for the previous row's first pixel and every
later walk at the site of the run before it; a walk's end also bounds the run of pixels along the
row that share its site, which are filled at once.  Walks are therefore short (usually 0-1
steps) and unlike a bucket grid insensitive to clustered point sets.  Row blocks run in parallel.
Distances are exact integers.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .delaunay import delaunay_unique_edges, edges_to_csr, unique_positions


@njit(cache=True, inline="always")
def _d2(ur, uc, s, r, c):
    dr = ur[s] - r
    dc = uc[s] - c
    return dr * dr + dc * dc


@njit(cache=True)
def _lowest_tie(ur, uc, indptr, indices, rep, cur, best, r, c, buf):
    """Lowest input index among all sites at squared distance `best` (connected to `cur` by ties)."""
    res = rep[cur]
    buf[0] = cur
    cnt = 1
    head = 0
    while head < cnt:
        u = buf[head]
        head += 1
        for j in range(indptr[u], indptr[u + 1]):
            v = indices[j]
            if _d2(ur, uc, v, r, c) != best:
                continue
            seen = False
            for q in range(cnt):
                if buf[q] == v:
                    seen = True
                    break
            if not seen:
                buf[cnt] = v
                cnt += 1
                if rep[v] < res:
                    res = rep[v]
    return res


@njit(cache=True)
def _walk_run(ur, uc, indptr, indices, cur, r, c, w):
    """Walk to a nearest site of pixel (r, c), then find how far along the row it stays nearest.

    Returns (site, squared distance, tie, end, nxt): `tie` if a neighbour is equally near,
    `end` the last column x >= c - 1 such that the site is strictly nearest on all of (c, x],
    and `nxt` the neighbour whose bisector ends the run (where the next walk starts), or -1.
    The open Voronoi cell of a site is the intersection of the open half-planes of its Delaunay
    neighbours, and on a row each half-plane test is linear in the column: exact integers.
    """
    while True:
        d0 = _d2(ur, uc, cur, r, c)
        best = d0
        nxt = -1
        tie = False
        end = w - 1
        lim_site = -1
        for j in range(indptr[cur], indptr[cur + 1]):
            v = indices[j]
            d = _d2(ur, uc, v, r, c)
            if d < best:
                best = d
                nxt = v
            elif d == d0:
                tie = True
            # only meaningful if no neighbour is nearer (the final scan): f >= 0 at c
            f = d - d0
            slope = -2 * (uc[v] - uc[cur])  # f(x) = f + slope * (x - c)
            if slope < 0:
                if f - 1 < (end - c) * (-slope):  # tightens: only then pay for the division
                    end = c + (f - 1) // (-slope)
                    lim_site = v
            elif slope == 0 and f == 0 and end > c:
                end = c
        if nxt < 0:
            return cur, d0, tie, end, lim_site
        cur = nxt


@njit(cache=True)
def _nearest_rows(r0, r1, w, ur, uc, indptr, indices, rep, out):
    """Rows r0..r1-1 of the nearest map: runs of equal nearest site filled at once."""
    buf = np.empty(ur.shape[0], np.int64)
    row_start = 0
    for r in range(r0, r1):
        cur = row_start
        c = 0
        while c < w:
            cur, best, tie, end, nxt = _walk_run(ur, uc, indptr, indices, cur, r, c, w)
            if c == 0:
                row_start = cur
            rv = rep[cur]
            out[r, c] = _lowest_tie(ur, uc, indptr, indices, rep, cur, best, r, c, buf) if tie else rv
            for x in range(c + 1, end + 1):
                out[r, x] = rv
            c = end + 1 if end > c else c + 1
            if nxt >= 0:
                cur = nxt


@njit(cache=True, parallel=True)
def _nearest_blocks(h, w, ur, uc, indptr, indices, rep, n_blocks, out):
    # the row loop lives in a separate serial function: inlined into the parfor body it ran ~30x slower
    for b in prange(n_blocks):
        _nearest_rows(b * h // n_blocks, (b + 1) * h // n_blocks, w, ur, uc, indptr, indices, rep, out)


def nearest_map_from_delaunay(
    height: int,
    width: int,
    urc: np.ndarray,
    edges_u: np.ndarray,
    first: np.ndarray,
    n_blocks: int | None = None,
) -> np.ndarray:
    """Nearest-EDS map (H, W) int32 from distinct positions `urc`, their Delaunay edges and first twins.

    `edges_u` must be the Delaunay (or, for degenerate sets, chain) edges of `urc` as returned by
    ``delaunay_unique_edges``; `first[u]` is the input index reported for distinct position u.
    """
    h, w = int(height), int(width)
    u = urc.shape[0]
    if u == 0:
        return np.full((h, w), -1, np.int32)
    if h == 0 or w == 0:
        return np.zeros((h, w), np.int32)
    indptr, indices = edges_to_csr(u, np.ascontiguousarray(edges_u, dtype=np.int64).reshape(-1, 2))
    if n_blocks is None:
        n_blocks = 1 if h * w < 40_000 else 4 * numba.get_num_threads()
    out = np.empty((h, w), np.int32)
    ur = np.ascontiguousarray(urc[:, 0], dtype=np.int64)
    uc = np.ascontiguousarray(urc[:, 1], dtype=np.int64)
    rep = np.ascontiguousarray(first, dtype=np.int64)
    n_blocks = max(1, min(int(n_blocks), h))
    if n_blocks == 1:
        _nearest_rows(0, h, w, ur, uc, indptr, indices, rep, out)
    else:
        _nearest_blocks(h, w, ur, uc, indptr, indices, rep, n_blocks, out)
    return out


def nearest_eds_map(height: int, width: int, eds_rc: np.ndarray) -> np.ndarray:
    """Nearest EDS node (H, W) int32 of every pixel, lowest index on ties; -1 everywhere if none."""
    urc, first, _ = unique_positions(eds_rc)
    if urc.shape[0] == 0:
        return np.full((int(height), int(width)), -1, np.int32)
    return nearest_map_from_delaunay(height, width, urc, delaunay_unique_edges(urc), first)


def nearest_eds_labels(
    height: int,
    width: int,
    eds_rc: np.ndarray,
    values: np.ndarray,
    fill=-1,
    nearest: np.ndarray | None = None,
) -> np.ndarray:
    """Nearest-EDS labelling: every pixel takes ``values[k]`` of its nearest EDS point k.

    ``values`` (n,) one entry per point of ``eds_rc`` (a class, a confidence; -1 classes stay
    unclassified pixels).  The nearest point is :func:`nearest_eds_map`'s (exact, lowest index on
    ties) unless ``nearest``, an (H, W) map of these points already computed (a graph's), is
    given.  ``fill`` everywhere when there is no point.  Returns (H, W) of ``values``' dtype.
    """
    values = np.asarray(values)
    n = len(eds_rc)
    if n == 0:
        return np.full((int(height), int(width)), fill, values.dtype)
    if values.shape != (n,):
        raise ValueError(f"expected {n} values, one per EDS point, got shape {values.shape}")
    near = nearest_eds_map(height, width, eds_rc) if nearest is None else np.asarray(nearest)
    if near.shape != (int(height), int(width)):
        raise ValueError(f"nearest map has shape {near.shape}, expected {(int(height), int(width))}")
    return values[near]
