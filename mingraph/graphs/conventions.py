"""Graph conventions: how edge attributes, the EDS height and degenerate point sets are chosen.

Two conventions build the same kind of graph (pixels on an 8-neighbour grid, EDS nodes linked
among themselves and to pixels) with different edge attributes (docs/formats.md, "Graph
conventions"):

``paper`` (the default, docs/method.md "Graph semantics")
    grid edges 1 / √2; EDS–EDS edges the 2-D distance d; pixel ↔ EDS edges
    sqrt(dr² + dc² + h²) with h = 1; nearest EDS ties broken by the lowest index; < 3 or
    collinear points joined by a chain (``mingraph_kernels.delaunay``).

``authors`` (the builder the paper's authors released with their checkpoint,
``graph_fusion_eds.py`` of github.com/Unexp1ainable/GNN_mineral_segmentation)
    that builder lists the grid, Delaunay and EDS-to-own-pixel edges in both directions and then
    merges the list with PyG's ``to_undirected`` (``reduce="add"``), so those attributes are
    doubled: grid 2 / 2√2, Delaunay 2d, EDS node ↔ the pixel under it 2h; other pixel → nearest
    EDS edges keep sqrt(dr² + dc² + h²); h = 5.  EDS nodes are numbered in row-major order of
    their pixels (the builder takes a mask); the triangulation is scipy's ``Delaunay`` with qhull
    options ``Qbb Qc Qz Q12``; each pixel's nearest EDS node is what ``scipy.spatial.KDTree``
    returns on the builder's 3-D coordinates (its ties are not lowest-index); when qhull fails
    (< 3 or collinear points) each point is linked to its 2 nearest neighbours (1 when there
    are only 2 points), an attribute d for a one-sided pair and 2d for a mutual one, as
    ``to_undirected`` sums them.  Distinct positions only: the builder cannot hold two EDS
    points on one pixel.

The structured kernels keep a unit-spaced grid stencil: a convention whose grid attributes are
s·(1, √2) is run by scaling each layer's edge constant by s and storing every other attribute
divided by s (the edge term of the attention score is ``d · c``, so ``(d/s)·(s·c) = d·c``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Convention:
    """Edge-attribute factors of one convention (see the module docstring)."""

    name: str
    grid_scale: float  # grid attributes are grid_scale · (1, √2)
    own_scale: float  # attribute of EDS node ↔ the pixel under it: own_scale · h
    eds_scale: float  # EDS–EDS attribute: eds_scale · d (the authors' kNN fallback stores its own)
    lift: float  # the EDS height h this convention was defined with


CONVENTIONS = {
    "paper": Convention("paper", 1.0, 1.0, 1.0, 1.0),
    "authors": Convention("authors", 2.0, 2.0, 2.0, 5.0),
}
AUTHORS_QHULL = "Qbb Qc Qz Q12"  # the released builder's qhull options


def get_convention(name: str) -> Convention:
    """The :class:`Convention` called ``name``; ValueError for an unknown name."""
    if name not in CONVENTIONS:
        raise ValueError(f"unknown graph convention {name!r}; expected one of {sorted(CONVENTIONS)}")
    return CONVENTIONS[name]


def topology_kwargs(batch) -> dict:
    """Keyword arguments of ``build_structured_topology`` for a batch's convention."""
    conv = get_convention(getattr(batch, "convention", "paper"))
    mult = getattr(batch, "eds_mult", None)
    return dict(
        grid_scale=conv.grid_scale,
        own_scale=conv.own_scale,
        eds_mult=conv.eds_scale if mult is None else mult,
    )


def batch_eds_mult(graphs) -> np.ndarray | None:
    """Concatenated EDS-edge multipliers of graphs batched together (None when none stores its own)."""
    if all(g.eds_mult is None for g in graphs):
        return None
    scale = get_convention(graphs[0].convention).eds_scale
    return np.concatenate(
        [np.full(len(g.delaunay), scale, np.float32) if g.eds_mult is None else g.eds_mult for g in graphs]
    ).astype(np.float32)


