"""Fused Triton kernels of the structured GAT attention (CUDA): the GPU twin of the Numba kernels.

Same math as :mod:`.gat_structured` (whose torch reference it is tested against):

.. math::
    e^h_{ij} = \\mathrm{LeakyReLU}(s^h_j + t^h_i + d_{ij} c_h),\\quad
    \\mathrm{lse}^h_i = \\log\\textstyle\\sum_j e^{e^h_{ij}},\\quad
    \\mathbf{x}'^h_i = \\textstyle\\sum_j e^{e^h_{ij} - \\mathrm{lse}^h_i}\\,\\mathbf{z}^h_j

One program per destination node holds a (heads × channels) tile; the pixel kernels walk the 3×3
stencil, the nearest EDS node and the extra EDS nodes on the pixel with an online softmax; the
EDS kernels walk their CSR source lists.  The backward recomputes the attention from ``lse`` and
is gather-only (no atomics, deterministic): pass A per destination (D_i = Σ_j α_ij g_i·z_j,
∂a_dst, the edge-constant share), pass B per source (∂z, ∂a_src), valid because the graph is
symmetric.  Importing this module never fails; :func:`available` says whether Triton is usable.
``TRITON_INTERPRET=1`` runs the same kernels on CPU tensors (used by the tests when Triton is
installed).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

try:  # Triton is optional: CUDA builds of torch ship it, the CPU build does not
    import triton
    import triton.language as tl

    HAVE_TRITON = True
except ImportError:  # pragma: no cover - depends on the environment
    triton = tl = None
    HAVE_TRITON = False


def available(device: torch.device | None = None) -> bool:
    """Triton is importable and can run here: on CUDA, or on CPU under ``TRITON_INTERPRET=1``."""
    if not HAVE_TRITON:
        return False
    if device is not None and torch.device(device).type == "cpu":
        return os.environ.get("TRITON_INTERPRET") == "1"
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


# fmt: off
# (kernel signatures, launches and their argument lists stay one per line: they read as the
# formulas they implement; `ruff format` leaves the rest of the file alone from here)
if HAVE_TRITON:

    @triton.jit
    def _lanes(c_ptr, NH: tl.constexpr, CH: tl.constexpr, BH: tl.constexpr, BC: tl.constexpr):
        """Head and channel lanes of one node's tile, their masks, and the heads' edge constants."""
        offs_h = tl.arange(0, BH)
        offs_c = tl.arange(0, BC)
        mask_h = offs_h < NH
        mask = mask_h[:, None] & (offs_c[None, :] < CH)
        c = tl.load(c_ptr + offs_h, mask=mask_h, other=0.0).to(tl.float32)
        return offs_h, offs_c, mask_h, mask, c

    @triton.jit
    def _heads(ptr, node, offs_h, mask_h, NH: tl.constexpr):
        """One node's per-head row (H,) of an (nodes, H) array, in float32."""
        return tl.load(ptr + node * NH + offs_h, mask=mask_h, other=0.0).to(tl.float32)

    @triton.jit
    def _store_heads(ptr, node, value, offs_h, mask_h, NH: tl.constexpr):
        tl.store(ptr + node * NH + offs_h, value, mask=mask_h)

    @triton.jit
    def _stencil(i, r, col, HH, WW, T: tl.constexpr):
        """Grid neighbour T (0..8, 4 = the pixel itself) of pixel i at (r, col): (node, distance,
        inside the image); outside the image the node is i itself, masked by ``valid``."""
        dr: tl.constexpr = T // 3 - 1
        dc: tl.constexpr = T % 3 - 1
        dist: tl.constexpr = 1.0 + 0.41421356237309515 * (1 - T % 2)  # straight 1, diagonal sqrt(2)
        valid = (r + dr >= 0) & (r + dr < HH) & (col + dc >= 0) & (col + dc < WW)
        return tl.where(valid, i + dr * WW + dc, i), dist, valid

    @triton.jit
    def _tile(ptr, node, offs_h, offs_c, mask, NH: tl.constexpr, CH: tl.constexpr):
        """Load the (heads, channels) tile of a (nodes, H, C) tensor at ``node``."""
        return tl.load(ptr + node * (NH * CH) + offs_h[:, None] * CH + offs_c[None, :], mask=mask, other=0.0).to(tl.float32)

    @triton.jit
    def _grad_tile(ptr, node, offs_h, offs_c, mask, NH: tl.constexpr, CH: tl.constexpr, MEAN: tl.constexpr):
        """Upstream gradient of node as a (heads, channels) tile (broadcast over heads if MEAN)."""
        if MEAN:
            return tl.load(ptr + node * CH + offs_h[:, None] * 0 + offs_c[None, :], mask=mask, other=0.0).to(tl.float32) / NH
        else:
            return tl.load(ptr + node * (NH * CH) + offs_h[:, None] * CH + offs_c[None, :], mask=mask, other=0.0).to(tl.float32)

    @triton.jit
    def _logit(a_src_ptr, j, a_dst_i, c, d, offs_h, mask_h, slope, NH: tl.constexpr):
        """Pre-activation score and LeakyReLU slope factor of edge j -> i for every head."""
        pre = _heads(a_src_ptr, j, offs_h, mask_h, NH) + a_dst_i + d * c
        sl = tl.where(pre > 0, 1.0, slope)
        return pre * sl, sl

    @triton.jit
    def _pixel_program(c_ptr, HH, WW, NH: tl.constexpr, CH: tl.constexpr, BH: tl.constexpr, BC: tl.constexpr):
        """This program's pixel (node, row, column) and its lanes (:func:`_lanes`)."""
        i = tl.program_id(0).to(tl.int64)
        offs_h, offs_c, mask_h, mask, c = _lanes(c_ptr, NH, CH, BH, BC)
        return i, (i // WW) % HH, i % WW, offs_h, offs_c, mask_h, mask, c

    @triton.jit
    def _csr_program(c_ptr, offset, NH: tl.constexpr, CH: tl.constexpr, BH: tl.constexpr, BC: tl.constexpr):
        """This program's CSR row k, its node offset + k and its lanes (:func:`_lanes`)."""
        k = tl.program_id(0).to(tl.int64)
        offs_h, offs_c, mask_h, mask, c = _lanes(c_ptr, NH, CH, BH, BC)
        return k, offset + k, offs_h, offs_c, mask_h, mask, c

    @triton.jit
    def _pixel_source(i, r, col, HH, WW, n_pix, near_ptr, near_d_ptr, U: tl.constexpr):
        """Source U (0..9) of pixel i in the order every pixel kernel visits them: 0 the pixel
        itself, 1..8 its grid neighbours (stencil T = 0..3, 5..8), 9 its nearest EDS node:
        (node, distance, present); an absent source's node is i itself, masked by ``present``."""
        if U == 0:
            return i, 0.0, i >= 0
        elif U == 9:
            k = tl.load(near_ptr + i)
            return tl.where(k >= 0, n_pix + k, i), tl.load(near_d_ptr + i).to(tl.float32), k >= 0
        else:
            return _stencil(i, r, col, HH, WW, U - 1 + U // 5)

    @triton.jit
    def _listed(t, base, src_ptr, dist_ptr):
        """Entry t of a CSR source list: (node base + src[t], distance dist[t])."""
        return base + tl.load(src_ptr + t), tl.load(dist_ptr + t).to(tl.float32)

    @triton.jit
    def _fwd_start(a_dst_ptr, i, offs_h, mask_h, NH: tl.constexpr, BH: tl.constexpr, BC: tl.constexpr):
        """Node i's a_dst row and the empty online-softmax state (max, sum, weighted sum)."""
        a_dst_i = _heads(a_dst_ptr, i, offs_h, mask_h, NH)
        return a_dst_i, tl.full((BH,), float("-inf"), tl.float32), tl.zeros((BH,), tl.float32), tl.zeros((BH, BC), tl.float32)

    @triton.jit
    def _fwd_visit(j, d, valid, m, s, acc, z_ptr, a_src_ptr, a_dst_i, c, offs_h, offs_c, mask_h, mask, slope, NH: tl.constexpr, CH: tl.constexpr):
        """Online-softmax update of (max, sum, weighted sum) with source j (skipped if not valid)."""
        e, _ = _logit(a_src_ptr, j, a_dst_i, c, d, offs_h, mask_h, slope, NH)
        e = tl.where(valid, e, float("-inf"))
        m_new = tl.maximum(m, e)
        keep = tl.exp(m - m_new)
        p = tl.exp(e - m_new)
        zj = _tile(z_ptr, j, offs_h, offs_c, mask, NH, CH)  # j is always in range; invalid p is 0
        return m_new, s * keep + p, acc * keep[:, None] + p[:, None] * zj

    @triton.jit
    def _fwd_store(i, m, s, acc, out_ptr, lse_ptr, offs_h, offs_c, mask_h, mask, NH: tl.constexpr, CH: tl.constexpr, MEAN: tl.constexpr):
        tl.store(lse_ptr + i * NH + offs_h, m + tl.log(s), mask=mask_h)
        res = acc / s[:, None]
        if MEAN:
            tl.store(out_ptr + i * CH + offs_c, tl.sum(tl.where(mask, res, 0.0), axis=0) / NH, mask=offs_c < CH)
        else:
            tl.store(out_ptr + i * (NH * CH) + offs_h[:, None] * CH + offs_c[None, :], res, mask=mask)

    @triton.jit
    def _pixels_forward_kernel(
        z_ptr, a_src_ptr, a_dst_ptr, c_ptr, near_ptr, near_d_ptr, xptr_ptr, xeds_ptr, x_d_ptr, out_ptr, lse_ptr,
        HH, WW, n_pix, slope,
        NH: tl.constexpr, CH: tl.constexpr, BH: tl.constexpr, BC: tl.constexpr, MEAN: tl.constexpr,
    ):
        i, r, col, offs_h, offs_c, mask_h, mask, c = _pixel_program(c_ptr, HH, WW, NH, CH, BH, BC)
        a_dst_i, m, s, acc = _fwd_start(a_dst_ptr, i, offs_h, mask_h, NH, BH, BC)
        for u in tl.static_range(10):
            j, d, valid = _pixel_source(i, r, col, HH, WW, n_pix, near_ptr, near_d_ptr, u)
            m, s, acc = _fwd_visit(j, d, valid, m, s, acc, z_ptr, a_src_ptr, a_dst_i, c, offs_h, offs_c, mask_h, mask, slope, NH, CH)
        for t in range(tl.load(xptr_ptr + i), tl.load(xptr_ptr + i + 1)):
            j, d = _listed(t, n_pix, xeds_ptr, x_d_ptr)
            m, s, acc = _fwd_visit(j, d, j >= 0, m, s, acc, z_ptr, a_src_ptr, a_dst_i, c, offs_h, offs_c, mask_h, mask, slope, NH, CH)
        _fwd_store(i, m, s, acc, out_ptr, lse_ptr, offs_h, offs_c, mask_h, mask, NH, CH, MEAN)

    @triton.jit
    def _csr_forward_kernel(
        z_ptr, a_src_ptr, a_dst_ptr, c_ptr, ptr_ptr, src_ptr, dist_ptr, out_ptr, lse_ptr, offset, slope,
        NH: tl.constexpr, CH: tl.constexpr, BH: tl.constexpr, BC: tl.constexpr, MEAN: tl.constexpr,
    ):
        k, i, offs_h, offs_c, mask_h, mask, c = _csr_program(c_ptr, offset, NH, CH, BH, BC)
        a_dst_i, m, s, acc = _fwd_start(a_dst_ptr, i, offs_h, mask_h, NH, BH, BC)
        for t in range(tl.load(ptr_ptr + k), tl.load(ptr_ptr + k + 1)):
            j, d = _listed(t, 0, src_ptr, dist_ptr)
            m, s, acc = _fwd_visit(j, d, j >= 0, m, s, acc, z_ptr, a_src_ptr, a_dst_i, c, offs_h, offs_c, mask_h, mask, slope, NH, CH)
        _fwd_store(i, m, s, acc, out_ptr, lse_ptr, offs_h, offs_c, mask_h, mask, NH, CH, MEAN)

    # -- backward ---------------------------------------------------------------------------
    @triton.jit
    def _dst_start(i, a_dst_ptr, lse_ptr, g_ptr, offs_h, offs_c, mask_h, mask, NH: tl.constexpr, CH: tl.constexpr, BH: tl.constexpr, MEAN: tl.constexpr):
        """Pass A's view of destination i (a_dst, lse, upstream gradient) and its zero (D, ∂a_dst, dc)."""
        a_dst_i = _heads(a_dst_ptr, i, offs_h, mask_h, NH)
        lse_i = _heads(lse_ptr, i, offs_h, mask_h, NH)
        gi = _grad_tile(g_ptr, i, offs_h, offs_c, mask, NH, CH, MEAN)
        return a_dst_i, lse_i, gi, tl.zeros((BH,), tl.float32), tl.zeros((BH,), tl.float32), tl.zeros((BH,), tl.float32)

    @triton.jit
    def _dst_visit(j, d, valid, D, da, dcc, PASS: tl.constexpr, gi, lse_i, z_ptr, a_src_ptr, a_dst_i, c, offs_h, offs_c, mask_h, mask, slope, NH: tl.constexpr, CH: tl.constexpr):
        """Pass A, destination side.  PASS 0 accumulates D; PASS 1 accumulates ∂a_dst and dc."""
        e, sl = _logit(a_src_ptr, j, a_dst_i, c, d, offs_h, mask_h, slope, NH)
        al = tl.where(valid & mask_h, tl.exp(e - lse_i), 0.0)
        dot = tl.sum(gi * _tile(z_ptr, j, offs_h, offs_c, mask, NH, CH), axis=1)
        if PASS == 0:
            D += al * dot
        else:
            dp = sl * al * (dot - D)
            da += dp
            dcc += dp * d
        return D, da, dcc

    @triton.jit
    def _dst_store(i, D, da, dcc, D_ptr, da_ptr, dc_ptr, offs_h, mask_h, NH: tl.constexpr):
        _store_heads(D_ptr, i, D, offs_h, mask_h, NH)
        _store_heads(da_ptr, i, da, offs_h, mask_h, NH)
        _store_heads(dc_ptr, i, dcc, offs_h, mask_h, NH)

    @triton.jit
    def _src_start(j, a_src_ptr, z_ptr, offs_h, offs_c, mask, mask_h, NH: tl.constexpr, CH: tl.constexpr, BH: tl.constexpr, BC: tl.constexpr):
        """Pass B's view of source j (a_src, z tile) and its zero (∂a_src, ∂z)."""
        a_src_j = _heads(a_src_ptr, j, offs_h, mask_h, NH)
        zj = _tile(z_ptr, j, offs_h, offs_c, mask, NH, CH)
        return a_src_j, zj, tl.zeros((BH,), tl.float32), tl.zeros((BH, BC), tl.float32)

    @triton.jit
    def _src_visit(i, d, valid, da, dz, zj, a_src_j, g_ptr, a_dst_ptr, lse_ptr, D_ptr, c, offs_h, offs_c, mask_h, mask, slope, NH: tl.constexpr, CH: tl.constexpr, MEAN: tl.constexpr):
        """Pass B, source side: the contribution of edge j -> i to ∂a_src[j] and ∂z_j."""
        pre = a_src_j + _heads(a_dst_ptr, i, offs_h, mask_h, NH) + d * c
        sl = tl.where(pre > 0, 1.0, slope)
        lse_i = _heads(lse_ptr, i, offs_h, mask_h, NH)
        al = tl.where(valid & mask_h, tl.exp(pre * sl - lse_i), 0.0)
        gi = _grad_tile(g_ptr, i, offs_h, offs_c, mask, NH, CH, MEAN)
        dot = tl.sum(gi * zj, axis=1)
        D_i = tl.load(D_ptr + i * NH + offs_h, mask=mask_h, other=0.0)
        da += sl * al * (dot - D_i)
        dz += al[:, None] * gi
        return da, dz

    @triton.jit
    def _src_store(j, da, dz, ds_ptr, dz_ptr, offs_h, offs_c, mask_h, mask, NH: tl.constexpr, CH: tl.constexpr):
        _store_heads(ds_ptr, j, da, offs_h, mask_h, NH)
        tl.store(dz_ptr + j * (NH * CH) + offs_h[:, None] * CH + offs_c[None, :], dz, mask=mask)

    @triton.jit
    def _pixels_backward_kernel(
        z_ptr, a_src_ptr, a_dst_ptr, c_ptr, near_ptr, near_d_ptr, xptr_ptr, xeds_ptr, x_d_ptr, g_ptr, lse_ptr, D_ptr, o1_ptr, o2_ptr,
        HH, WW, n_pix, slope,
        NH: tl.constexpr, CH: tl.constexpr, BH: tl.constexpr, BC: tl.constexpr, MEAN: tl.constexpr, SOURCES: tl.constexpr,
    ):
        """Pass A per destination pixel (writes D, ∂a_dst = o1, dc = o2) or, if SOURCES, pass B
        per source pixel (reads D, writes ∂z = o1, ∂a_src = o2)."""
        if SOURCES:
            j, r, col, offs_h, offs_c, mask_h, mask, c = _pixel_program(c_ptr, HH, WW, NH, CH, BH, BC)
            a_src_j, zj, da, dz = _src_start(j, a_src_ptr, z_ptr, offs_h, offs_c, mask, mask_h, NH, CH, BH, BC)
            for u in tl.static_range(10):
                i, d, valid = _pixel_source(j, r, col, HH, WW, n_pix, near_ptr, near_d_ptr, u)
                da, dz = _src_visit(i, d, valid, da, dz, zj, a_src_j, g_ptr, a_dst_ptr, lse_ptr, D_ptr, c, offs_h, offs_c, mask_h, mask, slope, NH, CH, MEAN)
            for t in range(tl.load(xptr_ptr + j), tl.load(xptr_ptr + j + 1)):
                i, d = _listed(t, n_pix, xeds_ptr, x_d_ptr)
                da, dz = _src_visit(i, d, j >= 0, da, dz, zj, a_src_j, g_ptr, a_dst_ptr, lse_ptr, D_ptr, c, offs_h, offs_c, mask_h, mask, slope, NH, CH, MEAN)
            _src_store(j, da, dz, o2_ptr, o1_ptr, offs_h, offs_c, mask_h, mask, NH, CH)
        else:
            i, r, col, offs_h, offs_c, mask_h, mask, c = _pixel_program(c_ptr, HH, WW, NH, CH, BH, BC)
            a_dst_i, lse_i, gi, D, da, dcc = _dst_start(i, a_dst_ptr, lse_ptr, g_ptr, offs_h, offs_c, mask_h, mask, NH, CH, BH, MEAN)
            x0 = tl.load(xptr_ptr + i)
            x1 = tl.load(xptr_ptr + i + 1)
            for p in tl.static_range(2):
                for u in tl.static_range(10):
                    j, d, valid = _pixel_source(i, r, col, HH, WW, n_pix, near_ptr, near_d_ptr, u)
                    D, da, dcc = _dst_visit(j, d, valid, D, da, dcc, p, gi, lse_i, z_ptr, a_src_ptr, a_dst_i, c, offs_h, offs_c, mask_h, mask, slope, NH, CH)
                for t in range(x0, x1):
                    j, d = _listed(t, n_pix, xeds_ptr, x_d_ptr)
                    D, da, dcc = _dst_visit(j, d, i >= 0, D, da, dcc, p, gi, lse_i, z_ptr, a_src_ptr, a_dst_i, c, offs_h, offs_c, mask_h, mask, slope, NH, CH)
            _dst_store(i, D, da, dcc, D_ptr, o1_ptr, o2_ptr, offs_h, mask_h, NH)

    @triton.jit
    def _csr_backward_kernel(
        z_ptr, a_src_ptr, a_dst_ptr, c_ptr, ptr_ptr, src_ptr, dist_ptr, g_ptr, lse_ptr, D_ptr, o1_ptr, o2_ptr, offset, slope,
        NH: tl.constexpr, CH: tl.constexpr, BH: tl.constexpr, BC: tl.constexpr, MEAN: tl.constexpr, SOURCES: tl.constexpr,
    ):
        """:func:`_pixels_backward_kernel`'s two passes for the EDS nodes, over their CSR lists."""
        if SOURCES:
            k, j, offs_h, offs_c, mask_h, mask, c = _csr_program(c_ptr, offset, NH, CH, BH, BC)
            a_src_j, zj, da, dz = _src_start(j, a_src_ptr, z_ptr, offs_h, offs_c, mask, mask_h, NH, CH, BH, BC)
            for t in range(tl.load(ptr_ptr + k), tl.load(ptr_ptr + k + 1)):
                i, d = _listed(t, 0, src_ptr, dist_ptr)
                da, dz = _src_visit(i, d, j >= 0, da, dz, zj, a_src_j, g_ptr, a_dst_ptr, lse_ptr, D_ptr, c, offs_h, offs_c, mask_h, mask, slope, NH, CH, MEAN)
            _src_store(j, da, dz, o2_ptr, o1_ptr, offs_h, offs_c, mask_h, mask, NH, CH)
        else:
            k, i, offs_h, offs_c, mask_h, mask, c = _csr_program(c_ptr, offset, NH, CH, BH, BC)
            a_dst_i, lse_i, gi, D, da, dcc = _dst_start(i, a_dst_ptr, lse_ptr, g_ptr, offs_h, offs_c, mask_h, mask, NH, CH, BH, MEAN)
            start = tl.load(ptr_ptr + k)
            end = tl.load(ptr_ptr + k + 1)
            for p in tl.static_range(2):
                for t in range(start, end):
                    j, d = _listed(t, 0, src_ptr, dist_ptr)
                    D, da, dcc = _dst_visit(j, d, i >= 0, D, da, dcc, p, gi, lse_i, z_ptr, a_src_ptr, a_dst_i, c, offs_h, offs_c, mask_h, mask, slope, NH, CH)
            _dst_store(i, D, da, dcc, D_ptr, o1_ptr, o2_ptr, offs_h, mask_h, NH)

def _meta(z: Tensor, mean: bool) -> dict:
    nh, ch = z.shape[1], z.shape[2]
    return dict(NH=nh, CH=ch, BH=triton.next_power_of_2(nh), BC=triton.next_power_of_2(ch), MEAN=bool(mean))


def _launch(pixels_kernel, csr_kernel, z: Tensor, a_src: Tensor, a_dst: Tensor, c: Tensor, rest: tuple, topo, mean: bool, slope: float, **meta) -> None:
    """One program per pixel of ``pixels_kernel`` and one per EDS node of ``csr_kernel``, both on
    (z, a_src, a_dst, c, the topology's sources and distances, ``rest``); ``meta``: more constants."""
    near_d, x_d, e_d = topo.dists(z.dtype)
    meta.update(_meta(z, mean))
    if topo.n_pixels:
        pix = (topo.nearest, near_d, topo.extra_ptr, topo.extra_eds, x_d)
        pixels_kernel[(topo.n_pixels,)](z, a_src, a_dst, c, *pix, *rest, topo.height, topo.width, topo.n_pixels, float(slope), **meta)
    if topo.n_eds:
        csr = topo.eds_csr
        csr_kernel[(topo.n_eds,)](z, a_src, a_dst, c, csr.ptr, csr.src, e_d, *rest, topo.n_pixels, float(slope), **meta)


def forward(z: Tensor, a_src: Tensor, a_dst: Tensor, c: Tensor, topo, mean: bool, slope: float) -> tuple[Tensor, Tensor]:
    """(out (nodes, H*C or C), lse (nodes, H)); accumulates in float32 whatever the input dtype."""
    if not HAVE_TRITON:
        raise RuntimeError("Triton is not installed")
    nh, ch = z.shape[1], z.shape[2]
    n_nodes = z.shape[0]
    out = torch.empty((n_nodes, ch if mean else nh * ch), dtype=z.dtype, device=z.device)
    lse = torch.empty((n_nodes, nh), dtype=torch.float32, device=z.device)
    _launch(_pixels_forward_kernel, _csr_forward_kernel, z, a_src, a_dst, c, (out, lse), topo, mean, slope)
    return out, lse


def backward(grad: Tensor, z: Tensor, a_src: Tensor, a_dst: Tensor, c: Tensor, lse: Tensor, topo, mean: bool, slope: float):
    """(∂z, ∂a_src, ∂a_dst, ∂c) by recomputing the attention from ``lse``."""
    nh = z.shape[1]
    n_nodes = z.shape[0]
    f32 = dict(dtype=torch.float32, device=z.device)
    dz = torch.empty(z.shape, **f32)
    d_asrc = torch.empty((n_nodes, nh), **f32)
    d_adst = torch.empty((n_nodes, nh), **f32)
    dD = torch.empty((n_nodes, nh), **f32)
    dcd = torch.empty((n_nodes, nh), **f32)
    inputs = (z, a_src, a_dst, c)
    kernels = (_pixels_backward_kernel, _csr_backward_kernel)
    _launch(*kernels, *inputs, (grad, lse, dD, d_adst, dcd), topo, mean, slope, SOURCES=False)  # pass A
    _launch(*kernels, *inputs, (grad, lse, dD, dz, d_asrc), topo, mean, slope, SOURCES=True)  # pass B
    dt = z.dtype
    return dz.to(dt), d_asrc.to(dt), d_adst.to(dt), dcd.sum(0).to(dt)


__all__ = ["available", "forward", "backward"]
