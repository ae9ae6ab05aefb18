"""GAT layer on the structured graph (pixel grid + EDS nodes): the ``structured`` backend.

Same layer as :mod:`.gat_params` (PyG's ``GATConv``), per destination node i and head h:

.. math::
    e^h_{ij} = \\mathrm{LeakyReLU}(s^h_j + t^h_i + d_{ij} c_h),\\quad
    \\alpha^h_{ij} = \\exp(e^h_{ij} - \\mathrm{lse}^h_i),\\quad
    \\mathbf{x}'^h_i = \\textstyle\\sum_{j \\in \\mathcal{N}(i)\\cup\\{i\\}} \\alpha^h_{ij}\\mathbf{z}^h_j

but the edge list is never built.  A pixel's sources are itself (d=0), its 8 (fewer at the
border) grid neighbours (d=1 or √2, a 3×3 stencil), its nearest EDS node and any other EDS node
standing on it (d = sqrt(dr²+dc²+lift²)); an EDS node's sources are itself, its Delaunay
neighbours (2-D distance) and its pixels (those whose nearest EDS node it is, and the pixel it
stands on), kept as a small CSR list.  The graph is symmetric, so the backward gathers too:
it recomputes the attention from the per-node log-sum-exp saved by the forward (as fused
attention kernels do) instead of storing any per-edge tensor; memory is O(nodes × features).

Three implementations of :func:`structured_attention`: fused Numba kernels (CPU, ``prange``
over image rows, vectorised over channels), fused Triton kernels (CUDA, :mod:`.gat_triton`)
and plain torch ops (any device; the readable reference the fused kernels are tested against).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange
from torch import Tensor

from .gat_params import GATConvParams
from .gat_sparse import CsrEdges, build_csr, csr_attention

SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------------------------
# Topology
# --------------------------------------------------------------------------------------------
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

    def to(self, device: torch.device | str) -> "StructuredTopology":
        return StructuredTopology(
            self.batch, self.height, self.width, self.n_eds, self.lift, self.nearest.to(device), self.near_dist.to(device),
            self.extra_ptr.to(device), self.extra_eds.to(device), self.eds_csr.to(device), self.max_extra,
        )

    def dists(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """(near_dist, extra_dist, eds_csr.dist) cast to ``dtype``, cached."""
        if dtype not in self._cast:
            nx = int(self.extra_eds.shape[0])
            self._cast[dtype] = (
                self.near_dist.to(dtype).contiguous(),
                torch.full((nx,), self.lift, dtype=dtype, device=self.device),
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
) -> StructuredTopology:
    """Derive the kernels' index arrays from a batch's compact form (DESIGN.md semantics).

    ``nearest`` (B, H, W) holds global EDS indices (-1 without EDS nodes), ``eds_rc`` (N, 2)
    pixel positions, ``eds_graph`` (N,) graph of each EDS node, ``delaunay`` (M, 2) global
    undirected EDS pairs.  Cross edges: pixel p ↔ EDS k when k is p's nearest or stands on p.
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
        near_dist = torch.where(has, torch.sqrt(dr * dr + dc * dc + lift * lift), near_dist)
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
    dd = torch.sqrt(((eds_rc[di] - eds_rc[dj]).double() ** 2).sum(1)) if delaunay.shape[0] else torch.zeros(0, dtype=torch.float64)
    dst = torch.cat([k_all, di, dj, nearest[has], xk])
    src = torch.cat([n_pix + k_all, n_pix + dj, n_pix + di, pix[has], xp])
    dist = torch.cat([torch.zeros(n, dtype=torch.float64), dd, dd, near_dist[has], torch.full((xk.shape[0],), lift, dtype=torch.float64)])
    csr = build_csr(src, dst, dist, num_nodes=n_pix + n, num_dst=n)
    topo = StructuredTopology(batch, height, width, n, lift, nearest, near_dist, extra_ptr, xk, csr, int(counts.max()) if n_pix else 0)
    return topo if torch.device(device).type == "cpu" else topo.to(device)


# --------------------------------------------------------------------------------------------
# Reference: plain torch ops (any device)
# --------------------------------------------------------------------------------------------
_OFFSETS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]


