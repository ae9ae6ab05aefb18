"""The structured graph: the compact form of one field's BSE + EDS graph (docs/method.md, "Compact form").

Grid edges are implied by (H, W); cross edges by the per-pixel nearest-EDS map; only the
Delaunay edges between EDS nodes are stored.  Explicit edge lists and DGL graphs are derived.

Node numbering of the explicit form (one graph): pixel (r, c) is node ``r * W + c``;
EDS node k is node ``H * W + k``.  For a batch of B graphs of equal size, all pixels come
first (graph b, pixel (r, c) -> ``b*H*W + r*W + c``), then all EDS nodes in batch order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mingraph.graphs.conventions import authors_parts, batch_eds_mult, get_convention
from mingraph_kernels.delaunay import delaunay_unique_edges, lift_edges, unique_positions
from mingraph_kernels.grid import grid_edge_count, grid_edges_into
from mingraph_kernels.knn import knn_edges
from mingraph_kernels.nearest import nearest_map_from_delaunay


@dataclass
class StructuredGraph:
    """One field's graph in compact form."""

    height: int
    width: int
    eds_rc: np.ndarray  # (n, 2) int32 pixel (row, col) of each EDS node
    delaunay: np.ndarray  # (m, 2) int32 undirected EDS-EDS edges, i < j, unique, sorted
    nearest_eds: (
        np.ndarray
    )  # (H, W) int32 nearest EDS node of each pixel (lowest index on ties), -1 if n == 0
    bse: np.ndarray  # (H, W) float32 BSE feature of each pixel
    eds_feat: np.ndarray  # (n, D) float32 EDS features (64-value embeddings, or raw spectra before encoding)
    lift: float = 1.0  # z of EDS nodes; pixels lie at z = 0
    labels: np.ndarray | None = None  # (H, W) int64 pixel classes, -1 = ignore
    eds_labels: np.ndarray | None = None  # (n,) int64 EDS node classes, -1 = ignore
    convention: str = "paper"  # edge attributes: "paper" or "authors" (graphs/conventions.py)
    eds_mult: np.ndarray | None = None  # (m,) float32 attribute multiplier of each EDS edge, or None

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
    convention: str = "paper"
    eds_mult: np.ndarray | None = None  # (M,) float32, None = the convention's own factor

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
    if len({g.convention for g in graphs}) != 1:
        raise ValueError("batch_graphs: all graphs of a batch must share one graph convention")
    offsets = np.cumsum([0] + [g.n_eds for g in graphs])
    nearest = np.stack(
        [
            np.where(g.nearest_eds >= 0, g.nearest_eds.astype(np.int64) + o, -1)
            for g, o in zip(graphs, offsets)
        ]
    )
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
        delaunay=np.concatenate(
            [g.delaunay.reshape(-1, 2).astype(np.int64) + o for g, o in zip(graphs, offsets)]
        ),
        eds_feat=np.concatenate(feats).astype(np.float32),
        lift=graphs[0].lift,
        labels=np.stack([g.labels for g in graphs]).astype(np.int64) if has_labels else None,
        eds_labels=np.concatenate([g.eds_labels for g in graphs]).astype(np.int64)
        if all(g.eds_labels is not None for g in graphs)
        else None,
        convention=graphs[0].convention,
        eds_mult=batch_eds_mult(graphs),
    )


EDS_EDGE_KINDS = ("delaunay", "knn")


