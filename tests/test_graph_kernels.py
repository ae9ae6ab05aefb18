"""Graph kernels (grid, Delaunay, nearest EDS, kNN) against independent brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mingraph_kernels.delaunay import (
    delaunay_edges,
    delaunay_triangles,
    delaunay_unique_edges,
    unique_positions,
)
from mingraph_kernels.grid import grid_edge_count, grid_edges
from mingraph_kernels.knn import knn_edges, knn_neighbours
from mingraph_kernels.nearest import nearest_eds_labels, nearest_eds_map

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS = [
    "random",
    "empty",
    "one",
    "two",
    "collinear",
    "row",
    "column",
    "lattice",
    "sublattice",
    "border",
    "duplicates",
    "cluster",
]


@st.composite
def fields(draw, max_side: int = 18, kinds=KINDS):
    """(H, W, eds_rc) with degenerate EDS point sets; the order of the points is shuffled."""
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    kind = draw(st.sampled_from(kinds))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "empty":
        rc = np.zeros((0, 2), np.int64)
    elif kind in ("one", "two", "random", "duplicates", "cluster"):
        n = {"one": 1, "two": 2}.get(kind, draw(st.integers(3, 40)))
        hh, ww = (min(h, 3), min(w, 3)) if kind == "cluster" else (h, w)
        rc = np.stack([rng.integers(0, hh, n), rng.integers(0, ww, n)], 1)
        if kind == "duplicates":
            rc = np.concatenate([rc, rc[rng.integers(0, n, n)]])
    elif kind == "collinear":
        dr, dc = [(0, 1), (1, 0), (1, 1), (1, -1), (1, 2), (2, 1), (2, -3)][draw(st.integers(0, 6))]
        r0, c0 = rng.integers(0, h), rng.integers(0, w)
        pts = [(r0 + t * dr, c0 + t * dc) for t in range(-max_side, max_side)]
        pts = [p for p in pts if 0 <= p[0] < h and 0 <= p[1] < w]
        pts = [p for p in pts if rng.random() < 0.6] or pts[:1]
        rc = np.array(pts, np.int64).reshape(-1, 2)
    elif kind == "row":
        r = rng.integers(0, h)
        rc = np.stack([np.full(w, r), np.arange(w)], 1)
    elif kind == "column":
        c = rng.integers(0, w)
        rc = np.stack([np.arange(h), np.full(h, c)], 1)
    elif kind == "lattice":
        rc = np.mgrid[0:h, 0:w].reshape(2, -1).T
    elif kind == "sublattice":
        s = draw(st.integers(2, 4))
        rc = np.mgrid[rng.integers(0, s) : h : s, rng.integers(0, s) : w : s].reshape(2, -1).T
    else:  # border
        rc = np.array(
            [(r, c) for r in range(h) for c in range(w) if r in (0, h - 1) or c in (0, w - 1)], np.int64
        )
        rc = rc[rng.random(len(rc)) < 0.5] if len(rc) > 3 else rc
    rc = np.asarray(rc, np.int64).reshape(-1, 2)
    return h, w, rc[rng.permutation(len(rc))]


# ----------------------------------------------------------------------------- references


def brute_nearest(h: int, w: int, rc: np.ndarray) -> np.ndarray:
    """Nearest point of every pixel by exhaustive search; argmin returns the lowest index on ties."""
    rr, cc = np.mgrid[0:h, 0:w]
    d2 = (rr.reshape(-1, 1) - rc[:, 0]) ** 2 + (cc.reshape(-1, 1) - rc[:, 1]) ** 2
    return d2.argmin(1).reshape(h, w)


def incircle(tri_pts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Exact in-circle determinant (int64) of query points q (n, 2) against ccw triangles (t, 3, 2): > 0 inside."""
    d = tri_pts[:, None, :, :] - q[None, :, None, :]  # (t, n, 3, 2)
    lift = (d**2).sum(-1)
    a, b, c = d[..., 0, :], d[..., 1, :], d[..., 2, :]
    la, lb, lc = lift[..., 0], lift[..., 1], lift[..., 2]
    return (
        a[..., 0] * (b[..., 1] * lc - lb * c[..., 1])
        - a[..., 1] * (b[..., 0] * lc - lb * c[..., 0])
        + la * (b[..., 0] * c[..., 1] - b[..., 1] * c[..., 0])
    )