def structured_attention_torch(z: Tensor, a_src: Tensor, a_dst: Tensor, c: Tensor, topo: StructuredTopology, mean: bool, negative_slope: float = 0.2) -> Tensor:
    """Eager-torch structured attention: nine shifted views for the stencil, gathers and
    index_add for the cross edges, CSR segment softmax for the EDS nodes.  Returns
    (nodes, H*C) (concat) or (nodes, C) (mean), without bias; autograd through torch."""
    nb, hh, ww, n_pix = topo.batch, topo.height, topo.width, topo.n_pixels
    nh, ch = z.shape[1], z.shape[2]
    near_d, x_d, _ = topo.dists(z.dtype)
    lrelu = lambda e: F.leaky_relu(e, negative_slope)  # noqa: E731
    asrc = a_src[:n_pix].view(nb, hh, ww, nh)
    adst = a_dst[:n_pix].view(nb, hh, ww, nh)
    pad_s = F.pad(asrc, (0, 0, 1, 1, 1, 1))
    pad_z = F.pad(z[:n_pix].view(nb, hh, ww, nh, ch), (0, 0, 0, 0, 1, 1, 1, 1))
    valid = F.pad(torch.ones(nb, hh, ww, device=z.device), (1, 1, 1, 1)) > 0
    logits, views = [], []
    for dr, dc in _OFFSETS:
        sl = (slice(None), slice(1 + dr, 1 + dr + hh), slice(1 + dc, 1 + dc + ww))
        d = 0.0 if dr == dc == 0 else (1.0 if dr == 0 or dc == 0 else SQRT2)
        e = lrelu(pad_s[sl] + adst + d * c).masked_fill(~valid[sl][..., None], float("-inf"))
        logits.append(e.reshape(n_pix, nh))
        views.append(pad_z[sl].reshape(n_pix, nh, ch))
    n = topo.n_eds
    if n:
        k = topo.nearest.clamp(min=0)
        has = topo.nearest >= 0
        e = lrelu(a_src[n_pix + k] + a_dst[:n_pix] + near_d[:, None] * c).masked_fill(~has[:, None], float("-inf"))
        logits.append(e)
        views.append(z[n_pix + k])
        xp = torch.repeat_interleave(torch.arange(n_pix, device=z.device), topo.extra_ptr.diff())
        xk = topo.extra_eds
        ex = lrelu(a_src[n_pix + xk] + a_dst[xp] + x_d[:, None] * c)
    big = torch.stack(logits, 1)  # (P, 10, H)
    m = big.detach().amax(1)
    if n:
        m = m.scatter_reduce(0, xp[:, None].expand(-1, nh), ex.detach(), "amax")
    w = torch.exp(big - m[:, None])
    s = w.sum(1)
    if n:
        wx = torch.exp(ex - m[xp])
        s = s.index_add(0, xp, wx)
    alpha = w / s[:, None]
    agg = sum(alpha[:, t, :, None] * views[t] for t in range(len(views)))
    if n:
        agg = agg.index_add(0, xp, (wx / s[xp])[..., None] * z[n_pix + xk])
        agg = torch.cat([agg, csr_attention(z, a_src, a_dst[n_pix:], c, topo.eds_csr, negative_slope)])
    return agg.mean(1) if mean else agg.reshape(-1, nh * ch)


# --------------------------------------------------------------------------------------------
# Fused Numba kernels (CPU)
#
# Scalars are passed typed like the data (``slope``, ``one``, ``scale`` = 1/H for averaged heads
# else 1) so that float32 inputs stay float32 in the vectorised channel loops.
# --------------------------------------------------------------------------------------------
_JIT = dict(parallel=True, fastmath=True, cache=True, nogil=True)


