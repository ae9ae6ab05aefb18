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
LeakyReLU's branch, P·k·⌈H·D/32⌉ uint32 words). The forward is one Numba kernel, ``prange`` over
chunks of pixels: per chunk one small GEMM (``np.dot``, single-threaded BLAS: m·n·k kept under
OpenBLAS's bound for starting threads, :data:`BLAS_MNK`) projects its edges W_e e into a scratch
of chunk × k × H·D; per pixel the kernel projects t_i, forms z of its k candidates, the logits,
softmax, o and the sign bits. (Where one pixel's GEMM would pass the bound, a plain loop projects
instead.) No torch op runs between the kernels' parallel regions: torch's OpenMP threads spin
after each op and starved Numba's threads (a version projecting tiles with torch matmuls between
Numba calls took 1.05–1.6 s for the bench's forward where this kernel, still projecting with a plain
loop, took 0.15–0.24 s, load 8–10).

Backward, with dα^h_ij = g_α + g_o^h_i · v^h_n, de = α (dα − Σ_j α dα) and ẑ_ij = de^h ·
LeakyReLU'(z_ij) from the sign bits (so dz = a ⊙ ẑ; z is never recomputed): one kernel over R = 16
fixed pixel ranges, each adding into its own partial buffers (no atomics; the same sums in the
same order whatever the thread count), writes ∂x_i = (a ⊙ W_t)ᵀ t̂_i with t̂_i = Σ_j ẑ_ij, ∂e_ij =
(a ⊙ W_e)ᵀ ẑ_ij (a small GEMM per block of pixels, as in the forward), and accumulates ŝ_n = Σ ẑ,
∂v_n = Σ α g_o, M_t = Σ x ⊗ t̂, M_e = Σ e ⊗ ẑ (one GEMM per block) and Σ t̂. By linearity ∂W_t = a
⊙ M_t, ∂b_t = a ⊙ Σ t̂, ∂W_e = a ⊙ M_e, ∂s = a ⊙ ŝ, and ∂a = Σ ẑ ⊙ z (LeakyReLU(z) = LeakyReLU'(z)
z) = the row sums of W_t ⊙ M_t and W_e ⊙ M_e plus b_t ⊙ Σ t̂ and Σ_n s_n ⊙ ŝ_n. Memory beyond the
inputs and their gradients: α, the sign bits and R × (N·(H·D + H·V) + (C + E + 2)·H·D) partial
sums.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

# fmt: off
# no "nnan"/"ninf": a missing candidate's logit is never read, but keep IEEE semantics
_JIT = dict(parallel=True, cache=True, nogil=True, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})
PARTS = 16  # fixed partial buffers of the source-side sums (deterministic whatever the threads)
CHUNK = 64  # pixels a prange chunk of the forward
# the edge projection's small GEMMs (np.dot inside prange) stay under OpenBLAS's single-thread bound
# (m·n·k ≤ 65,536 × 4, interface/gemm.c): half of it, so that BLAS never starts threads of its own
# inside Numba's parallel region (OpenBLAS warns there and may hang)
BLAS_MNK = 131072


