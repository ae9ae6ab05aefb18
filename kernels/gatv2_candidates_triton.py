"""Fused Triton kernels (CUDA) of the GATv2 candidate attention: the GPU twin of the Numba kernels.

Same math as :mod:`.gatv2_candidates_numba` (and the torch reference it is tested against):

.. math::
    \\mathbf{z}_{ij} = \\mathbf{t}_i + \\mathbf{s}_{n} + \\mathbf{ez}_{ij},\\quad
    e^h_{ij} = \\mathbf{a}_h^\\top \\mathrm{LeakyReLU}(\\mathbf{z}_{ij})_h,\\quad
    \\alpha^h_{ij} = \\operatorname{softmax}_j e^h_{ij},\\quad
    \\mathbf{o}^h_i = \\textstyle\\sum_j \\alpha^h_{ij}\\,\\mathbf{v}^{h}_{n}\\qquad (n = \\mathrm{idx}_{ij})

One program per pixel holds a (heads × head_dim) tile and walks its k candidate slots: an online
max and sum, then α and the weighted sum of the values.  The backward is gather-only (no
atomics, deterministic): pass A per pixel (∂t, ∂ez and the pixel's share of ∂a, z recomputed),
pass B per source over a reverse CSR of ``idx`` (∂s, ∂v).  Accumulates in float32 for float32
and float16 inputs, in float64 for float64 ones.  Importing this module never fails;
:func:`available` says whether Triton is usable (``TRITON_INTERPRET=1`` runs the kernels on CPU
tensors, as the tests do without a GPU).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .gat_triton import HAVE_TRITON, available
from .gatv2_candidates_numba import new_grads, new_outputs

if HAVE_TRITON:
    import triton
    import triton.language as tl

    _NEG = tl.constexpr(-1.0e30)  # the running max before any candidate (exp(_NEG - _NEG) is 1, not NaN)

# fmt: off
# (kernel signatures and launches stay one per line, as in gat_triton.py)
if HAVE_TRITON:

    @triton.jit
    def _hd_lanes(NH: tl.constexpr, ND: tl.constexpr, NV: tl.constexpr, BH: tl.constexpr, BD: tl.constexpr, BV: tl.constexpr):
        """Head, head-dim and value lanes; the (H, D) offsets and mask, the (H, V) mask."""
        offs_h = tl.arange(0, BH)
        offs_d = tl.arange(0, BD)
        offs_v = tl.arange(0, BV)
        mask_h = offs_h < NH
        hd = offs_h[:, None] * ND + offs_d[None, :]
        mask = mask_h[:, None] & (offs_d[None, :] < ND)
        mask_v = mask_h[:, None] & (offs_v[None, :] < NV)
        return offs_h, offs_v, mask_h, hd, mask, mask_v

    @triton.jit
    def _pixel_prologue(t_ptr, att_ptr, slope_ptr, NH: tl.constexpr, ND: tl.constexpr, NV: tl.constexpr, BH: tl.constexpr, BD: tl.constexpr, BV: tl.constexpr, ACC: tl.constexpr):
        """This program's pixel i, its lanes, the slope, its (H, D) tile of t and the att tile."""
        i = tl.program_id(0).to(tl.int64)
        offs_h, offs_v, mask_h, hd, mask, mask_v = _hd_lanes(NH, ND, NV, BH, BD, BV)
        slope = tl.load(slope_ptr)  # a tensor of the inputs' dtype: a float argument would be float32
        t_i = tl.load(t_ptr + i * (NH * ND) + hd, mask=mask, other=0.0).to(ACC)
        att = tl.load(att_ptr + hd, mask=mask, other=0.0).to(ACC)
        return i, offs_h, offs_v, mask_h, hd, mask, mask_v, slope, t_i, att

    @triton.jit
    def _value_tile(ptr, n, offs_h, offs_v, mask_v, NH: tl.constexpr, NV: tl.constexpr, SHARED: tl.constexpr, ACC: tl.constexpr):
        """Source n's values as an (H, V) tile (one row broadcast over heads when SHARED)."""
        if SHARED:
            return tl.load(ptr + n * NV + offs_h[:, None] * 0 + offs_v[None, :], mask=mask_v, other=0.0).to(ACC)
        else:
            return tl.load(ptr + n * (NH * NV) + offs_h[:, None] * NV + offs_v[None, :], mask=mask_v, other=0.0).to(ACC)

    @triton.jit
    def _slot(i, j, idx_ptr, t_i, s_ptr, ez_ptr, att, hd, mask, slope, K: tl.constexpr, NHD: tl.constexpr, ACC: tl.constexpr):
        """(source n, present, logits e (H,), z (H, D), LeakyReLU slope factor (H, D)) of slot j."""
        raw = tl.load(idx_ptr + i * K + j)
        has = raw >= 0
        n = tl.where(has, raw, 0)
        z = t_i + tl.load(s_ptr + n * NHD + hd, mask=mask & (hd * 0 + raw >= 0), other=0.0).to(ACC)
        z += tl.load(ez_ptr + (i * K + j) * NHD + hd, mask=mask, other=0.0).to(ACC)
        g = tl.where(z > 0, 1.0, slope).to(ACC)
        e = tl.sum(tl.where(mask, att * z * g, 0.0), axis=1)
        return n, has, e, z, g

    @triton.jit
    def _softmax_stats(i, idx_ptr, t_i, s_ptr, ez_ptr, att, hd, mask, slope, K: tl.constexpr, NHD: tl.constexpr, BH: tl.constexpr, ACC: tl.constexpr):
        """(max, 1 / sum) per head over pixel i's present candidates (1/sum = 0 without any)."""
        m = tl.full((BH,), _NEG, ACC)
        tot = tl.zeros((BH,), ACC)
        for j in range(K):
            _, has, e, _, _ = _slot(i, j, idx_ptr, t_i, s_ptr, ez_ptr, att, hd, mask, slope, K, NHD, ACC)
            m_new = tl.where(has, tl.maximum(m, e), m)
            tot = tot * tl.exp(m - m_new) + tl.where(has, tl.exp(e - m_new), 0.0)
            m = m_new
        return m, tl.where(tot > 0, 1.0 / tot, 0.0)

    @triton.jit
    def _forward_kernel(
        t_ptr, s_ptr, ez_ptr, idx_ptr, att_ptr, v_ptr, alpha_ptr, out_ptr, slope_ptr,
        K: tl.constexpr, NH: tl.constexpr, ND: tl.constexpr, NV: tl.constexpr, BH: tl.constexpr, BD: tl.constexpr, BV: tl.constexpr, SHARED: tl.constexpr, ACC: tl.constexpr,
    ):
        i, offs_h, offs_v, mask_h, hd, mask, mask_v, slope, t_i, att = _pixel_prologue(t_ptr, att_ptr, slope_ptr, NH, ND, NV, BH, BD, BV, ACC)
        m, inv = _softmax_stats(i, idx_ptr, t_i, s_ptr, ez_ptr, att, hd, mask, slope, K, NH * ND, BH, ACC)
        acc = tl.zeros((BH, BV), ACC)
        for j in range(K):
            n, has, e, _, _ = _slot(i, j, idx_ptr, t_i, s_ptr, ez_ptr, att, hd, mask, slope, K, NH * ND, ACC)
            a = tl.where(has, tl.exp(e - m) * inv, 0.0)
            tl.store(alpha_ptr + (i * K + j) * NH + offs_h, a, mask=mask_h)
            acc += a[:, None] * _value_tile(v_ptr, n, offs_h, offs_v, mask_v, NH, NV, SHARED, ACC)
        tl.store(out_ptr + i * (NH * NV) + offs_h[:, None] * NV + offs_v[None, :], acc, mask=mask_v)

    @triton.jit
    def _dalpha(i, j, n, has, alpha_ptr, ga_ptr, go, v_ptr, offs_h, offs_v, mask_h, mask_v, K: tl.constexpr, NH: tl.constexpr, NV: tl.constexpr, SHARED: tl.constexpr, ACC: tl.constexpr):
        """(α, total ∂α = g_α + g_o · v_n) of slot j, per head; zero where the slot is empty."""
        a = tl.load(alpha_ptr + (i * K + j) * NH + offs_h, mask=mask_h, other=0.0).to(ACC)
        da = tl.load(ga_ptr + (i * K + j) * NH + offs_h, mask=mask_h, other=0.0).to(ACC)
        da += tl.sum(go * _value_tile(v_ptr, n, offs_h, offs_v, mask_v, NH, NV, SHARED, ACC), axis=1)
        return a, tl.where(has, da, 0.0)

    @triton.jit
    def _backward_pixel_kernel(
        t_ptr, s_ptr, ez_ptr, idx_ptr, att_ptr, v_ptr, alpha_ptr, ga_ptr, go_ptr, dt_ptr, dez_ptr, datt_ptr, slope_ptr,
        K: tl.constexpr, NH: tl.constexpr, ND: tl.constexpr, NV: tl.constexpr, BH: tl.constexpr, BD: tl.constexpr, BV: tl.constexpr, SHARED: tl.constexpr, ACC: tl.constexpr,
    ):
        i, offs_h, offs_v, mask_h, hd, mask, mask_v, slope, t_i, att = _pixel_prologue(t_ptr, att_ptr, slope_ptr, NH, ND, NV, BH, BD, BV, ACC)
        go = tl.load(go_ptr + i * (NH * NV) + offs_h[:, None] * NV + offs_v[None, :], mask=mask_v, other=0.0).to(ACC)
        tot = tl.zeros((BH,), ACC)
        for j in range(K):
            n = tl.load(idx_ptr + i * K + j)
            a, da = _dalpha(i, j, tl.where(n >= 0, n, 0), n >= 0, alpha_ptr, ga_ptr, go, v_ptr, offs_h, offs_v, mask_h, mask_v, K, NH, NV, SHARED, ACC)
            tot += a * da
        dt = tl.zeros((BH, BD), ACC)
        datt = tl.zeros((BH, BD), ACC)
        for j in range(K):
            n, has, _, z, g = _slot(i, j, idx_ptr, t_i, s_ptr, ez_ptr, att, hd, mask, slope, K, NH * ND, ACC)
            a, da = _dalpha(i, j, n, has, alpha_ptr, ga_ptr, go, v_ptr, offs_h, offs_v, mask_h, mask_v, K, NH, NV, SHARED, ACC)
            de = a * (da - tot)
            dz = de[:, None] * att * g
            tl.store(dez_ptr + (i * K + j) * (NH * ND) + hd, dz, mask=mask)
            dt += dz
            datt += de[:, None] * z * g
        tl.store(dt_ptr + i * (NH * ND) + hd, dt, mask=mask)
        tl.store(datt_ptr + i * (NH * ND) + hd, datt, mask=mask)

    @triton.jit
    def _backward_source_kernel(
        ptr_ptr, edge_ptr, alpha_ptr, go_ptr, dez_ptr, ds_ptr, dv_ptr,
        K: tl.constexpr, NH: tl.constexpr, ND: tl.constexpr, NV: tl.constexpr, BH: tl.constexpr, BD: tl.constexpr, BV: tl.constexpr, SHARED: tl.constexpr, ACC: tl.constexpr,
    ):
        n = tl.program_id(0).to(tl.int64)
        offs_h, offs_v, mask_h, hd, mask, mask_v = _hd_lanes(NH, ND, NV, BH, BD, BV)
        ds = tl.zeros((BH, BD), ACC)
        dv = tl.zeros((BH, BV), ACC)
        for r in range(tl.load(ptr_ptr + n), tl.load(ptr_ptr + n + 1)):
            e = tl.load(edge_ptr + r)
            ds += tl.load(dez_ptr + e * (NH * ND) + hd, mask=mask, other=0.0).to(ACC)
            a = tl.load(alpha_ptr + e * NH + offs_h, mask=mask_h, other=0.0).to(ACC)
            go = tl.load(go_ptr + (e // K) * (NH * NV) + offs_h[:, None] * NV + offs_v[None, :], mask=mask_v, other=0.0).to(ACC)
            dv += a[:, None] * go
        tl.store(ds_ptr + n * (NH * ND) + hd, ds, mask=mask)
        if SHARED:
            tl.store(dv_ptr + n * NV + offs_v, tl.sum(dv, axis=0), mask=offs_v < NV)
        else:
            tl.store(dv_ptr + n * (NH * NV) + offs_h[:, None] * NV + offs_v[None, :], dv, mask=mask_v)


def _meta(k: int, att: Tensor, values: Tensor) -> dict:
    nh, nd = att.shape
    nv = values.shape[2]
    acc = tl.float64 if att.dtype == torch.float64 else tl.float32
    p2 = triton.next_power_of_2
    return dict(K=k, NH=nh, ND=nd, NV=nv, BH=p2(nh), BD=p2(nd), BV=p2(max(nv, 1)), SHARED=values.shape[1] == 1, ACC=acc)


def reverse_csr(idx: Tensor, n_src: int) -> tuple[Tensor, Tensor]:
    """(ptr (n_src + 1,), flat edge ids i·k + j grouped by source, in order) of an (P, k) map."""
    flat = idx.reshape(-1)
    valid = flat >= 0
    order = torch.argsort(torch.where(valid, flat, n_src), stable=True)[: int(valid.sum())]
    counts = torch.bincount(flat[valid], minlength=n_src)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)]), order


