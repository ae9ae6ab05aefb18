"""Delaunay edges between EDS positions (integer pixels), robust to degenerate point sets.

EDS positions lie on integer pixels, so point sets are often degenerate: duplicates, collinear
rows, co-circular lattices.  The rules (all deterministic, the graph always stays connected):

* Duplicates: the triangulation is built on the distinct positions; each position is
  represented by its lowest-index point ("first twin"), and every later twin is linked to its
  first twin by an edge of length 0.
* Fewer than 3 distinct positions, or all collinear: a chain through the distinct positions in
  sorted line order (lexicographic (row, col), which is the order along any line).
* Otherwise scipy's Qhull with its default Delaunay options ``Qbb Qc Qz Q12 Qt`` (merging
  co-circular facets, then triangulating them: for exact ties any diagonal is Delaunay).
  Defensive fallbacks, never seen on integer lattices in our tests: a zero-area triangle
  contributes only its two short edges; an input point Qhull reports as "coplanar" (not a
  vertex) is linked to the vertices of the triangle holding it; if Qhull fails, it is retried
  with the ``QJ`` joggle option.
"""

from __future__ import annotations

import numpy as np
from numba import njit

QHULL_OPTIONS = "Qbb Qc Qz Q12 Qt"
QHULL_FALLBACK_OPTIONS = "QJ Qbb"