@njit(inline="always")
def _pixel_sources(i, r, col, hh, ww, n_pix, nearest, near_d, xptr, xeds, x_d, nbr, nd):
    """Fill nbr/nd with the sources (= destinations: the graph is symmetric) of pixel i.

    Order: self, the grid neighbours, then EDS nodes; returns (count, count of pixel entries).
    """
    nbr[0] = i
    nd[0] = 0.0
    n = 1
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr == 0 and dc == 0:
                continue
            rr = r + dr
            cc = col + dc
            if rr >= 0 and rr < hh and cc >= 0 and cc < ww:
                nbr[n] = i + dr * ww + dc
                nd[n] = 1.0 if (dr == 0 or dc == 0) else 1.4142135623730951
                n += 1
    n_grid = n
    k = nearest[i]
    if k >= 0:
        nbr[n] = n_pix + k
        nd[n] = near_d[i]
        n += 1
    for t in range(xptr[i], xptr[i + 1]):
        nbr[n] = n_pix + xeds[t]
        nd[n] = x_d[t]
        n += 1
    return n, n_grid


@njit(inline="always")
def _forward_node(i, n, nbr, nd, z, a_src, a_dst, c, slope, scale, mean, out, lse, w, m, s):
    """Softmax over the n listed sources of node i and the weighted sum into out[i]."""
    nh = z.shape[1]
    ch = z.shape[2]
    for h in range(nh):
        m[h] = -np.inf
        s[h] = 0.0
    for t in range(n):
        j = nbr[t]
        for h in range(nh):
            e = a_src[j, h] + a_dst[i, h] + nd[t] * c[h]
            if e < 0:
                e = e * slope
            w[t, h] = e
            if e > m[h]:
                m[h] = e
    for t in range(n):
        for h in range(nh):
            v = np.exp(w[t, h] - m[h])
            w[t, h] = v
            s[h] += v
    for h in range(nh):
        lse[i, h] = m[h] + np.log(s[h])
        s[h] = scale / s[h]
    out[i, :] = 0.0
    for t in range(n):
        j = nbr[t]
        for h in range(nh):
            a = w[t, h] * s[h]
            base = 0 if mean else h * ch
            for q in range(ch):
                out[i, base + q] += a * z[j, h, q]


@njit(**_JIT)
def _pixels_forward(z, a_src, a_dst, c, slope, scale, mean, nb, hh, ww, nearest, near_d, xptr, xeds, x_d, max_extra, out, lse):
    n_pix = nb * hh * ww
    nh = z.shape[1]
    for row in prange(nb * hh):
        r = row % hh
        cap = 10 + max_extra
        nbr = np.empty(cap, np.int64)
        nd = np.empty(cap, z.dtype)
        w = np.empty((cap, nh), z.dtype)
        m = np.empty(nh, z.dtype)
        s = np.empty(nh, z.dtype)
        for col in range(ww):
            i = row * ww + col
            n, _ = _pixel_sources(i, r, col, hh, ww, n_pix, nearest, near_d, xptr, xeds, x_d, nbr, nd)
            _forward_node(i, n, nbr, nd, z, a_src, a_dst, c, slope, scale, mean, out, lse, w, m, s)


@njit(**_JIT)
def _csr_forward(z, a_src, a_dst, c, slope, scale, mean, offset, ptr, src, dist, out, lse):
    """Destinations offset+k with sources src[ptr[k]:ptr[k+1]] (lists of any length)."""
    nh = z.shape[1]
    for k in prange(ptr.shape[0] - 1):
        n = ptr[k + 1] - ptr[k]
        w = np.empty((n, nh), z.dtype)
        m = np.empty(nh, z.dtype)
        s = np.empty(nh, z.dtype)
        _forward_node(offset + k, n, src[ptr[k] : ptr[k + 1]], dist[ptr[k] : ptr[k + 1]], z, a_src, a_dst, c, slope, scale, mean, out, lse, w, m, s)


@njit(inline="always")
def _score(j, i, h, d, a_src, a_dst, c, slope, one, lse):
    """(alpha_ij, LeakyReLU slope at the score) for edge j -> i, head h, from i's log-sum-exp."""
    e = a_src[j, h] + a_dst[i, h] + d * c[h]
    sl = one
    if e < 0:
        sl = slope
    return np.exp(e * sl - lse[i, h]), sl


