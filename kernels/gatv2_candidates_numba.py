"""Fused Numba kernels (CPU) of the GATv2 candidate attention, projections included.

Same math as the plain-torch reference :func:`.gatv2_candidates.gatv2_candidates_torch` (tested
equal to it and to PyG's ``GATv2Conv``), per pixel i, candidate slot j (source n = idx[i, j],
−1 = missing), head h, from the pixel features x_i, the edge features e_ij and the source
projections s_n = W_s x_n + b_s:

.. math::
    \\mathbf{z}_{ij} = W_t \\mathbf{x}_i + \\mathbf{b}_t + \\mathbf{s}_{n} + W_e \\mathbf{e}_{ij},\\quad
    e^h_{ij} = \\mathbf{a}_h^\\top \\mathrm{LeakyReLU}(\\mathbf{z}_{ij})_h,\\quad
    \\alpha^h_{ij} = \\operatorname{softmax}_j e^h_{ij},\\quad
    \\mathbf{o}^h_i = \\textstyle\\sum_j \\alpha^h_{ij}\\,\\mathbf{v}^{h}_{n}

(``w_t``/``w_e`` None: x is t = W_t x + b_t and e is ez = W_e e already, the form of
:func:`.gatv2_candidates.gatv2_candidates`.)

Nothing per edge is materialised beyond α (P, k, H) and one sign bit per edge and channel (the
LeakyReLU's branch, P·k·⌈H·D/32⌉ words).  The pixels run in tiles of about 32,768 edges: per tile
torch's matmuls project t = W_t x + b_t and ez = W_e e into cache-sized buffers, and a Numba
kernel (``prange`` over the tile's pixels) computes z, the softmax, o and the sign bits.

Backward, with dα^h_ij = g_α + g_o^h_i · v^h_n, de = α (dα − Σ_j α dα) and ẑ_ij = de^h ·
LeakyReLU'(z_ij) from the sign bits (so dz = a ⊙ ẑ; z is never recomputed), per tile: a Numba
pass writes ẑ and t̂_i = Σ_j ẑ_ij, and adds the source sums ŝ_n = Σ ẑ and ∂v_n = Σ α g_o into
one of R = 16 fixed partial buffers by pixel range (no atomics; the same sums in the same order
whatever the thread count); torch's matmuls then give ∂x = t̂ (a ⊙ W_t), ∂e = ẑ (a ⊙ W_e) and
accumulate M_t = Σ t̂ ⊗ x, M_e = Σ ẑ ⊗ e.  By linearity ∂W_t = a ⊙ M_t, ∂b_t = a ⊙ Σ t̂,
∂W_e = a ⊙ M_e, ∂s = a ⊙ ŝ, and ∂a = Σ ẑ ⊙ z (LeakyReLU(z) = LeakyReLU'(z) z) = the row sums
of W_t ⊙ M_t and W_e ⊙ M_e plus b_t ⊙ Σ t̂ and Σ_n s_n ⊙ ŝ_n: the backward costs one matmul of the edge features (two when
they need a gradient) and stores nothing per edge.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

# fmt: off
# no "nnan"/"ninf": a missing candidate's logit is never read, but keep IEEE semantics
_JIT = dict(parallel=True, cache=True, nogil=True, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})
TILE_EDGES = 32768  # edges a tile: its ez buffer (32,768 × H·D floats) stays in the L2/L3 caches
PARTS = 16  # fixed partial buffers of the source-side sums (deterministic whatever the threads)
CHUNK = 64  # pixels a prange chunk of the forward


@njit(inline="always")
def _span(c, n, n_chunks):
    """Items [start, stop) of chunk c of n items cut into n_chunks chunks (the last one shorter)."""
    step = (n + n_chunks - 1) // n_chunks
    return min(n, c * step), min(n, (c + 1) * step)


@njit(**_JIT)
def _forward_tile(t, s, ez, idx, att, values, slope, zero, n_chunks, alpha, out, bits):
    """α, o and the sign bits of one tile of pixels (t, ez, idx, alpha, out, bits: the tile's rows)."""
    n_pix, k = idx.shape
    nh, nd = att.shape
    shared = values.shape[1] == 1
    nv = values.shape[2]
    nhd = nh * nd
    nw = bits.shape[2]
    for c in prange(n_chunks):
        e = np.empty((k, nh), t.dtype)
        z = np.empty(nhd, t.dtype)
        start, stop = _span(c, n_pix, n_chunks)
        for i in range(start, stop):
            any_ = False
            for j in range(k):
                n = idx[i, j]
                if n < 0:
                    for w in range(nw):
                        bits[i, j, w] = 0
                    continue
                any_ = True
                for hd in range(nhd):
                    z[hd] = t[i, hd] + s[n, hd] + ez[i, j, hd]
                for h in range(nh):
                    acc = zero
                    for d in range(nd):
                        q = z[h * nd + d]
                        acc += att[h, d] * (q if q > 0 else q * slope)
                    e[j, h] = acc
                for w in range(nw):
                    word = np.uint32(0)
                    for b in range(min(32, nhd - 32 * w)):
                        if z[32 * w + b] > 0:
                            word |= np.uint32(1) << np.uint32(b)
                    bits[i, j, w] = word
            for h in range(nh):
                for v in range(nv):
                    out[i, h, v] = zero
                for j in range(k):
                    alpha[i, j, h] = zero
            if not any_:
                continue
            for h in range(nh):
                m = zero
                first = True
                for j in range(k):
                    if idx[i, j] >= 0 and (first or e[j, h] > m):
                        m = e[j, h]
                        first = False
                tot = zero
                for j in range(k):
                    if idx[i, j] >= 0:
                        w = np.exp(e[j, h] - m)
                        e[j, h] = w
                        tot += w
                hv = 0 if shared else h
                inv = 1 / tot
                for j in range(k):
                    n = idx[i, j]
                    if n >= 0:
                        a = e[j, h] * inv
                        alpha[i, j, h] = a
                        for v in range(nv):
                            out[i, h, v] += a * values[n, hv, v]


@njit(**_JIT)
def _backward_tile(idx, att, values, alpha, has_ga, g_alpha, has_go, g_out, bits, slope, zero, th, zh, ds_part, dv_part):
    """ẑ (zh), t̂ (th) of one tile; adds ŝ and ∂v into the partial buffers (module docstring)."""
    n_pix, k = idx.shape
    nh, nd = att.shape
    shared = values.shape[1] == 1
    nv = values.shape[2]
    n_parts = ds_part.shape[0]
    for r in prange(n_parts):
        de = np.empty((k, nh), th.dtype)
        start, stop = _span(r, n_pix, n_parts)
        for i in range(start, stop):
            for hd in range(nh * nd):
                th[i, hd] = zero
            for h in range(nh):
                hv = 0 if shared else h
                tot = zero
                for j in range(k):
                    n = idx[i, j]
                    da = zero
                    if n >= 0:
                        if has_ga:
                            da = g_alpha[i, j, h]
                        if has_go:
                            for v in range(nv):
                                da += g_out[i, h, v] * values[n, hv, v]
                        tot += alpha[i, j, h] * da
                    de[j, h] = da
                for j in range(k):
                    de[j, h] = alpha[i, j, h] * (de[j, h] - tot)
            for j in range(k):
                n = idx[i, j]
                if n < 0:
                    for hd in range(nh * nd):
                        zh[i, j, hd] = zero
                    continue
                for h in range(nh):
                    for d in range(nd):
                        hd = h * nd + d
                        on = (bits[i, j, hd >> 5] >> np.uint32(hd & 31)) & np.uint32(1)
                        q = de[j, h] if on else de[j, h] * slope
                        zh[i, j, hd] = q
                        th[i, hd] += q
                        ds_part[r, n, hd] += q
                if has_go:
                    for h in range(nh):
                        a = alpha[i, j, h]
                        hv = 0 if shared else h
                        for v in range(nv):
                            dv_part[r, n, hv, v] += a * g_out[i, h, v]


# fmt: on
def _np(x: Tensor) -> np.ndarray:
    return x.detach().numpy()


def _tile(k: int) -> int:
    return max(1, TILE_EDGES // max(k, 1))


def _words(nhd: int) -> int:
    return (nhd + 31) // 32


def new_outputs(inputs: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    """Uninitialised (α (P, k, H), out (P, H, V)) like ``t`` for the forward kernels to fill.

    ``inputs`` = (t, s, ez, idx, att, values), the fused backends' (Numba, Triton) shared form:
    contiguous tensors of one float dtype on one device, ``t`` (P, H·D), ``s`` (N, H·D), ``ez``
    (P, k, H·D), ``idx`` (P, k) int64, ``att`` (H, D), ``values`` (N, 1 or H, V)."""
    t, _, _, idx, att, values = inputs
    return t.new_empty((*idx.shape, att.shape[0])), t.new_empty((idx.shape[0], att.shape[0], values.shape[2]))


def new_grads(inputs: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Uninitialised (∂t, ∂s, ∂ez, ∂values) like ``inputs`` (:func:`new_outputs`) for the backward
    kernels, which write every element."""
    t, s, ez, _, _, values = inputs
    return torch.empty_like(t), torch.empty_like(s), torch.empty_like(ez), torch.empty_like(values)


def numba_layer_forward(
    x: Tensor, w_t: Tensor | None, b_t: Tensor | None, s: Tensor, edge: Tensor, w_e: Tensor | None,
    idx: Tensor, att: Tensor, values: Tensor, slope: float,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """(α (P, k, H), o (P, H, V), sign bits (P, k, ⌈H·D/32⌉) int32) of contiguous CPU tensors.

    ``x`` (P, C) pixel features and ``w_t`` (H·D, C), ``b_t`` (H·D,); ``edge`` (P, k, E) and
    ``w_e`` (H·D, E); ``s`` (N, H·D) the source projections; ``idx`` (P, k) int64; ``att`` (H, D);
    ``values`` (N, 1 or H, V).  ``w_t`` None: ``x`` is t (P, H·D) (``b_t`` ignored); ``w_e`` None:
    ``edge`` is ez (P, k, H·D)."""
    n_pix, k = idx.shape
    nh, nd = att.shape
    nhd = nh * nd
    alpha, out = new_outputs((x, s, edge, idx, att, values))
    bits = torch.empty((n_pix, k, _words(nhd)), dtype=torch.int32)
    tile = _tile(k)
    t_buf = x.new_empty((min(tile, n_pix), nhd)) if w_t is not None else None
    z_buf = x.new_empty((min(tile, n_pix) * k, nhd)) if w_e is not None else None
    e2 = edge.view(n_pix * k, edge.shape[2])
    zero = _np(x).dtype.type(0)
    s_, att_, v_ = _np(s), _np(att), _np(values)
    bits_ = _np(bits).view(np.uint32)
    for p0 in range(0, n_pix, tile):
        p1 = min(n_pix, p0 + tile)
        n = p1 - p0
        if w_t is None:
            t = x[p0:p1]
        else:
            t = torch.mm(x[p0:p1], w_t.t(), out=t_buf[:n])
            if b_t is not None:
                t += b_t
        if w_e is None:
            ez = edge[p0:p1]
        else:
            ez = torch.mm(e2[p0 * k : p1 * k], w_e.t(), out=z_buf[: n * k]).view(n, k, nhd)
        _forward_tile(
            _np(t), s_, _np(ez), _np(idx[p0:p1]), att_, v_, slope, zero, max(1, -(-n // CHUNK)),
            _np(alpha[p0:p1]), _np(out[p0:p1]), bits_[p0:p1],
        )  # fmt: skip
    return alpha, out, bits


def numba_layer_backward(
    saved: tuple[Tensor | None, ...], alpha: Tensor, bits: Tensor, g_alpha: Tensor | None,
    g_out: Tensor | None, slope: float, needs: tuple[bool, ...],
) -> tuple[Tensor | None, ...]:  # fmt: skip
    """(∂x, ∂w_t, ∂b_t, ∂s, ∂edge, ∂w_e, ∂att, ∂values) of :func:`numba_layer_forward`.

    ``saved`` = its (x, w_t, b_t, s, edge, w_e, idx, att, values); ``g_alpha`` (P, k, H) and
    ``g_out`` (P, H, V) the upstream gradients (None: zero; any strides); ``needs`` the
    ``needs_input_grad`` of those nine inputs: gradients not needed come back None."""
    x, w_t, b_t, s, edge, w_e, idx, att, values = saved
    n_pix, k = idx.shape
    nh, nd = att.shape
    nhd = nh * nd
    a = att.reshape(nhd)
    need_x, need_wt, need_bt, need_s, need_e, need_we, _, need_att, need_v = needs
    parts = max(1, min(PARTS, n_pix))
    ds_part = s.new_zeros((parts, *s.shape))
    dv_part = values.new_zeros((parts, *values.shape))
    proj_t, proj_e = w_t is not None, w_e is not None
    dx = torch.empty_like(x) if need_x else None
    d_edge = torch.empty_like(edge) if need_e else None
    m_t = x.new_zeros((nhd, x.shape[1])) if proj_t and (need_wt or need_att) else None
    m_e = edge.new_zeros((nhd, edge.shape[2])) if proj_e and (need_we or need_att) else None
    th_sum = x.new_zeros(nhd)
    diag = x.new_zeros(nhd)  # Σ ẑ ⊙ t and Σ ẑ ⊙ ez where those are inputs (no projection)
    wt_a = a[:, None] * w_t if proj_t and need_x else None
    we_a = a[:, None] * w_e if proj_e and need_e else None
    tile = _tile(k)
    th_buf = x.new_empty((min(tile, n_pix), nhd))
    zh_buf = x.new_empty((min(tile, n_pix) * k, nhd))
    x2, e2 = x, edge.view(n_pix * k, edge.shape[2])
    zero = _np(x).dtype.type(0)
    dummy = alpha.new_zeros((1, 1, 1))
    ga = dummy if g_alpha is None else g_alpha
    go = dummy if g_out is None else g_out
    att_, v_, bits_ = _np(att), _np(values), _np(bits).view(np.uint32)
    ds_, dv_ = _np(ds_part), _np(dv_part)
    for p0 in range(0, n_pix, tile):
        p1 = min(n_pix, p0 + tile)
        n = p1 - p0
        th, zh = th_buf[:n], zh_buf[: n * k]
        ga_t = ga if g_alpha is None else ga[p0:p1]
        go_t = go if g_out is None else go[p0:p1]
        _backward_tile(
            _np(idx[p0:p1]), att_, v_, _np(alpha[p0:p1]), g_alpha is not None, _np(ga_t),
            g_out is not None, _np(go_t), bits_[p0:p1], slope, zero, _np(th), _np(zh).reshape(n, k, nhd),
            ds_, dv_,
        )  # fmt: skip
        th_sum += th.sum(0)
        if proj_t:
            if m_t is not None:
                m_t.addmm_(th.t(), x2[p0:p1])
            if need_x:
                torch.mm(th, wt_a, out=dx[p0:p1])
        else:
            if need_att:
                diag += (th * x2[p0:p1]).sum(0)
            if need_x:
                torch.mul(th, a, out=dx[p0:p1])
        ez_rows = e2[p0 * k : p1 * k]
        if proj_e:
            if m_e is not None:
                m_e.addmm_(zh.t(), ez_rows)
            if need_e:
                torch.mm(zh, we_a, out=d_edge.view(n_pix * k, -1)[p0 * k : p1 * k])
        else:
            if need_att:
                diag += (zh * ez_rows).sum(0)
            if need_e:
                torch.mul(zh, a, out=d_edge.view(n_pix * k, -1)[p0 * k : p1 * k])
    s_hat = ds_part.sum(0)
    datt = None
    if need_att:
        datt = diag + (s * s_hat).sum(0)
        if proj_t:
            datt += (w_t * m_t).sum(1) + (0 if b_t is None else b_t * th_sum)
        if proj_e:
            datt += (w_e * m_e).sum(1)
        datt = datt.view(nh, nd)
    return (
        dx,
        a[:, None] * m_t if proj_t and need_wt else None,
        a * th_sum if proj_t and need_bt and b_t is not None else None,
        a * s_hat if need_s else None,
        d_edge,
        a[:, None] * m_e if proj_e and need_we else None,
        datt,
        dv_part.sum(0) if need_v else None,
    )


__all__ = ["numba_layer_forward", "numba_layer_backward", "new_outputs", "new_grads"]
