"""Topology of the structured graph (pixel grid + EDS nodes) used by the structured GAT kernels.

A pixel's sources are itself (d=0), its 8 (fewer at the border) grid neighbours (d=1 or √2, a
3×3 stencil), its nearest EDS node and any other EDS node standing on it (d = sqrt(dr²+dc²+lift²));
an EDS node's sources are itself, its Delaunay neighbours (2-D distance) and its pixels (those
whose nearest EDS node it is, and the pixel it stands on), kept as a small CSR list.  Nothing
per edge is stored for the pixels: the grid is implicit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .gat_sparse import CsrEdges, build_csr

SQRT2 = math.sqrt(2.0)


@dataclass
class StructuredTopology:
    """The structured graph of a batch as tensors on one device (node numbering as the
    explicit form: all pixels ``b*H*W + r*W + c`` first, then EDS nodes ``P + k``)."""

    batch: int
    height: int
    width: int
    n_eds: int
    lift: float
    nearest: Tensor  # (P,) int64 global EDS index of each pixel's nearest EDS node, -1 if none
    near_dist: Tensor  # (P,) float64 3-D distance to it (0 where none)
    extra_ptr: Tensor  # (P+1,) int64 CSR over pixels: EDS nodes on the pixel that are not its nearest
    extra_eds: Tensor  # (X,) int64
    eds_csr: CsrEdges  # sources of each EDS node (self, Delaunay, its pixels), src numbered globally
    max_extra: int = 0
    grid_scale: float = 1.0  # grid attributes are grid_scale·(1, √2); stored distances are /grid_scale
    own_scale: float = 1.0  # EDS node ↔ the pixel under it: own_scale·lift
    _cast: dict = field(default_factory=dict, repr=False)

    @property
    def n_pixels(self) -> int:
        return self.batch * self.height * self.width

    @property
    def n_nodes(self) -> int:
        return self.n_pixels + self.n_eds

    @property
    def device(self) -> torch.device:
        return self.nearest.device

    def to(self, device: torch.device | str) -> StructuredTopology:
        return StructuredTopology(
            self.batch,
            self.height,
            self.width,
            self.n_eds,
            self.lift,
            self.nearest.to(device),
            self.near_dist.to(device),
            self.extra_ptr.to(device),
            self.extra_eds.to(device),
            self.eds_csr.to(device),
            self.max_extra,
            self.grid_scale,
            self.own_scale,
        )

    def dists(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """(near_dist, extra_dist, eds_csr.dist) cast to ``dtype``, cached."""
        if dtype not in self._cast:
            nx = int(self.extra_eds.shape[0])
            self._cast[dtype] = (
                self.near_dist.to(dtype).contiguous(),
                torch.full(
                    (nx,), self.lift * self.own_scale / self.grid_scale, dtype=dtype, device=self.device
                ),
                self.eds_csr.dist.to(dtype).contiguous(),
            )
        return self._cast[dtype]


def build_structured_topology(
    batch: int,
    height: int,
    width: int,
    nearest: np.ndarray | Tensor,
    eds_rc: np.ndarray | Tensor,
    eds_graph: np.ndarray | Tensor,
    delaunay: np.ndarray | Tensor,
    lift: float = 1.0,
    device: torch.device | str = "cpu",
    grid_scale: float = 1.0,
    own_scale: float = 1.0,
    eds_mult: float | np.ndarray | Tensor = 1.0,
) -> StructuredTopology:
    """Derive the kernels' index arrays from a batch's compact form (docs/method.md, "Graph semantics").

    ``nearest`` (B, H, W) holds global EDS indices (-1 without EDS nodes), ``eds_rc`` (N, 2)
    pixel positions, ``eds_graph`` (N,) graph of each EDS node, ``delaunay`` (M, 2) global
    undirected EDS pairs.  Cross edges: pixel p ↔ EDS k when k is p's nearest or stands on p.

    Edge attributes (graph conventions): grid ``grid_scale``·(1, √2); EDS pair ``eds_mult``·d
    (a scalar or one factor per pair); pixel ↔ EDS sqrt(dr² + dc² + lift²), or
    ``own_scale``·lift between an EDS node and the pixel under it.  The kernels' stencil has unit
    spacing, so every stored distance is divided by ``grid_scale`` and the attention multiplies
    its edge constant by ``grid_scale`` (``structured_attention``): the score term d·c is unchanged.
    """
    t = lambda a, dt: torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a).to(dt)  # noqa: E731
    nearest = t(nearest, torch.int64).reshape(-1)
    eds_rc = t(eds_rc, torch.int64).reshape(-1, 2)
    eds_graph = t(eds_graph, torch.int64).reshape(-1)
    delaunay = t(delaunay, torch.int64).reshape(-1, 2)
    n_pix = batch * height * width
    n = int(eds_rc.shape[0])
    if nearest.shape[0] != n_pix:
        raise ValueError(f"nearest map has {nearest.shape[0]} entries, expected {n_pix}")
    lift = float(lift)
    pix = torch.arange(n_pix)
    has = nearest >= 0
    near_dist = torch.zeros(n_pix, dtype=torch.float64)
    if n:
        k = nearest.clamp(min=0)
        rr = (pix // width) % height
        cc = pix % width
        dr = (rr - eds_rc[k, 0]).double()
        dc = (cc - eds_rc[k, 1]).double()
        d3 = torch.sqrt(dr * dr + dc * dc + lift * lift)
        d3 = torch.where((dr == 0) & (dc == 0), torch.full_like(d3, lift * own_scale), d3)
        near_dist = torch.where(has, d3 / grid_scale, near_dist)
    eds_pix = eds_graph * (height * width) + eds_rc[:, 0] * width + eds_rc[:, 1]
    k_all = torch.arange(n)
    extra = nearest[eds_pix] != k_all if n else torch.zeros(0, dtype=torch.bool)
    xk, xp = k_all[extra], eds_pix[extra]
    order = torch.argsort(xp, stable=True)
    xk, xp = xk[order], xp[order]
    extra_ptr = torch.zeros(n_pix + 1, dtype=torch.int64)
    counts = torch.bincount(xp, minlength=n_pix)
    extra_ptr[1:] = torch.cumsum(counts, 0)
    # sources of each EDS node: self, Delaunay neighbours, member pixels, its own pixel
    di, dj = delaunay[:, 0], delaunay[:, 1]
    mult = torch.as_tensor(np.asarray(eds_mult) if not isinstance(eds_mult, Tensor) else eds_mult).double()
    dd = (
        torch.sqrt(((eds_rc[di] - eds_rc[dj]).double() ** 2).sum(1)) * mult / grid_scale
        if delaunay.shape[0]
        else torch.zeros(0, dtype=torch.float64)
    )
    dst = torch.cat([k_all, di, dj, nearest[has], xk])
    src = torch.cat([n_pix + k_all, n_pix + dj, n_pix + di, pix[has], xp])
    dist = torch.cat(
        [
            torch.zeros(n, dtype=torch.float64),
            dd,
            dd,
            near_dist[has],
            torch.full((xk.shape[0],), lift * own_scale / grid_scale, dtype=torch.float64),
        ]
    )
    csr = build_csr(src, dst, dist, num_nodes=n_pix + n, num_dst=n)
    topo = StructuredTopology(
        batch,
        height,
        width,
        n,
        lift,
        nearest,
        near_dist,
        extra_ptr,
        xk,
        csr,
        int(counts.max()) if n_pix else 0,
        float(grid_scale),
        float(own_scale),
    )
    return topo if torch.device(device).type == "cpu" else topo.to(device)