@njit(inline="always")
def _dot(g, i, base, z, j, h, ch):
    acc = g[i, base] * z[j, h, 0]
    for q in range(1, ch):
        acc += g[i, base + q] * z[j, h, q]
    return acc


@njit(inline="always")
def _backward_dst(i, n, n_scatter, nbr, nd, z, a_src, a_dst, c, slope, one, scale, mean, g, lse, dD, d_adst, dcd, dz, d_asrc, dots):
    """Backward for destination i: D_i = Σ_j α_ij (g_i·z_j), d a_dst[i] and i's share of dc;
    for its first ``n_scatter`` sources also scatter d a_src[j] and dz_j (caller avoids races)."""
    nh = z.shape[1]
    ch = z.shape[2]
    for h in range(nh):
        base = 0 if mean else h * ch
        dsum = 0.0
        for t in range(n):
            j = nbr[t]
            al, sl = _score(j, i, h, nd[t], a_src, a_dst, c, slope, one, lse)
            dt = _dot(g, i, base, z, j, h, ch) * scale
            dots[t] = dt
            dsum += al * dt
        da = 0.0
        dcc = 0.0
        for t in range(n):
            j = nbr[t]
            al, sl = _score(j, i, h, nd[t], a_src, a_dst, c, slope, one, lse)
            dp = sl * al * (dots[t] - dsum)
            da += dp
            dcc += dp * nd[t]
            if t < n_scatter:
                d_asrc[j, h] += dp
                a = al * scale
                for q in range(ch):
                    dz[j, h, q] += a * g[i, base + q]
        dD[i, h] = dsum
        d_adst[i, h] = da
        dcd[i, h] = dcc


@njit(inline="always")
def _backward_src(j, t0, n, nbr, nd, z, a_src, a_dst, c, slope, one, scale, mean, g, lse, dD, dz, d_asrc):
    """Gather for source j over destinations nbr[t0:n] (their D known): d a_src[j] and dz_j."""
    nh = z.shape[1]
    ch = z.shape[2]
    for h in range(nh):
        base = 0 if mean else h * ch
        da = 0.0
        for t in range(t0, n):
            i = nbr[t]
            al, sl = _score(j, i, h, nd[t], a_src, a_dst, c, slope, one, lse)
            dt = _dot(g, i, base, z, j, h, ch) * scale
            da += sl * al * (dt - dD[i, h])
            a = al * scale
            for q in range(ch):
                dz[j, h, q] += a * g[i, base + q]
        d_asrc[j, h] += da


@njit(**_JIT)
def _csr_backward_dst(z, a_src, a_dst, c, slope, one, scale, mean, offset, ptr, src, dist, g, lse, dD, d_adst, dcd, dz, d_asrc):
    """Phase 1: EDS destinations (no scatter: their sources are served by gathers)."""
    for k in prange(ptr.shape[0] - 1):
        n = ptr[k + 1] - ptr[k]
        dots = np.empty(n, z.dtype)
        _backward_dst(offset + k, n, 0, src[ptr[k] : ptr[k + 1]], dist[ptr[k] : ptr[k + 1]], z, a_src, a_dst, c, slope, one, scale, mean, g, lse, dD, d_adst, dcd, dz, d_asrc, dots)


@njit(**_JIT)
def _pixels_backward(z, a_src, a_dst, c, slope, one, scale, mean, nb, hh, ww, nearest, near_d, xptr, xeds, x_d, max_extra, g, lse, dD, d_adst, dcd, dz, d_asrc):
    """Phase 2: pixel destinations, scattering into their pixel sources.  Rows go in three
    colour classes (r mod 3) so that rows running in parallel never touch the same row; each
    pixel also gathers, as a source, from its EDS destinations (phase 1 gave their D)."""
    n_pix = nb * hh * ww
    for colour in range(3):
        per_image = (hh - colour + 2) // 3
        for q in prange(nb * per_image):
            b = q // per_image
            r = colour + 3 * (q % per_image)
            row = b * hh + r
            cap = 10 + max_extra
            nbr = np.empty(cap, np.int64)
            nd = np.empty(cap, z.dtype)
            dots = np.empty(cap, z.dtype)
            for col in range(ww):
                i = row * ww + col
                n, n_grid = _pixel_sources(i, r, col, hh, ww, n_pix, nearest, near_d, xptr, xeds, x_d, nbr, nd)
                _backward_dst(i, n, n_grid, nbr, nd, z, a_src, a_dst, c, slope, one, scale, mean, g, lse, dD, d_adst, dcd, dz, d_asrc, dots)
                _backward_src(i, n_grid, n, nbr, nd, z, a_src, a_dst, c, slope, one, scale, mean, g, lse, dD, dz, d_asrc)