def _blas_block(k: int, n_edge: int, nhd: int) -> int:
    """Pixels a GEMM block of the edge projection, or 0 where one pixel is already too large."""
    return min(CHUNK, BLAS_MNK // (k * n_edge * nhd)) if k * n_edge * nhd else 0


@njit(inline="always")
def _span(c, n, n_chunks):
    """Items [start, stop) of chunk c of n items cut into n_chunks chunks (the last one shorter)."""
    step = (n + n_chunks - 1) // n_chunks
    return min(n, c * step), min(n, (c + 1) * step)


@njit(**_JIT)
def _forward(x, proj_t, blas_t, wt_t, b_t, s, edge, e2, proj_e, blas, we_t, idx, att, values, slope, zero, n_chunks, alpha, out, bits, want_bits):
    """α, o and the sign bits (module docstring); ``wt_t`` (C, H·D) = W_tᵀ, ``we_t`` (E, H·D) = W_eᵀ;
    without ``proj_t`` x is t (``wt_t``, ``b_t`` unused), without ``proj_e`` edge is ez."""
    n_pix, k = idx.shape
    nh, nd = att.shape
    shared = values.shape[1] == 1
    nv = values.shape[2]
    nhd = nh * nd
    nw = bits.shape[2]
    for c in prange(n_chunks):
        e = np.empty((k, nh), x.dtype)
        z = np.empty((k, nhd), x.dtype)
        t = np.empty(nhd, x.dtype)
        start, stop = _span(c, n_pix, n_chunks)
        zb = np.empty(((stop - start) * k if blas else 1, nhd), x.dtype)
        if blas and stop > start:  # W_e e of the chunk's edges: one small single-threaded GEMM
            np.dot(e2[start * k : stop * k], we_t, zb)
        tb = np.empty((stop - start if blas_t else 1, nhd), x.dtype)
        if blas_t and stop > start:  # W_t x of the chunk's pixels
            np.dot(x[start:stop], wt_t, tb)
        for i in range(start, stop):
            if blas_t:
                for hd in range(nhd):
                    t[hd] = b_t[hd] + tb[i - start, hd]
            elif proj_t:
                for hd in range(nhd):
                    t[hd] = b_t[hd]
                for q in range(x.shape[1]):
                    xq = x[i, q]
                    for hd in range(nhd):
                        t[hd] += xq * wt_t[q, hd]
            else:
                for hd in range(nhd):
                    t[hd] = x[i, hd]
            any_ = False
            for j in range(k):
                n = max(idx[i, j], 0)
                any_ = any_ or idx[i, j] >= 0
                for hd in range(nhd):
                    z[j, hd] = t[hd] + s[n, hd]
            if not any_:
                alpha[i] = zero
                out[i] = zero
                if want_bits:
                    bits[i] = 0
                continue
            if blas:
                for j in range(k):
                    row = (i - start) * k + j
                    for hd in range(nhd):
                        z[j, hd] += zb[row, hd]
            elif proj_e:
                for f in range(edge.shape[2]):
                    for j in range(k):
                        ef = edge[i, j, f]
                        for hd in range(nhd):
                            z[j, hd] += ef * we_t[f, hd]
            else:
                for j in range(k):
                    for hd in range(nhd):
                        z[j, hd] += edge[i, j, hd]
            for j in range(k):
                for h in range(nh):
                    acc = zero
                    for d in range(nd):
                        q = z[j, h * nd + d]
                        acc += att[h, d] * (q if q > 0 else q * slope)
                    e[j, h] = acc
                if want_bits:  # branch-free, so that LLVM vectorises it (a missing slot's bits are never read)
                    for w in range(nw):
                        word = np.uint32(0)
                        for b in range(min(32, nhd - 32 * w)):
                            word |= np.uint32(z[j, 32 * w + b] > 0) << np.uint32(b)
                        bits[i, j, w] = word
            for h in range(nh):
                m = zero
                first = True
                for j in range(k):
                    if idx[i, j] >= 0 and (first or e[j, h] > m):
                        m = e[j, h]
                        first = False
                tot = zero
                for j in range(k):
                    w = zero
                    if idx[i, j] >= 0:
                        w = np.exp(e[j, h] - m)
                    e[j, h] = w
                    tot += w
                inv = 1 / tot
                hv = 0 if shared else h
                for v in range(nv):
                    out[i, h, v] = zero
                for j in range(k):
                    a = e[j, h] * inv
                    alpha[i, j, h] = a
                    n = idx[i, j]
                    if n >= 0:
                        for v in range(nv):
                            out[i, h, v] += a * values[n, hv, v]


@njit(**_JIT)
def _backward(
    x, proj_t, blas_t, wt_a, edge, e2, proj_e, blas, block, we_a, idx, att, values, alpha, has_ga, g_alpha, has_go,
    g_out, bits, slope, zero, need_x, need_e, need_mt, need_me, dx, d_edge, d_edge2, mt_part, me_part,
    diag_part, th_part, ds_part, dv_part,
):
    """The backward (module docstring), all in one pass over pixel ranges; r-th range adds into the
    r-th partial buffers.  ``wt_a`` (H·D, C) = a ⊙ W_t, ``we_a`` (H·D, E) = a ⊙ W_e;
    ``mt_part`` (R, C, H·D) Σ x ⊗ t̂, ``me_part`` (R, E, H·D) Σ e ⊗ ẑ, ``diag_part`` (R, H·D)
    Σ t̂ ⊙ x and Σ ẑ ⊙ ez where x, edge are t, ez, ``th_part`` (R, H·D) Σ t̂.  With ``blas`` the
    edge side (M_e, ∂e) runs as small GEMMs over blocks of ``block`` pixels."""
    n_pix, k = idx.shape
    nh, nd = att.shape
    nhd = nh * nd
    shared = values.shape[1] == 1
    nv = values.shape[2]
    n_parts = ds_part.shape[0]
    for r in prange(n_parts):
        de = np.empty((k, nh), x.dtype)
        zhb = np.empty((block * k, nhd), x.dtype)
        th = np.empty(nhd, x.dtype)
        a_flat = np.empty(nhd, x.dtype)
        tmp = np.empty((e2.shape[1], nhd), x.dtype)
        thb = np.empty((block if blas_t else 1, nhd), x.dtype)
        tmp_t = np.empty((x.shape[1], nhd), x.dtype)
        for h in range(nh):
            for d in range(nd):
                a_flat[h * nd + d] = att[h, d]
        start, stop = _span(r, n_pix, n_parts)
        for b0 in range(start, stop, block):
            b1 = min(stop, b0 + block)
            for i in range(b0, b1):
                zh = zhb[(i - b0) * k : (i - b0 + 1) * k]
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
                for hd in range(nhd):
                    th[hd] = zero
                for j in range(k):
                    n = idx[i, j]
                    if n < 0:
                        for hd in range(nhd):
                            zh[j, hd] = zero
                        continue
                    for h in range(nh):
                        for d in range(nd):
                            hd = h * nd + d
                            on = (bits[i, j, hd >> 5] >> np.uint32(hd & 31)) & np.uint32(1)
                            zh[j, hd] = de[j, h] if on else de[j, h] * slope
                    for hd in range(nhd):
                        th[hd] += zh[j, hd]
                        ds_part[r, n, hd] += zh[j, hd]
                    if has_go:
                        for h in range(nh):
                            a = alpha[i, j, h]
                            hv = 0 if shared else h
                            for v in range(nv):
                                dv_part[r, n, hv, v] += a * g_out[i, h, v]
                if proj_e and not blas:
                    if need_me:
                        for j in range(k):
                            for f in range(edge.shape[2]):
                                ef = edge[i, j, f]
                                for hd in range(nhd):
                                    me_part[r, f, hd] += ef * zh[j, hd]
                    if need_e:
                        for j in range(k):
                            for f in range(edge.shape[2]):
                                d_edge[i, j, f] = zero
                            for hd in range(nhd):
                                q = zh[j, hd]
                                for f in range(edge.shape[2]):
                                    d_edge[i, j, f] += q * we_a[hd, f]
                elif not proj_e:
                    for j in range(k):
                        for hd in range(nhd):
                            diag_part[r, hd] += zh[j, hd] * edge[i, j, hd]
                            if need_e:
                                d_edge[i, j, hd] = zh[j, hd] * a_flat[hd]
                if blas_t:
                    for hd in range(nhd):
                        thb[i - b0, hd] = th[hd]
                elif proj_t:
                    if need_mt:
                        for q in range(x.shape[1]):
                            xq = x[i, q]
                            for hd in range(nhd):
                                mt_part[r, q, hd] += xq * th[hd]
                    if need_x:
                        for q in range(x.shape[1]):
                            dx[i, q] = zero
                        for hd in range(nhd):
                            thd = th[hd]
                            for q in range(x.shape[1]):
                                dx[i, q] += thd * wt_a[hd, q]
                else:
                    for hd in range(nhd):
                        diag_part[r, hd] += th[hd] * x[i, hd]
                        if need_x:
                            dx[i, hd] = th[hd] * a_flat[hd]
                for hd in range(nhd):
                    th_part[r, hd] += th[hd]
            if blas:
                rows = (b1 - b0) * k
                if need_me:
                    np.dot(e2[b0 * k : b1 * k].T, zhb[:rows], tmp)
                    for f in range(tmp.shape[0]):
                        for hd in range(nhd):
                            me_part[r, f, hd] += tmp[f, hd]
                if need_e:
                    np.dot(zhb[:rows], we_a, d_edge2[b0 * k : b1 * k])
            if blas_t:
                if need_mt:
                    np.dot(x[b0:b1].T, thb[: b1 - b0], tmp_t)
                    for q in range(tmp_t.shape[0]):
                        for hd in range(nhd):
                            mt_part[r, q, hd] += tmp_t[q, hd]
                if need_x:
                    np.dot(thb[: b1 - b0], wt_a, dx[b0:b1])


# fmt: on
def _np(x: Tensor) -> np.ndarray:
    return x.detach().numpy()


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
    idx: Tensor, att: Tensor, values: Tensor, slope: float, want_bits: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """(α (P, k, H), o (P, H, V), sign bits (P, k, ⌈H·D/32⌉) int32) of contiguous CPU tensors.

    ``x`` (P, C) pixel features and ``w_t`` (H·D, C), ``b_t`` (H·D,) or None; ``edge`` (P, k, E)
    and ``w_e`` (H·D, E); ``s`` (N, H·D) the source projections; ``idx`` (P, k) int64; ``att``
    (H, D); ``values`` (N, 1 or H, V).  ``w_t`` None: ``x`` is t (P, H·D) (``b_t`` ignored);
    ``w_e`` None: ``edge`` is ez (P, k, H·D).  ``want_bits`` False (no backward will run): the
    sign bits are not formed and come back as a (0, k, ⌈H·D/32⌉) tensor."""
    n_pix, k = idx.shape
    nhd = att.numel()
    alpha, out = new_outputs((x, s, edge, idx, att, values))
    bits = torch.empty((n_pix if want_bits else 0, k, _words(nhd)), dtype=torch.int32)
    if n_pix == 0:
        return alpha, out, bits
    dummy = _np(x.new_zeros((1, 1)))
    wt_t = dummy if w_t is None else _np(w_t).T.copy()
    b = _np(b_t) if b_t is not None and w_t is not None else np.zeros(nhd, _np(x).dtype)
    we_t = dummy if w_e is None else _np(w_e).T.copy()
    s_ = _np(s) if s.shape[0] else np.zeros((1, nhd), _np(x).dtype)
    block = _blas_block(k, edge.shape[2], nhd) if w_e is not None else 0
    blas_t = w_t is not None and 0 < (block or CHUNK) * x.shape[1] * nhd <= BLAS_MNK
    _forward(
        _np(x), w_t is not None, blas_t, wt_t, b, s_, _np(edge), _np(edge).reshape(n_pix * k, -1), w_e is not None,
        block > 0, we_t, _np(idx), _np(att), _np(values), _np(x).dtype.type(slope), _np(x).dtype.type(0),
        max(1, -(-n_pix // (block or CHUNK))), _np(alpha), _np(out), _np(bits).view(np.uint32), want_bits,
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
    proj_t, proj_e = w_t is not None, w_e is not None
    need_mt = proj_t and (need_wt or need_att)
    need_me = proj_e and (need_we or need_att)
    parts = max(1, min(PARTS, n_pix))
    z = x.new_zeros
    ds_part, dv_part = z((parts, *s.shape)), z((parts, *values.shape))
    mt_part = z((parts, x.shape[1], nhd) if need_mt else (1, 1, 1))
    me_part = z((parts, edge.shape[2], nhd) if need_me else (1, 1, 1))
    diag_part, th_part = z((parts, nhd)), z((parts, nhd))
    dx = torch.empty_like(x) if need_x else z((1, 1))
    d_edge = torch.empty_like(edge) if need_e else z((1, 1, 1))
    dummy = _np(z((1, 1)))
    wt_a = _np((a[:, None] * w_t).contiguous()) if proj_t and need_x else dummy
    we_a = _np((a[:, None] * w_e).contiguous()) if proj_e and need_e else dummy
    ga = z((1, 1, 1)) if g_alpha is None else g_alpha
    go = z((1, 1, 1)) if g_out is None else g_out
    if n_pix:
        block = _blas_block(k, edge.shape[2], nhd) if proj_e else 0
        e2 = _np(edge).reshape(n_pix * k, -1)
        de2 = _np(d_edge).reshape(n_pix * k, -1) if need_e else _np(d_edge)[0]
        blas_t = proj_t and block > 1 and 0 < block * x.shape[1] * nhd <= BLAS_MNK
        _backward(
            _np(x), proj_t, blas_t, wt_a, _np(edge), e2, proj_e, block > 0, max(block, 1), we_a, _np(idx), _np(att),
            _np(values), _np(alpha), g_alpha is not None, _np(ga), g_out is not None, _np(go),
            _np(bits).view(np.uint32), _np(x).dtype.type(slope), _np(x).dtype.type(0), need_x, need_e, need_mt,
            need_me, _np(dx), _np(d_edge), de2, _np(mt_part), _np(me_part), _np(diag_part), _np(th_part),
            _np(ds_part), _np(dv_part),
        )  # fmt: skip
    s_hat, th_sum = ds_part.sum(0), th_part.sum(0)
    m_t = mt_part.sum(0).T if need_mt else None  # (H·D, C)
    m_e = me_part.sum(0).T if need_me else None  # (H·D, E)
    datt = None
    if need_att:
        datt = diag_part.sum(0) + (s * s_hat).sum(0)
        if proj_t:
            datt += (w_t * m_t).sum(1) + (0 if b_t is None else b_t * th_sum)
        if proj_e:
            datt += (w_e * m_e).sum(1)
        datt = datt.view(nh, nd)
    return (
        dx if need_x else None,
        a[:, None] * m_t if proj_t and need_wt else None,
        a * th_sum if proj_t and need_bt and b_t is not None else None,
        a * s_hat if need_s else None,
        d_edge if need_e else None,
        a[:, None] * m_e if proj_e and need_we else None,
        datt,
        dv_part.sum(0) if need_v else None,
    )


__all__ = ["numba_layer_forward", "numba_layer_backward", "new_outputs", "new_grads"]
