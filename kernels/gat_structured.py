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

import torch
import torch.nn.functional as F
from torch import Tensor

from .gat_params import GATConvParams
from .gat_sparse import csr_attention
from .gat_structured_numba import numba_backward, numba_forward
from .structured_topology import SQRT2, StructuredTopology

# --------------------------------------------------------------------------------------------
# Reference: plain torch ops (any device)
# --------------------------------------------------------------------------------------------
_OFFSETS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]


def structured_attention_torch(
    z: Tensor, a_src: Tensor, a_dst: Tensor, c: Tensor,  # the layer's projections
    topo: StructuredTopology, mean: bool, negative_slope: float = 0.2,
) -> Tensor:  # fmt: skip
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
        e = lrelu(a_src[n_pix + k] + a_dst[:n_pix] + near_d[:, None] * c).masked_fill(
            ~has[:, None], float("-inf")
        )
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


class _FusedStructuredAttention(torch.autograd.Function):
    """Fused forward/backward; saves only the inputs and the (nodes, H) log-sum-exp."""

    @staticmethod
    def forward(ctx, z, a_src, a_dst, c, topo, mean, slope, impl):
        z, a_src, a_dst, c = (t.contiguous() for t in (z, a_src, a_dst, c))
        if impl == "numba":
            out, lse = numba_forward(z, a_src, a_dst, c, topo, mean, slope)
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
            dz, d_asrc, d_adst, dc = numba_backward(
                grad, z, a_src, a_dst, c, lse, ctx.topo, ctx.mean, ctx.slope
            )
        else:
            from . import gat_triton

            dz, d_asrc, d_adst, dc = gat_triton.backward(
                grad, z, a_src, a_dst, c, lse, ctx.topo, ctx.mean, ctx.slope
            )
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
    z: Tensor, a_src: Tensor, a_dst: Tensor, c: Tensor,  # the layer's projections
    topo: StructuredTopology, mean: bool, negative_slope: float = 0.2, impl: str | None = None,
) -> Tensor:  # fmt: skip
    """Per-node attention-weighted sums on the structured graph; (nodes, H*C) or (nodes, C).

    ``z`` (nodes, H, C), ``a_src``/``a_dst`` (nodes, H), ``c`` (H,) edge constants; no bias.
    ``impl``: "numba" (CPU), "triton" (CUDA), "torch" (any device) or None for the default.
    """
    impl = impl or default_impl(z.device, z.dtype)
    if topo.grid_scale != 1.0:  # stored distances are in units of grid_scale (structured_topology)
        c = c * topo.grid_scale
    if impl == "torch":
        return structured_attention_torch(z, a_src, a_dst, c, topo, mean, negative_slope)
    if impl not in ("numba", "triton"):
        raise ValueError(f"unknown structured implementation {impl!r}")
    return _FusedStructuredAttention.apply(z, a_src, a_dst, c, topo, bool(mean), float(negative_slope), impl)


def gat_conv_structured(
    params: GATConvParams,
    x: Tensor | None,
    topo: StructuredTopology,
    impl: str | None = None,
    projected: tuple[Tensor, Tensor, Tensor] | None = None,
) -> Tensor:
    """One GAT layer on the structured graph; x is (P + N, F) in the explicit node order.

    ``projected`` (optional) replaces ``params.project(x)``: (z, a_src, a_dst) computed by the
    caller, e.g. from only the non-zero input columns (:meth:`GATConvParams.project`).
    """
    z, a_src, a_dst = params.project(x) if projected is None else projected
    out = structured_attention(
        z, a_src, a_dst, params.edge_constant(), topo, not params.concat, params.negative_slope, impl
    )
    return out.add_(params.bias)  # in place: the output is fresh and not saved for backward


__all__ = ["structured_attention", "structured_attention_torch", "gat_conv_structured"]