@njit(**_JIT)
def _csr_backward_src(z, a_src, a_dst, c, slope, one, scale, mean, offset, ptr, src, dist, g, lse, dD, dz, d_asrc):
    """Phase 3: EDS sources gather over their destinations (= their CSR sources)."""
    for k in prange(ptr.shape[0] - 1):
        _backward_src(offset + k, 0, ptr[k + 1] - ptr[k], src[ptr[k] : ptr[k + 1]], dist[ptr[k] : ptr[k + 1]], z, a_src, a_dst, c, slope, one, scale, mean, g, lse, dD, dz, d_asrc)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _scalars(dtype: np.dtype, slope: float, mean: bool, heads: int):
    ty = np.dtype(dtype).type
    return ty(slope), ty(1.0), ty(1.0 / heads if mean else 1.0)


def _numba_forward(z: Tensor, a_src: Tensor, a_dst: Tensor, c: Tensor, topo: StructuredTopology, mean: bool, slope: float) -> tuple[Tensor, Tensor]:
    nh, ch = z.shape[1], z.shape[2]
    n_nodes = z.shape[0]
    out = torch.empty((n_nodes, ch if mean else nh * ch), dtype=z.dtype)
    lse = torch.empty((n_nodes, nh), dtype=z.dtype)
    near_d, x_d, e_d = topo.dists(z.dtype)
    zz, s_, d_, cc = _np(z), _np(a_src), _np(a_dst), _np(c)
    sl, _, scale = _scalars(zz.dtype, slope, mean, nh)
    o, l_ = out.numpy(), lse.numpy()
    if topo.n_pixels:
        _pixels_forward(zz, s_, d_, cc, sl, scale, mean, topo.batch, topo.height, topo.width, _np(topo.nearest), _np(near_d), _np(topo.extra_ptr), _np(topo.extra_eds), _np(x_d), topo.max_extra, o, l_)
    if topo.n_eds:
        csr = topo.eds_csr
        _csr_forward(zz, s_, d_, cc, sl, scale, mean, topo.n_pixels, _np(csr.ptr), _np(csr.src), _np(e_d), o, l_)
    return out, lse


def _numba_backward(grad: Tensor, z: Tensor, a_src: Tensor, a_dst: Tensor, c: Tensor, lse: Tensor, topo: StructuredTopology, mean: bool, slope: float):
    nh = z.shape[1]
    n_nodes = z.shape[0]
    dz = torch.zeros_like(z)
    d_asrc = torch.zeros((n_nodes, nh), dtype=z.dtype)
    d_adst = torch.empty((n_nodes, nh), dtype=z.dtype)
    dD = torch.empty((n_nodes, nh), dtype=z.dtype)
    dcd = torch.empty((n_nodes, nh), dtype=z.dtype)
    near_d, x_d, e_d = topo.dists(z.dtype)
    zz, s_, d_, cc, g, l_ = _np(z), _np(a_src), _np(a_dst), _np(c), _np(grad), _np(lse)
    common = (zz, s_, d_, cc, *_scalars(zz.dtype, slope, mean, nh), mean)
    outs = (g, l_, dD.numpy(), d_adst.numpy(), dcd.numpy(), dz.numpy(), d_asrc.numpy())
    csr = topo.eds_csr
    csr_args = (topo.n_pixels, _np(csr.ptr), _np(csr.src), _np(e_d))
    if topo.n_eds:
        _csr_backward_dst(*common, *csr_args, *outs)
    if topo.n_pixels:
        pix_args = (topo.batch, topo.height, topo.width, _np(topo.nearest), _np(near_d), _np(topo.extra_ptr), _np(topo.extra_eds), _np(x_d), topo.max_extra)
        _pixels_backward(*common, *pix_args, *outs)
    if topo.n_eds:
        _csr_backward_src(*common, *csr_args, g, l_, dD.numpy(), dz.numpy(), d_asrc.numpy())
    return dz, d_asrc, d_adst, dcd.sum(0)