def unique_positions(rc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct positions of an (n, 2) integer array.

    Returns (urc, first, inverse): urc (u, 2) int64 distinct positions sorted by (row, col),
    first (u,) int64 the lowest input index at each position, inverse (n,) int64 the distinct
    position of each input point.
    """
    rc = np.asarray(rc).reshape(-1, 2).astype(np.int64)
    if rc.shape[0] == 0:
        return rc, np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo = rc.min(0)
    span = rc[:, 1].max() - lo[1] + 1
    keys = (rc[:, 0] - lo[0]) * span + (rc[:, 1] - lo[1])
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return rc[first], first.astype(np.int64), inverse.reshape(-1).astype(np.int64)


@njit(cache=True)
def _all_collinear(p: np.ndarray) -> bool:
    """True if all (distinct) integer points lie on one line (exact int64 arithmetic)."""
    n = p.shape[0]
    if n < 3:
        return True
    ax, ay = p[0, 0], p[0, 1]
    bx, by = p[1, 0] - ax, p[1, 1] - ay
    for i in range(2, n):
        if bx * (p[i, 1] - ay) - by * (p[i, 0] - ax) != 0:
            return False
    return True


@njit(cache=True)
def _triangle_edge_pairs(p: np.ndarray, simplices: np.ndarray) -> np.ndarray:
    """Undirected edges (a, b), a < b, of all triangles (with repeats); a zero-area triangle gives only its 2 short edges."""
    t = simplices.shape[0]
    out = np.empty((3 * t, 2), np.int64)
    k = 0
    for i in range(t):
        a, b, c = simplices[i, 0], simplices[i, 1], simplices[i, 2]
        area2 = (p[b, 0] - p[a, 0]) * (p[c, 1] - p[a, 1]) - (p[b, 1] - p[a, 1]) * (p[c, 0] - p[a, 0])
        for e in range(3):
            if e == 0:
                u, v, x = a, b, c
            elif e == 1:
                u, v, x = b, c, a
            else:
                u, v, x = a, c, b
            if area2 == 0:
                # drop the long edge: it passes through the third point x
                if min(p[u, 0], p[v, 0]) <= p[x, 0] <= max(p[u, 0], p[v, 0]) and min(p[u, 1], p[v, 1]) <= p[
                    x, 1
                ] <= max(p[u, 1], p[v, 1]):
                    continue
            out[k, 0] = min(u, v)
            out[k, 1] = max(u, v)
            k += 1
    return out[:k]


@njit(cache=True)
def sorted_unique_edges(pairs: np.ndarray, n: int) -> np.ndarray:
    """Sorted unique rows of (m, 2) pairs with a < b < n: counting sort by a, insertion sort within a row (O(m * degree))."""
    m = pairs.shape[0]
    start = np.zeros(n + 1, np.int64)
    for i in range(m):
        start[pairs[i, 0] + 1] += 1
    for i in range(n):
        start[i + 1] += start[i]
    fill = start[:-1].copy()
    col = np.empty(m, np.int64)
    for i in range(m):
        a = pairs[i, 0]
        col[fill[a]] = pairs[i, 1]
        fill[a] += 1
    out = np.empty((m, 2), np.int64)
    k = 0
    for a in range(n):
        lo, hi = start[a], start[a + 1]
        for i in range(lo + 1, hi):  # rows are short: insertion sort
            v = col[i]
            j = i - 1
            while j >= lo and col[j] > v:
                col[j + 1] = col[j]
                j -= 1
            col[j + 1] = v
        for i in range(lo, hi):
            if i == lo or col[i] != col[i - 1]:
                out[k, 0] = a
                out[k, 1] = col[i]
                k += 1
    return out[:k]


@njit(cache=True)
def _lift_pairs(edges_u: np.ndarray, first: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Edges between distinct positions -> input indices (first twins), plus (first twin, later twin) links."""
    m = edges_u.shape[0]
    n = inverse.shape[0]
    extra = 0
    for i in range(n):
        if first[inverse[i]] != i:
            extra += 1
    out = np.empty((m + extra, 2), np.int64)
    for i in range(m):
        a = first[edges_u[i, 0]]
        b = first[edges_u[i, 1]]
        out[i, 0] = min(a, b)
        out[i, 1] = max(a, b)
    k = m
    for i in range(n):
        f = first[inverse[i]]
        if f != i:
            out[k, 0] = f  # the first twin has the lowest index
            out[k, 1] = i
            k += 1
    return out


def _chain(urc: np.ndarray) -> np.ndarray:
    u = urc.shape[0]  # urc is already sorted by (row, col)
    return np.stack([np.arange(u - 1), np.arange(1, u)], 1).astype(np.int64)


def delaunay_triangles(urc: np.ndarray) -> np.ndarray:
    """Delaunay triangles (t, 3) int64 of distinct integer points; (0, 3) if degenerate (< 3 or collinear)."""
    from scipy.spatial import Delaunay, QhullError

    urc = np.ascontiguousarray(urc, dtype=np.int64).reshape(-1, 2)
    if urc.shape[0] < 3 or _all_collinear(urc):
        return np.zeros((0, 3), np.int64)
    pts = urc.astype(np.float64)
    try:
        tri = Delaunay(pts, qhull_options=QHULL_OPTIONS)
    except QhullError:
        tri = Delaunay(pts, qhull_options=QHULL_FALLBACK_OPTIONS)
    simp = tri.simplices.astype(np.int64)
    if len(tri.coplanar):
        simp = np.concatenate([simp, _coplanar_triangles(tri)])
    return simp


def _coplanar_triangles(tri) -> np.ndarray:
    """Fallback for points Qhull left out: connect each to the vertices of its enclosing triangle."""
    rows = []
    for pt, simplex, _ in tri.coplanar:
        a, b, c = tri.simplices[simplex]
        rows += [(pt, a, b), (pt, b, c), (pt, a, c)]
    return np.asarray(rows, np.int64).reshape(-1, 3)


def delaunay_unique_edges(urc: np.ndarray) -> np.ndarray:
    """Undirected Delaunay edges (m, 2) int64 (i < j, sorted) between distinct integer points.

    Collinear or < 3 points: the chain in (row, col) order (``urc`` must be sorted that way,
    as ``unique_positions`` returns it).
    """
    urc = np.ascontiguousarray(urc, dtype=np.int64).reshape(-1, 2)
    u = urc.shape[0]
    simp = delaunay_triangles(urc)
    if simp.shape[0] == 0:
        return _chain(urc)
    return sorted_unique_edges(_triangle_edge_pairs(urc, simp), u)


def lift_edges(edges_u: np.ndarray, first: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Map edges between distinct positions to input indices (first twins) and link later twins to them.

    Returns sorted unique (m, 2) int64 edges, i < j.
    """
    n = inverse.shape[0]
    pairs = _lift_pairs(
        np.ascontiguousarray(edges_u, dtype=np.int64).reshape(-1, 2),
        first.astype(np.int64),
        inverse.astype(np.int64),
    )
    return sorted_unique_edges(pairs, n)


def delaunay_edges(rc: np.ndarray) -> np.ndarray:
    """Undirected Delaunay edges (m, 2) int32 (i < j, unique, sorted) of (n, 2) integer positions.

    Handles duplicates, < 3 points and collinear sets as described in the module docstring.
    """
    urc, first, inverse = unique_positions(rc)
    if urc.shape[0] == 0:
        return np.zeros((0, 2), np.int32)
    return lift_edges(delaunay_unique_edges(urc), first, inverse).astype(np.int32)


@njit(cache=True)
def edges_to_csr(n: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric CSR adjacency (indptr (n+1,), indices (2m,)) of undirected edges (m, 2)."""
    m = edges.shape[0]
    deg = np.zeros(n + 1, np.int64)
    for i in range(m):
        deg[edges[i, 0] + 1] += 1
        deg[edges[i, 1] + 1] += 1
    for i in range(n):
        deg[i + 1] += deg[i]
    fill = deg[:-1].copy()
    indices = np.empty(2 * m, np.int64)
    for i in range(m):
        a, b = edges[i, 0], edges[i, 1]
        indices[fill[a]] = b
        fill[a] += 1
        indices[fill[b]] = a
        fill[b] += 1
    return deg, indices