def authors_order(eds_rc: np.ndarray) -> np.ndarray:
    """Indices that sort EDS positions (n, 2) row-major, the node order of the authors' builder
    (``np.where(mask)``); ValueError when two points share a pixel."""
    rc = np.asarray(eds_rc, np.int64).reshape(-1, 2)
    order = np.lexsort((rc[:, 1], rc[:, 0]))
    s = rc[order]
    dup = np.nonzero((s[1:] == s[:-1]).all(1))[0]
    if dup.size:
        raise ValueError(
            f"the authors convention needs distinct EDS positions; two points lie on pixel {tuple(s[dup[0]])}"
        )
    return order


def authors_parts(
    height: int, width: int, eds_rc: np.ndarray, lift: float = 5.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EDS edges, their attribute multipliers and the nearest-EDS map of the authors' builder.

    ``eds_rc`` (n, 2) integer (row, col) positions, distinct, in any order (node k of the result
    is ``eds_rc[k]``).  Returns ``edges`` (m, 2) int32 undirected pairs i < j sorted, ``mult``
    (m,) float32 (the pair's attribute is ``mult · d``: 2 for Delaunay edges; 1 or 2 for the
    2-nearest-neighbour fallback) and ``nearest`` (H, W) int32 (-1 everywhere when n = 0).
    Searches: ``scipy.spatial.Delaunay(qhull_options="Qbb Qc Qz Q12")`` and
    ``scipy.spatial.KDTree`` on the builder's coordinates (x = col, y = row, z = 0 for pixels and
    ``lift`` for EDS nodes), in the builder's node order, so ties fall as they do there.
    """
    from scipy.spatial import Delaunay, KDTree, QhullError

    rc = np.asarray(eds_rc, np.int64).reshape(-1, 2)
    n = rc.shape[0]
    if n == 0:
        return np.zeros((0, 2), np.int32), np.zeros(0, np.float32), np.full((height, width), -1, np.int32)
    order = authors_order(rc)
    xy = rc[order][:, ::-1].astype(np.float64)  # builder's node t is our node order[t]
    eds_xyz = np.column_stack([xy, np.full(n, float(lift))])
    try:
        ptr, nbr = Delaunay(xy, qhull_options=AUTHORS_QHULL).vertex_neighbor_vertices
        src = np.repeat(np.arange(n), np.diff(ptr))
        dst = nbr
    except (QhullError, ValueError):  # < 3 or collinear points: the builder's kNN fallback
        k = min(2, n - 1)
        if k == 0:
            src = dst = np.zeros(0, np.int64)
        else:
            _, idx = KDTree(eds_xyz).query(eds_xyz, k=k + 1)
            src = np.repeat(np.arange(n), k)
            dst = idx[:, 1:].reshape(-1)  # column 0 is the point itself (distinct positions)
    i, j = order[src], order[dst]
    pairs = np.stack([np.minimum(i, j), np.maximum(i, j)], 1)
    uniq, count = np.unique(pairs, axis=0, return_counts=True) if pairs.size else (pairs.reshape(0, 2), [])
    # the builder lists (i, j) for each direction found; to_undirected adds the reverse of each:
    # a pair listed in both directions ends with 2d, in one direction with d
    mult = np.asarray(count, np.float32).reshape(-1)
    pix_y, pix_x = np.mgrid[0:height, 0:width]
    pix_xyz = np.column_stack([pix_x.ravel(), pix_y.ravel(), np.zeros(height * width)]).astype(np.float64)
    _, near = KDTree(eds_xyz).query(pix_xyz, workers=-1)  # per-pixel queries: same answers in parallel
    nearest = order[np.asarray(near, np.int64)].reshape(height, width).astype(np.int32)
    return uniq.astype(np.int32), mult, nearest


__all__ = [
    "Convention",
    "CONVENTIONS",
    "get_convention",
    "topology_kwargs",
    "batch_eds_mult",
    "authors_order",
    "authors_parts",
]
