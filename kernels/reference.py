"""Plain-Python reference graph builder, written straight from the paper's text (Sec. 3.1).

Loops over pixels and EDS nodes, no vectorisation: slow, obvious, independent of the fast
kernels.  It is the oracle of the tests and the "reference builder" of the benchmarks.

* grid: every pixel links to its 8-neighbourhood, attribute = Euclidean distance (1 or sqrt 2);
* EDS: Delaunay triangulation of the EDS positions (scipy's Qhull: the triangulation of a
  degenerate set is not unique, so callers may pass the EDS-EDS pairs to compare the rest);
  fewer than 3 points or a Qhull failure (collinear): a chain in (row, col) order;
* cross: pixels at z = 0, EDS nodes at z = lift; every pixel links to its closest EDS node and
  every EDS node to its closest pixel (first found = lowest index on ties), both directions,
  duplicates removed, attribute = 3-D Euclidean distance;
* optional self-loops with attribute 0.

Node numbering: pixel (r, c) is r*W + c, EDS node k is H*W + k.
"""

from __future__ import annotations

import math


def reference_eds_pairs(eds_rc) -> set[tuple[int, int]]:
    """Undirected EDS-EDS pairs (i < j) from scipy's Delaunay triangulation, chain fallback."""
    from scipy.spatial import Delaunay

    pts = [(int(r), int(c)) for r, c in eds_rc]
    pairs: set[tuple[int, int]] = set()
    try:
        if len(pts) < 3:
            raise ValueError("fewer than 3 points")
        for s in Delaunay([[float(r), float(c)] for r, c in pts]).simplices:
            a, b, c = int(s[0]), int(s[1]), int(s[2])
            for i, j in ((a, b), (b, c), (a, c)):
                pairs.add((min(i, j), max(i, j)))
    except Exception:
        order = sorted(range(len(pts)), key=lambda i: (pts[i], i))
        for i, j in zip(order[:-1], order[1:]):
            pairs.add((min(i, j), max(i, j)))
    return pairs


def reference_edges(
    height: int, width: int, eds_rc, lift: float = 1.0, eds_pairs=None, self_loops: bool = True
) -> dict[tuple[int, int], float]:
    """All directed edges {(src, dst): attribute} of one field's graph, built with Python loops."""
    h, w = int(height), int(width)
    pts = [(int(r), int(c)) for r, c in eds_rc]
    n = len(pts)
    hw = h * w
    edges: dict[tuple[int, int], float] = {}
    # (1) pixel grid, 8-neighbourhood
    for r in range(h):
        for c in range(w):
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if (dr or dc) and 0 <= rr < h and 0 <= cc < w:
                        edges[(r * w + c, rr * w + cc)] = math.sqrt(dr * dr + dc * dc)
    # (2) EDS-EDS
    if eds_pairs is None:
        eds_pairs = reference_eds_pairs(pts)
    for i, j in eds_pairs:
        i, j = int(i), int(j)
        d = math.sqrt((pts[i][0] - pts[j][0]) ** 2 + (pts[i][1] - pts[j][1]) ** 2)
        edges[(hw + i, hw + j)] = d
        edges[(hw + j, hw + i)] = d

    # (3) cross edges in 3-D: pixels at z = 0, EDS nodes at z = lift
    def dist3(r, c, k):
        return math.sqrt((r - pts[k][0]) ** 2 + (c - pts[k][1]) ** 2 + lift * lift)

    if n:
        for r in range(h):  # every pixel -> its closest EDS node
            for c in range(w):
                best, best_k = math.inf, -1
                for k, (pr, pc) in enumerate(pts):
                    dr, dc = r - pr, c - pc
                    d = dr * dr + dc * dc
                    if d < best:
                        best, best_k = d, k
                edges[(r * w + c, hw + best_k)] = dist3(r, c, best_k)
                edges[(hw + best_k, r * w + c)] = dist3(r, c, best_k)
        for k in range(n):  # every EDS node -> its closest pixel
            best, best_p = math.inf, (-1, -1)
            pr, pc = pts[k]
            for r in range(h):
                for c in range(w):
                    dr, dc = r - pr, c - pc
                    d = dr * dr + dc * dc
                    if d < best:
                        best, best_p = d, (r, c)
            r, c = best_p
            edges[(r * w + c, hw + k)] = dist3(r, c, k)
            edges[(hw + k, r * w + c)] = dist3(r, c, k)
    if self_loops:
        for i in range(hw + n):
            edges[(i, i)] = 0.0
    return edges