def area2(p: np.ndarray) -> np.ndarray:
    """Twice the signed area of triangles (t, 3, 2)."""
    return (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (
        p[:, 2, 0] - p[:, 0, 0]
    )


def hull_area2(points: np.ndarray) -> int:
    """Twice the convex hull area (exact), Andrew's monotone chain."""
    pts = sorted(set(map(tuple, points.tolist())))

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    return abs(
        sum(
            hull[i][0] * hull[(i + 1) % len(hull)][1] - hull[(i + 1) % len(hull)][0] * hull[i][1]
            for i in range(len(hull))
        )
    )


def is_connected(n: int, edges: np.ndarray) -> bool:
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges.tolist():
        parent[find(a)] = find(b)
    return len({find(i) for i in range(n)}) <= 1


def all_collinear(p: np.ndarray) -> bool:
    return (
        len(p) < 3
        or not area2(
            np.stack([np.broadcast_to(p[0], p[2:].shape), np.broadcast_to(p[1], p[2:].shape), p[2:]], 1)
        ).any()
    )


def check_delaunay_triangles(urc: np.ndarray, tris: np.ndarray) -> None:
    """A valid Delaunay triangulation: ccw non-degenerate triangles, every point a vertex,
    triangles tile the convex hull, and no point strictly inside any circumcircle (exact)."""
    p = urc[tris]
    a2 = area2(p)
    assert (a2 != 0).all(), "zero-area triangle"
    p = np.where((a2 > 0)[:, None, None], p, p[:, [0, 2, 1]])
    assert np.array_equal(np.unique(tris), np.arange(len(urc))), "a point is not a vertex"
    assert np.abs(a2).sum() == hull_area2(urc), "triangles do not tile the convex hull"
    for chunk in range(0, len(p), 256):
        assert (incircle(p[chunk : chunk + 256], urc) <= 0).all(), "point inside a circumcircle"


# ----------------------------------------------------------------------------- grid


@pytest.mark.parametrize("h,w", [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5), (6, 4)])
def test_grid_edges_match_python_loops(h, w):
    src, dst, attr = grid_edges(h, w)
    assert src.dtype == dst.dtype == np.int64 and attr.dtype == np.float32
    expected = {}
    for r in range(h):
        for c in range(w):
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    if (dr or dc) and 0 <= r + dr < h and 0 <= c + dc < w:
                        expected[(r * w + c, (r + dr) * w + c + dc)] = math.hypot(dr, dc)
    got = {(s, d): a for s, d, a in zip(src.tolist(), dst.tolist(), attr.tolist())}
    assert len(got) == len(src) == grid_edge_count(h, w) == len(expected)
    assert got.keys() == expected.keys()
    assert all(abs(got[k] - expected[k]) < 1e-6 for k in expected)
    assert (np.diff(src) >= 0).all()  # sorted by source


def test_grid_degrees_and_symmetry():
    h, w = 9, 12
    src, dst, attr = grid_edges(h, w)
    deg = np.bincount(src, minlength=h * w).reshape(h, w)
    assert (deg[1:-1, 1:-1] == 8).all()
    assert deg[0, 0] == deg[0, -1] == deg[-1, 0] == deg[-1, -1] == 3
    assert (deg[0, 1:-1] == 5).all() and (deg[1:-1, 0] == 5).all()
    fwd = dict(zip(zip(src.tolist(), dst.tolist()), attr.tolist()))
    assert all(fwd[(d, s)] == a for (s, d), a in fwd.items())
    assert set(attr.tolist()) == {1.0, float(np.float32(math.sqrt(2)))}


# ----------------------------------------------------------------------------- nearest


@SETTINGS
@given(fields())
def test_nearest_eds_matches_brute_force(field):
    h, w, rc = field
    got = nearest_eds_map(h, w, rc)
    assert got.shape == (h, w) and got.dtype == np.int32
    if len(rc) == 0:
        assert (got == -1).all()
    else:
        np.testing.assert_array_equal(got, brute_nearest(h, w, rc))


def test_nearest_lowest_index_on_ties():
    # pixel (1, 1) is equidistant from all four corners; listed so that the lowest index is last in scan order
    rc = np.array([[2, 2], [0, 2], [2, 0], [0, 0]])
    got = nearest_eds_map(3, 3, rc)
    assert got[1, 1] == 0
    assert got[0, 1] == 1 and got[1, 0] == 2 and got[2, 1] == 0 and got[1, 2] == 0


@pytest.mark.parametrize("seed", range(3))
def test_nearest_clustered_points_in_a_large_field(seed):
    # all EDS points in one corner: the far pixels must still get the exact answer
    rng = np.random.default_rng(seed)
    rc = np.stack([rng.integers(0, 12, 300), rng.integers(0, 12, 300)], 1)
    rc = np.concatenate([rc, [[199, 3]]])
    np.testing.assert_array_equal(nearest_eds_map(200, 160, rc), brute_nearest(200, 160, rc))


@SETTINGS
@given(fields())
def test_nearest_eds_labels_match_brute_force(field):
    # the one nearest-EDS labelling of the package: each pixel takes its nearest point's value
    h, w, rc = field
    values = np.arange(len(rc), dtype=np.int64) * 7 - 1  # point 0 is unclassified (-1)
    got = nearest_eds_labels(h, w, rc, values)
    assert got.shape == (h, w) and got.dtype == np.int64
    if len(rc) == 0:
        assert (got == -1).all()
    else:
        np.testing.assert_array_equal(got, values[brute_nearest(h, w, rc)])


