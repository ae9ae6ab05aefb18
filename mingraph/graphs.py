"""The structured graph: the compact form of one field's BSE + EDS graph (DESIGN.md).

Grid edges are implied by (H, W); cross edges by the per-pixel nearest-EDS map; only the
Delaunay edges between EDS nodes are stored.  Explicit edge lists and DGL graphs are derived.

Node numbering of the explicit form (one graph): pixel (r, c) is node ``r * W + c``;
EDS node k is node ``H * W + k``.  For a batch of B graphs of equal size, all pixels come
first (graph b, pixel (r, c) -> ``b*H*W + r*W + c``), then all EDS nodes in batch order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StructuredGraph:
    """One field's graph in compact form."""

    height: int
    width: int
    eds_rc: np.ndarray  # (n, 2) int32 pixel (row, col) of each EDS node
    delaunay: np.ndarray  # (m, 2) int32 undirected EDS-EDS edges, i < j, unique, sorted
    nearest_eds: np.ndarray  # (H, W) int32 nearest EDS node of each pixel (lowest index on ties), -1 if n == 0
    bse: np.ndarray  # (H, W) float32 BSE feature of each pixel
    eds_feat: np.ndarray  # (n, D) float32 EDS features (64-value embeddings, or raw spectra before encoding)
    lift: float = 1.0  # z of EDS nodes; pixels lie at z = 0
    labels: np.ndarray | None = None  # (H, W) int64 pixel classes, -1 = ignore
    eds_labels: np.ndarray | None = None  # (n,) int64 EDS node classes, -1 = ignore

    @property
    def n_pixels(self) -> int:
        return self.height * self.width

    @property
    def n_eds(self) -> int:
        return int(self.eds_rc.shape[0])


@dataclass
class StructuredBatch:
    """B structured graphs of equal (H, W), stacked; EDS nodes concatenated with global indices."""

    height: int
    width: int
    bse: np.ndarray  # (B, H, W) float32
    nearest_eds: np.ndarray  # (B, H, W) int64 global EDS index, -1 where the graph has no EDS node
    eds_rc: np.ndarray  # (N, 2) int32
    eds_graph: np.ndarray  # (N,) int64 graph index of each EDS node
    delaunay: np.ndarray  # (M, 2) int64 global EDS indices, i < j
    eds_feat: np.ndarray  # (N, D) float32
    lift: float = 1.0
    labels: np.ndarray | None = None  # (B, H, W) int64
    eds_labels: np.ndarray | None = None  # (N,) int64

    @property
    def batch_size(self) -> int:
        return int(self.bse.shape[0])

    @property
    def n_eds(self) -> int:
        return int(self.eds_rc.shape[0])


def batch_graphs(graphs: list[StructuredGraph]) -> StructuredBatch:
    """Stack graphs of equal size into one batch (EDS indices offset per graph)."""
    if not graphs:
        raise ValueError("batch_graphs: no graphs given")
    h, w = graphs[0].height, graphs[0].width
    if any((g.height, g.width) != (h, w) for g in graphs):
        raise ValueError("batch_graphs: all graphs of a batch must have the same height and width")
    lifts = {g.lift for g in graphs}
    if len(lifts) != 1:
        raise ValueError("batch_graphs: all graphs of a batch must share one lift height")
    offsets = np.cumsum([0] + [g.n_eds for g in graphs])
    nearest = np.stack([np.where(g.nearest_eds >= 0, g.nearest_eds.astype(np.int64) + o, -1) for g, o in zip(graphs, offsets)])
    dim = max((g.eds_feat.shape[1] for g in graphs if g.eds_feat.ndim == 2), default=0)
    feats = [g.eds_feat.reshape(g.n_eds, dim) for g in graphs]
    has_labels = all(g.labels is not None for g in graphs)
    return StructuredBatch(
        height=h,
        width=w,
        bse=np.stack([g.bse for g in graphs]).astype(np.float32),
        nearest_eds=nearest,
        eds_rc=np.concatenate([g.eds_rc.reshape(-1, 2) for g in graphs]).astype(np.int32),
        eds_graph=np.repeat(np.arange(len(graphs)), [g.n_eds for g in graphs]).astype(np.int64),
        delaunay=np.concatenate([g.delaunay.reshape(-1, 2).astype(np.int64) + o for g, o in zip(graphs, offsets)]),
        eds_feat=np.concatenate(feats).astype(np.float32),
        lift=graphs[0].lift,
        labels=np.stack([g.labels for g in graphs]).astype(np.int64) if has_labels else None,
        eds_labels=np.concatenate([g.eds_labels for g in graphs]).astype(np.int64)
        if all(g.eds_labels is not None for g in graphs)
        else None,
    )


def build_structured_graph(
    bse: np.ndarray,
    eds_rc: np.ndarray,
    eds_feat: np.ndarray,
    lift: float = 1.0,
    eds_edges: str = "delaunay",
    k: int = 6,
) -> StructuredGraph:
    """Build the compact graph of one field from its BSE image and EDS positions/features.

    PROVISIONAL scipy implementation; replaced by the Numba kernels of ``mingraph_kernels``.
    """
    from scipy.spatial import Delaunay, cKDTree

    h, w = bse.shape
    eds_rc = np.asarray(eds_rc, dtype=np.int32).reshape(-1, 2)
    n = eds_rc.shape[0]
    if n == 0:
        nearest = np.full((h, w), -1, dtype=np.int32)
        edges = np.zeros((0, 2), dtype=np.int32)
    else:
        rr, cc = np.mgrid[0:h, 0:w]
        pix = np.stack([rr.ravel(), cc.ravel()], 1).astype(np.float64)
        d2 = ((pix[:, None, :] - eds_rc[None, :, :]) ** 2).sum(-1)
        nearest = d2.argmin(1).reshape(h, w).astype(np.int32)
        pairs = set()
        if eds_edges == "delaunay":
            try:
                tri = Delaunay(eds_rc.astype(np.float64))
                for s in tri.simplices:
                    for a, b in ((s[0], s[1]), (s[1], s[2]), (s[0], s[2])):
                        pairs.add((min(a, b), max(a, b)))
            except Exception:
                order = np.lexsort((eds_rc[:, 1], eds_rc[:, 0]))
                for a, b in zip(order[:-1], order[1:]):
                    pairs.add((min(a, b), max(a, b)))
        else:
            _, idx = cKDTree(eds_rc).query(eds_rc, k=min(k + 1, n))
            for i, row in enumerate(np.atleast_2d(idx)):
                for j in row:
                    if j != i and j < n:
                        pairs.add((min(i, j), max(i, j)))
        edges = np.array(sorted(pairs), dtype=np.int32).reshape(-1, 2)
    return StructuredGraph(h, w, eds_rc, edges, nearest, np.asarray(bse, np.float32), _feature_rows(eds_feat, n), float(lift))


def _feature_rows(eds_feat: np.ndarray, n: int) -> np.ndarray:
    """EDS features as a float32 (n, D) array; (0, D) stays two-dimensional."""
    a = np.asarray(eds_feat, np.float32)
    return a.reshape(n, a.shape[-1] if a.ndim == 2 else (a.size // n if n else 0))