def build_structured_graph(
    bse: np.ndarray,
    eds_rc: np.ndarray,
    eds_feat: np.ndarray,
    lift: float = 1.0,
    eds_edges: str = "delaunay",
    k: int = 6,
    convention: str = "paper",
) -> StructuredGraph:
    """Build the compact graph of one field from its BSE image and EDS positions/features.

    ``eds_rc`` (n, 2) are integer pixel (row, col) positions inside the image, in the order that
    defines EDS node indices; ``eds_edges`` is "delaunay" (the paper) or "knn" (ablation, ``k``
    neighbours).  Duplicated positions, < 3 points and collinear sets are legal: see
    ``mingraph_kernels.delaunay`` for the rules (twins linked at distance 0, chain fallback).
    The nearest-EDS map is exact with the lowest-index tie-break (-1 everywhere if n == 0); it is
    computed on the Delaunay graph of the positions in both modes (``mingraph_kernels.nearest``).
    ``convention="authors"`` builds the released builder's graph instead (``graphs.conventions``:
    distinct positions, Delaunay only; ValueError otherwise).
    """
    get_convention(convention)
    if eds_edges not in EDS_EDGE_KINDS:
        raise ValueError(
            f"build_structured_graph: eds_edges must be one of {EDS_EDGE_KINDS}, got {eds_edges!r}"
        )
    bse = np.asarray(bse, dtype=np.float32)
    if bse.ndim != 2:
        raise ValueError(f"build_structured_graph: bse must be 2-D (H, W), got shape {bse.shape}")
    h, w = bse.shape
    rc = np.asarray(eds_rc)
    if rc.size and not np.issubdtype(rc.dtype, np.integer):
        if not np.array_equal(rc, np.round(rc)):
            raise ValueError("build_structured_graph: EDS positions must be integer pixel (row, col)")
    if rc.size == 0:
        rc = np.zeros((0, 2), np.int32)
    if rc.ndim != 2 or rc.shape[1] != 2:  # never reshape: a (2, n) array would scatter the points
        raise ValueError(f"build_structured_graph: EDS positions must be (n, 2) row, col; got {rc.shape}")
    rc = rc.astype(np.int32)
    n = rc.shape[0]
    if n and (rc.min() < 0 or rc[:, 0].max() >= h or rc[:, 1].max() >= w):
        raise ValueError(f"build_structured_graph: EDS positions outside the {h}x{w} image")
    feat = _feature_rows(eds_feat, n)
    if convention == "authors":
        if eds_edges != "delaunay":
            raise ValueError(
                "build_structured_graph: the authors convention links EDS nodes by Delaunay only"
            )
        edges, mult, nearest = authors_parts(h, w, rc, lift)
        return StructuredGraph(h, w, rc, edges, nearest, bse, feat, float(lift), None, None, convention, mult)
    if n == 0:
        nearest = np.full((h, w), -1, np.int32)
        edges = np.zeros((0, 2), np.int32)
    else:
        urc, first, inverse = unique_positions(rc)
        edges_u = delaunay_unique_edges(urc)
        nearest = nearest_map_from_delaunay(h, w, urc, edges_u, first)
        if eds_edges == "delaunay":
            edges = lift_edges(edges_u, first, inverse).astype(np.int32)
        else:
            edges = knn_edges(rc, k)
    return StructuredGraph(h, w, rc, edges, nearest, bse, feat, float(lift))