def test_nearest_eds_labels_edge_cases():
    # no point: the fill everywhere, whatever the values' dtype
    none = nearest_eds_labels(3, 4, np.zeros((0, 2), np.int64), np.zeros(0, np.float32), fill=0)
    assert none.shape == (3, 4) and none.dtype == np.float32 and (none == 0).all()
    assert (nearest_eds_labels(2, 2, np.zeros((0, 2), np.int64), np.zeros(0, np.int64)) == -1).all()
    # one point: every pixel takes its value
    assert (nearest_eds_labels(5, 6, np.array([[4, 0]]), np.array([3])) == 3).all()
    # ties go to the lowest index; twins on one pixel too
    rc = np.array([[2, 2], [0, 2], [2, 0], [0, 0], [1, 1], [1, 1]])
    vals = np.array([10, 11, 12, 13, 14, 15])
    got = nearest_eds_labels(3, 3, rc[:4], vals[:4])
    assert got[1, 1] == 10 and got[0, 1] == 11 and got[1, 0] == 12 and got[2, 1] == 10
    assert nearest_eds_labels(3, 3, rc, vals)[1, 1] == 14
    # a map already computed is used as given; bad shapes are refused
    near = np.zeros((3, 3), np.int32)
    assert (nearest_eds_labels(3, 3, rc[:4], vals[:4], nearest=near) == 10).all()
    with pytest.raises(ValueError):
        nearest_eds_labels(3, 3, rc[:4], vals[:3])
    with pytest.raises(ValueError):
        nearest_eds_labels(3, 3, rc[:4], vals[:4], nearest=near[:2])


# ----------------------------------------------------------------------------- Delaunay


@SETTINGS
@given(fields())
def test_delaunay_is_a_delaunay_triangulation(field):
    h, w, rc = field
    urc, first, inverse = unique_positions(rc)
    tris = delaunay_triangles(urc)
    if all_collinear(urc):
        assert tris.shape == (0, 3)
        return
    check_delaunay_triangles(urc, tris)
    # the stored edges are exactly the triangles' edges
    e = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [0, 2]]]), 1)
    np.testing.assert_array_equal(delaunay_unique_edges(urc), np.unique(e, axis=0))


@SETTINGS
@given(fields())
def test_delaunay_edges_invariants(field):
    h, w, rc = field
    n = len(rc)
    e = delaunay_edges(rc)
    assert e.dtype == np.int32 and e.ndim == 2 and e.shape[1] == 2
    assert (e[:, 0] < e[:, 1]).all() and len(np.unique(e, axis=0)) == len(e)
    assert np.array_equal(e, e[np.lexsort((e[:, 1], e[:, 0]))])
    assert is_connected(n, e), "EDS subgraph must stay connected"
    urc, first, _ = unique_positions(rc)
    u, twins = len(urc), n - len(urc)
    # every later twin is linked to the first point at its position with a distance-0 edge
    same = (rc[e[:, 0]] == rc[e[:, 1]]).all(1)
    assert same.sum() == twins
    assert set(e[same, 0].tolist()) <= set(first.tolist())
    if u >= 3:
        assert len(e) - twins <= 3 * u - 6
    if all_collinear(urc):  # chain along the line
        assert len(e) - twins == max(u - 1, 0)
        d2 = ((rc[e[~same, 0]] - rc[e[~same, 1]]) ** 2).sum(1)
        order = np.lexsort((urc[:, 1], urc[:, 0]))
        steps = ((np.diff(urc[order], axis=0)) ** 2).sum(1)
        assert sorted(d2.tolist()) == sorted(steps.tolist())


@pytest.mark.parametrize(
    "pts",
    [
        [(0, 0), (0, 0), (0, 0)],
        [(0, 0), (5, 5)],
        [(3, 1), (1, 3), (2, 2), (0, 4)],
        [(0, 0), (0, 1), (0, 2), (1, 1)],
        [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1), (1, 1)],
    ],
)
def test_delaunay_degenerate_examples_never_crash(pts):
    rc = np.array(pts)
    e = delaunay_edges(rc)
    assert is_connected(len(rc), e)


def test_delaunay_of_a_cocircular_lattice():
    rc = np.mgrid[0:30:3, 0:30:3].reshape(2, -1).T
    urc, _, _ = unique_positions(rc)
    tris = delaunay_triangles(urc)
    check_delaunay_triangles(urc, tris)
    assert len(tris) == 2 * 9 * 9  # each lattice square split into two triangles


# ----------------------------------------------------------------------------- kNN


@SETTINGS
@given(fields(max_side=24), st.integers(1, 8))
def test_knn_matches_brute_force(field, k):
    h, w, rc = field
    n = len(rc)
    nb = knn_neighbours(rc, k)
    assert nb.shape == (n, k)
    d2 = ((rc[:, None, :] - rc[None, :, :]) ** 2).sum(-1)
    for i in range(n):
        order = sorted((j for j in range(n) if j != i), key=lambda j: (d2[i, j], j))[:k]
        assert nb[i].tolist() == order + [-1] * (k - len(order))
    e = knn_edges(rc, k)
    expected = {(min(i, j), max(i, j)) for i in range(n) for j in nb[i].tolist() if j >= 0}
    assert set(map(tuple, e.tolist())) == expected and (e[:, 0] < e[:, 1]).all()


def test_knn_rejects_bad_k():
    with pytest.raises(ValueError):
        knn_neighbours(np.zeros((3, 2)), 0)