class _FusedStructuredAttention(torch.autograd.Function):
    """Fused forward/backward; saves only the inputs and the (nodes, H) log-sum-exp."""

    @staticmethod
    def forward(ctx, z, a_src, a_dst, c, topo, mean, slope, impl):
        z, a_src, a_dst, c = (t.contiguous() for t in (z, a_src, a_dst, c))
        if impl == "numba":
            out, lse = _numba_forward(z, a_src, a_dst, c, topo, mean, slope)
        else:
            from . import gat_triton

            out, lse = gat_triton.forward(z, a_src, a_dst, c, topo, mean, slope)
        ctx.save_for_backward(z, a_src, a_dst, c, lse)
        ctx.topo, ctx.mean, ctx.slope, ctx.impl = topo, mean, slope, impl
        return out

    @staticmethod
    def backward(ctx, grad):
        z, a_src, a_dst, c, lse = ctx.saved_tensors
        grad = grad.contiguous()
        if ctx.impl == "numba":
            dz, d_asrc, d_adst, dc = _numba_backward(grad, z, a_src, a_dst, c, lse, ctx.topo, ctx.mean, ctx.slope)
        else:
            from . import gat_triton

            dz, d_asrc, d_adst, dc = gat_triton.backward(grad, z, a_src, a_dst, c, lse, ctx.topo, ctx.mean, ctx.slope)
        return dz, d_asrc, d_adst, dc, None, None, None, None


def default_impl(device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """numba on CPU; triton on CUDA when Triton is installed (it accumulates in float32, so
    float64 goes to the torch reference), else the torch reference."""
    if device.type == "cpu":
        return "numba"
    if device.type == "cuda" and dtype != torch.float64:
        from . import gat_triton

        return "triton" if gat_triton.available(device) else "torch"
    return "torch"


def structured_attention(
    z: Tensor, a_src: Tensor, a_dst: Tensor, c: Tensor, topo: StructuredTopology, mean: bool, negative_slope: float = 0.2, impl: str | None = None
) -> Tensor:
    """Per-node attention-weighted sums on the structured graph; (nodes, H*C) or (nodes, C).

    ``z`` (nodes, H, C), ``a_src``/``a_dst`` (nodes, H), ``c`` (H,) edge constants; no bias.
    ``impl``: "numba" (CPU), "triton" (CUDA), "torch" (any device) or None for the default.
    """
    impl = impl or default_impl(z.device, z.dtype)
    if impl == "torch":
        return structured_attention_torch(z, a_src, a_dst, c, topo, mean, negative_slope)
    if impl not in ("numba", "triton"):
        raise ValueError(f"unknown structured implementation {impl!r}")
    return _FusedStructuredAttention.apply(z, a_src, a_dst, c, topo, bool(mean), float(negative_slope), impl)


def gat_conv_structured(params: GATConvParams, x: Tensor | None, topo: StructuredTopology, impl: str | None = None, projected: tuple[Tensor, Tensor, Tensor] | None = None) -> Tensor:
    """One GAT layer on the structured graph; x is (P + N, F) in the explicit node order.

    ``projected`` (optional) replaces ``params.project(x)``: (z, a_src, a_dst) computed by the
    caller, e.g. from only the non-zero input columns (:meth:`GATConvParams.project`).
    """
    z, a_src, a_dst = params.project(x) if projected is None else projected
    out = structured_attention(z, a_src, a_dst, params.edge_constant(), topo, not params.concat, params.negative_slope, impl)
    return out.add_(params.bias)  # in place: the output is fresh and not saved for backward


__all__ = [
    "StructuredTopology",
    "build_structured_topology",
    "structured_attention",
    "structured_attention_torch",
    "gat_conv_structured",
]