def _feature_rows(eds_feat: np.ndarray, n: int) -> np.ndarray:
    """EDS features as a float32 (n, D) array; (0, D) stays two-dimensional."""
    a = np.asarray(eds_feat, np.float32)
    return a.reshape(n, a.shape[-1] if a.ndim == 2 else (a.size // n if n else 0))


# --------------------------------------------------------------------------------------------
# Explicit forms.  Edge types, in the order the explicit edge list concatenates them:
#   grid (pixel -> pixel), delaunay (eds -> eds, both directions), pixel_to_eds, eds_to_pixel,
#   then optional self-loops (attribute 0) for every node in node order.
# --------------------------------------------------------------------------------------------

EDGE_TYPES = ("grid", "delaunay", "pixel_to_eds", "eds_to_pixel")


def _as_batch(g: StructuredGraph | StructuredBatch) -> StructuredBatch:
    if isinstance(g, StructuredBatch):
        return g
    return batch_graphs([g])


def _grid_batch(h: int, w: int, nb: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = grid_edge_count(h, w)
    src, dst = np.empty(nb * m, np.int64), np.empty(nb * m, np.int64)
    attr = np.empty(nb * m, np.float32)
    for i in range(nb):
        grid_edges_into(
            h, w, src[i * m : (i + 1) * m], dst[i * m : (i + 1) * m], attr[i * m : (i + 1) * m], i * h * w
        )
    if scale != 1.0:
        attr *= np.float32(scale)
    return src, dst, attr


def _eds_and_cross(b: StructuredBatch):
    """EDS-EDS (both directions) and pixel -> EDS cross edges of a batch, per-type numbering."""
    h, w = b.height, b.width
    hw = h * w
    rc = b.eds_rc.astype(np.int64).reshape(-1, 2)
    de = b.delaunay.astype(np.int64).reshape(-1, 2)
    conv = get_convention(b.convention)
    mult = conv.eds_scale if b.eds_mult is None else b.eds_mult.astype(np.float64)
    dd = (np.sqrt(((rc[de[:, 0]] - rc[de[:, 1]]) ** 2).sum(1)) * mult).astype(np.float32)
    near = b.nearest_eds.reshape(-1).astype(np.int64)
    pix = np.nonzero(near >= 0)[0]
    eds = near[pix]
    # EDS node k -> the pixel at its position; new only where that pixel's nearest is not k
    own = b.eds_graph.astype(np.int64) * hw + rc[:, 0] * w + rc[:, 1]
    extra = np.nonzero(near[own] != np.arange(rc.shape[0]))[0] if rc.shape[0] else np.zeros(0, np.int64)
    cp = np.concatenate([pix, own[extra]])
    ce = np.concatenate([eds, extra])
    local = cp % hw
    dr = local // w - rc[ce, 0]
    dc = local % w - rc[ce, 1]
    lift = float(b.lift)
    ca = np.sqrt(dr * dr + dc * dc + lift * lift)
    ca = np.where((dr == 0) & (dc == 0), lift * conv.own_scale, ca).astype(np.float32)
    delaunay = (
        np.concatenate([de[:, 0], de[:, 1]]),
        np.concatenate([de[:, 1], de[:, 0]]),
        np.concatenate([dd, dd]),
    )
    return delaunay, (cp, ce, ca)


def typed_edges(g: StructuredGraph | StructuredBatch) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Directed edges per type as (src, dst, attr) in per-type node numbering.

    Pixel nodes are numbered ``b*H*W + r*W + c`` and EDS nodes by their (global) EDS index.
    "delaunay" holds the stored EDS-EDS edges (Delaunay or kNN) in both directions; cross edges
    are the union of pixel -> nearest EDS and EDS -> the pixel at its position, without
    duplicates, with attribute sqrt(dr^2 + dc^2 + lift^2); "eds_to_pixel" is the reverse of
    "pixel_to_eds" edge for edge.
    """
    b = _as_batch(g)
    delaunay, (cp, ce, ca) = _eds_and_cross(b)
    return {
        "grid": _grid_batch(b.height, b.width, b.batch_size, get_convention(b.convention).grid_scale),
        "delaunay": delaunay,
        "pixel_to_eds": (cp, ce, ca),
        "eds_to_pixel": (ce, cp, ca),
    }


def edge_list(
    g: StructuredGraph | StructuredBatch, self_loops: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Explicit homogeneous directed edge list (src int64, dst int64, attr float32) of a graph or batch.

    Node numbering as in this module's docstring (pixels first, then EDS nodes).  Edges are
    grouped by type in ``EDGE_TYPES`` order, then self-loops (attribute 0) if requested.
    """
    b = _as_batch(g)
    h, w, nb = b.height, b.width, b.batch_size
    n_pix = nb * h * w
    (ds, dd, da), (cp, ce, ca) = _eds_and_cross(b)
    m_grid = grid_edge_count(h, w)
    n_loops = n_pix + b.n_eds if self_loops else 0
    total = nb * m_grid + ds.shape[0] + 2 * cp.shape[0] + n_loops
    src, dst = np.empty(total, np.int64), np.empty(total, np.int64)
    attr = np.empty(total, np.float32)
    for i in range(nb):  # grid edges written in place: they are most of the graph
        sl = slice(i * m_grid, (i + 1) * m_grid)
        grid_edges_into(h, w, src[sl], dst[sl], attr[sl], i * h * w)
    k = nb * m_grid
    attr[:k] *= np.float32(get_convention(b.convention).grid_scale)
    for s_, d_, a_ in ((ds + n_pix, dd + n_pix, da), (cp, ce + n_pix, ca), (ce + n_pix, cp, ca)):
        src[k : k + s_.shape[0]] = s_
        dst[k : k + s_.shape[0]] = d_
        attr[k : k + s_.shape[0]] = a_
        k += s_.shape[0]
    if self_loops:
        src[k:] = np.arange(n_loops)
        dst[k:] = src[k:]
        attr[k:] = 0.0
    return src, dst, attr


def assemble_node_features(bse, eds_feat):
    """(P + N, 1 + D) node features in our node order (docs/method.md, "Node features"): pixels
    ``[bse, 0...]``, EDS nodes ``[0, embedding]``.  ``bse`` any shape with P values, ``eds_feat`` (N, D); numpy arrays
    give a float32 array, torch tensors a tensor of their dtype and device."""
    flat = bse.reshape(-1)
    n_pix, (n_eds, d) = flat.shape[0], eds_feat.shape
    if isinstance(flat, np.ndarray):
        x = np.zeros((n_pix + n_eds, 1 + d), np.float32)
    else:
        x = flat.new_zeros((n_pix + n_eds, 1 + d))
    x[:n_pix, 0] = flat
    x[n_pix:, 1:] = eds_feat
    return x


def node_features(g: StructuredGraph | StructuredBatch) -> np.ndarray:
    """(n_nodes, 1 + D) float32 features of a graph or batch (:func:`assemble_node_features`)."""
    b = _as_batch(g)
    d = b.eds_feat.shape[1] if b.eds_feat.ndim == 2 else 0
    return assemble_node_features(b.bse, b.eds_feat.reshape(b.n_eds, d))


def size_groups(graphs) -> list[list[int]]:
    """Indices of ``graphs`` grouped by (height, width), groups in first-seen order: only graphs
    of one size batch together (:func:`batch_graphs`)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, g in enumerate(graphs):
        groups.setdefault((g.height, g.width), []).append(i)
    return list(groups.values())


def node_labels(g: StructuredGraph | StructuredBatch) -> np.ndarray | None:
    """(n_nodes,) int64 class of every node in our order (-1 = ignore), or None without pixel labels."""
    b = _as_batch(g)
    if b.labels is None:
        return None
    eds = b.eds_labels if b.eds_labels is not None else np.full(b.n_eds, -1, np.int64)
    return np.concatenate([b.labels.reshape(-1), eds]).astype(np.int64)


# DGL: node types "pixel" and "eds".  dgl.to_homogeneous orders node types alphabetically,
# so the homogeneous graph numbers EDS nodes first: DGL node i < n_eds is EDS node i, DGL node
# n_eds + p is pixel p.  ``dgl_to_ours`` gives our id of every DGL node (also stored as the
# node data "nid"); ``ours_to_dgl`` the inverse.  Edge types (canonical):
DGL_ETYPES = (
    ("pixel", "grid", "pixel"),
    ("eds", "delaunay", "eds"),
    ("pixel", "pixel_to_eds", "eds"),
    ("eds", "eds_to_pixel", "pixel"),
)
DGL_SELF_ETYPES = (("pixel", "self_pixel", "pixel"), ("eds", "self_eds", "eds"))


def dgl_to_ours(g: StructuredGraph | StructuredBatch) -> np.ndarray:
    """Our node id (int64) of each node of the homogeneous DGL graph made by ``to_dgl``."""
    b = _as_batch(g)
    n_pix = b.batch_size * b.height * b.width
    return np.concatenate([n_pix + np.arange(b.n_eds, dtype=np.int64), np.arange(n_pix, dtype=np.int64)])


def ours_to_dgl(g: StructuredGraph | StructuredBatch) -> np.ndarray:
    """DGL homogeneous node id (int64) of each of our nodes (inverse of ``dgl_to_ours``)."""
    b = _as_batch(g)
    n_pix = b.batch_size * b.height * b.width
    return np.concatenate([b.n_eds + np.arange(n_pix, dtype=np.int64), np.arange(b.n_eds, dtype=np.int64)])


def to_dgl_heterograph(g: StructuredGraph | StructuredBatch, self_loops: bool = False):
    """DGL heterograph (node types pixel / eds; edge types ``DGL_ETYPES``) with ndata "feat" (1 + D),
    "nid" (our node id), "label" (if labelled) per node type and edata "dist" (E, 1) float32."""
    import torch

    from mingraph_kernels.dgl_compat import dgl

    b = _as_batch(g)
    n_pix = b.batch_size * b.height * b.width
    te = typed_edges(b)
    data = {et: (torch.from_numpy(te[et[1]][0]), torch.from_numpy(te[et[1]][1])) for et in DGL_ETYPES}
    dist = {et: te[et[1]][2] for et in DGL_ETYPES}
    if self_loops:
        for et, n in zip(DGL_SELF_ETYPES, (n_pix, b.n_eds)):
            loops = torch.arange(n, dtype=torch.int64)
            data[et] = (loops, loops)
            dist[et] = np.zeros(n, np.float32)
    hg = dgl.heterograph(data, num_nodes_dict={"pixel": n_pix, "eds": b.n_eds}, idtype=torch.int64)
    x = torch.from_numpy(node_features(b))
    hg.nodes["pixel"].data["feat"] = x[:n_pix]
    hg.nodes["eds"].data["feat"] = x[n_pix:]
    hg.nodes["pixel"].data["nid"] = torch.arange(n_pix, dtype=torch.int64)
    hg.nodes["eds"].data["nid"] = torch.arange(n_pix, n_pix + b.n_eds, dtype=torch.int64)
    y = node_labels(b)
    if y is not None:
        y = torch.from_numpy(y)
        hg.nodes["pixel"].data["label"] = y[:n_pix]
        hg.nodes["eds"].data["label"] = y[n_pix:]
    for et, a in dist.items():
        hg.edges[et].data["dist"] = torch.from_numpy(a).reshape(-1, 1)
    return hg


def to_dgl(g: StructuredGraph | StructuredBatch, self_loops: bool = False):
    """Homogeneous DGL graph: ``to_dgl_heterograph`` collapsed with ``dgl.to_homogeneous``.

    Node order: EDS nodes first, then pixels (see ``dgl_to_ours``; ndata "nid" holds our id,
    "_TYPE"/"_ID" DGL's type and per-type id).  ndata "feat" (1 + D) float32, "label" if the
    graph is labelled; edata "dist" (E, 1) float32 and "_TYPE" (edge type).  Self-loops
    (attribute 0) are optional because GAT layers usually add their own.
    """
    from mingraph_kernels.dgl_compat import dgl

    hg = to_dgl_heterograph(g, self_loops=self_loops)
    ndata = ["feat", "nid"] + (["label"] if "label" in hg.nodes["pixel"].data else [])
    return dgl.to_homogeneous(hg, ndata=ndata, edata=["dist"])
