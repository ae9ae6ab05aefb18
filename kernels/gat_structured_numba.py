"""Fused Numba kernels (CPU) of the structured GAT attention: forward and backward.

The formula and the graph are in :mod:`.gat_structured`; these kernels are tested against its
plain-torch reference (``structured_attention_torch``).  ``prange`` runs over image rows and the
channel loops vectorise.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from .structured_topology import StructuredTopology

# fmt: off
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


def numba_forward(z: Tensor, a_src: Tensor, a_dst: Tensor, c: Tensor, topo: StructuredTopology, mean: bool, slope: float) -> tuple[Tensor, Tensor]:
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


def numba_backward(grad: Tensor, z: Tensor, a_src: Tensor, a_dst: Tensor, c: Tensor, lse: Tensor, topo: StructuredTopology, mean: bool, slope: float):
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
# fmt: on