def triton_forward(inputs: tuple[Tensor, ...], slope: float) -> tuple[Tensor, Tensor]:
    """(α (P, k, H), out (P, H, V)); ``inputs`` as :func:`.gatv2_candidates_numba.new_outputs`
    (on CUDA or, under ``TRITON_INTERPRET=1``, on CPU).  Raises RuntimeError where Triton cannot
    run on the tensors' device (not installed, or CPU without the interpreter)."""
    t, idx, att, values = inputs[0], inputs[3], inputs[4], inputs[5]
    if not available(t.device):
        raise RuntimeError(f"Triton cannot run on {t.device} here (installed: {HAVE_TRITON})")
    n_pix, k = idx.shape
    alpha, out = new_outputs(inputs)
    if n_pix:
        _forward_kernel[(n_pix,)](*inputs, alpha, out, t.new_full((1,), slope), **_meta(k, att, values))
    return alpha, out


def triton_backward(
    inputs: tuple[Tensor, ...], alpha: Tensor, g_alpha: Tensor, g_out: Tensor, slope: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(∂t, ∂s, ∂ez, ∂att, ∂values); arguments as :func:`.gatv2_candidates_numba.numba_backward`."""
    t, s, _, idx, att, values = inputs
    n_pix, k = idx.shape
    meta = _meta(k, att, values)
    dt, ds, dez, dv = new_grads(inputs)
    datt = t.new_zeros((n_pix, *att.shape))
    if n_pix:
        args = (*inputs, alpha, g_alpha, g_out, dt, dez, datt, t.new_full((1,), slope))
        _backward_pixel_kernel[(n_pix,)](*args, **meta)
    if s.shape[0]:
        ptr, edges = reverse_csr(idx, s.shape[0])
        _backward_source_kernel[(s.shape[0],)](ptr, edges, alpha, g_out, dez, ds, dv, **meta)
    return dt, ds, dez, datt.sum(0), dv


__all__ = ["available", "triton_forward", "triton_backward", "reverse_csr"]
