"""GATv2 attention of each pixel over its k candidate EDS points (the fusion model's cross layer).

Dynamic attention (Brody et al. 2022, "How attentive are graph attention networks?"; PyG's
``GATv2Conv`` with ``edge_dim``, ``share_weights=False``, no self-loops), per pixel i, candidate
j ∈ N(i) (its k nearest EDS points) and head h:

.. math::
    e^h_{ij} = \\mathbf{a}_h^\\top \\mathrm{LeakyReLU}\\big(W_t \\mathbf{x}_i + \\mathbf{b}_t
               + W_s \\mathbf{x}_j + \\mathbf{b}_s + W_e \\mathbf{e}_{ij}\\big)_h,\\qquad
    \\alpha^h_{ij} = \\operatorname{softmax}_{j \\in N(i)} e^h_{ij},\\qquad
    \\mathbf{o}^h_i = \\textstyle\\sum_{j} \\alpha^h_{ij}\\,\\mathbf{v}^h_j

Unlike GATConv's static attention, the pixel's own features enter the non-linearity with the
candidate's, so a pixel can prefer the EDS point whose BSE context matches its own.  Candidates
with index −1 (fields with fewer than k points) get α = 0; a pixel without any gets α = 0, o = 0.
The values v_j are per source, one set shared by all heads (the fusion model's class
probabilities) or one per head (PyG's messages W_s x_j + b_s).  Shapes stay compact: the
candidate list is an (P, k) index map; the projections t = W_t x + b_t (P, H·D),
s = W_s x + b_s (N, H·D) and ez = W_e e (P, k, H·D) are torch matmuls, and
:func:`gatv2_candidates` fuses the rest.

Three implementations, chosen by ``impl``: fused Numba kernels (CPU, :mod:`.gatv2_candidates_numba`),
fused Triton kernels (CUDA, :mod:`.gatv2_candidates_triton`) and plain torch ops (any device; the
reference, tested equal to PyG's ``GATv2Conv``).  The fused ones keep no per-edge tensor but
α (P, k, H): the backward recomputes z, so their memory is O(P · (k·H + H·V)) beyond the
inputs and their gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .gat_structured import default_impl  # numba on CPU, triton on CUDA (float32), else torch
from .gatv2_candidates_numba import numba_backward, numba_forward

IMPLS = ("torch", "numba", "triton")


def gatv2_candidates_torch(
    t: Tensor, s: Tensor, ez: Tensor, idx: Tensor, att: Tensor, values: Tensor, negative_slope: float = 0.2
) -> tuple[Tensor, Tensor]:
    """The plain-torch reference of :func:`gatv2_candidates` (same arguments and results)."""
    heads, dim = att.shape
    has = idx >= 0
    j = idx.clamp_min(0)
    sj = s[j] if s.shape[0] else s.new_zeros((*idx.shape, s.shape[1]))
    z = F.leaky_relu(t[:, None, :] + sj + ez, negative_slope).view(*idx.shape, heads, dim)
    e = (z * att).sum(-1).masked_fill(~has[..., None], float("-inf"))
    e = e.masked_fill(~has.any(1)[:, None, None], 0.0)  # no candidate: a finite row, masked below
    alpha = torch.softmax(e, dim=1) * has[..., None]
    vj = values[j] if values.shape[0] else values.new_zeros((*idx.shape, *values.shape[1:]))
    return alpha, (alpha[..., None] * vj).sum(1)


class _FusedCandidates(torch.autograd.Function):
    """Fused forward/backward (Numba or Triton); saves the inputs and α only."""

    @staticmethod
    def forward(ctx, t, s, ez, idx, att, values, slope, impl):
        inputs = tuple(x.contiguous() for x in (t, s, ez, idx, att, values))
        alpha, out = _kernels(impl)[0](inputs, slope)
        ctx.save_for_backward(*inputs, alpha)
        ctx.slope, ctx.impl = slope, impl
        return alpha, out

    @staticmethod
    def backward(ctx, g_alpha, g_out):
        *inputs, alpha = ctx.saved_tensors
        g_alpha = torch.zeros_like(alpha) if g_alpha is None else g_alpha.contiguous()
        if g_out is None:
            g_out = alpha.new_zeros((*alpha.shape[::2], inputs[5].shape[2]))
        args = (tuple(inputs), alpha, g_alpha, g_out.contiguous(), ctx.slope)
        dt, ds, dez, datt, dv = _kernels(ctx.impl)[1](*args)
        return dt, ds, dez, None, datt, dv, None, None


def _kernels(impl: str):
    """(forward, backward) of a fused implementation."""
    if impl == "triton":
        from . import gatv2_candidates_triton

        return gatv2_candidates_triton.triton_forward, gatv2_candidates_triton.triton_backward
    return numba_forward, numba_backward


def gatv2_candidates(
    t: Tensor, s: Tensor, ez: Tensor, idx: Tensor, att: Tensor, values: Tensor,
    negative_slope: float = 0.2, impl: str | None = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(α (P, k, H), o (P, H, V)) of each pixel over its candidates (module docstring).

    ``t`` (P, H·D) pixel projections W_t x_i + b_t, ``s`` (N, H·D) EDS-point projections
    W_s x_j + b_s, ``ez`` (P, k, H·D) edge projections W_e e_ij, ``idx`` (P, k) int64 candidate
    indices into the N points (−1 = none), ``att`` (H, D), ``values`` (N, 1 or H, V): the
    messages, shared by the heads or one per head; all floats of one dtype on one device.
    ``impl``: "numba" (CPU), "triton" (CUDA, or CPU under ``TRITON_INTERPRET=1``), "torch" (any
    device) or None for :func:`default_impl`.  Differentiable in every float argument.  Raises
    ValueError for an unknown ``impl`` or a ``values`` whose head axis is not 1 or H.
    """
    impl = impl or default_impl(t.device, t.dtype)
    if impl not in IMPLS:
        raise ValueError(f"unknown candidate-attention implementation {impl!r}; expected one of {IMPLS}")
    if values.dim() != 3 or values.shape[1] not in (1, att.shape[0]):
        raise ValueError(f"values must be (N, 1 or {att.shape[0]}, V), got {tuple(values.shape)}")
    if impl == "torch":
        return gatv2_candidates_torch(t, s, ez, idx, att, values, negative_slope)
    return _FusedCandidates.apply(t, s, ez, idx, att, values, float(negative_slope), impl)


def gatv2_candidate_attention(
    x_dst: Tensor, x_src: Tensor, idx: Tensor, edge: Tensor,  # the graph
    w_dst: Tensor, b_dst: Tensor, w_src: Tensor, b_src: Tensor, w_edge: Tensor, att: Tensor,  # the layer
    negative_slope: float = 0.2, impl: str | None = None,
) -> Tensor:  # fmt: skip
    """(P, k, H) attention of each pixel over its candidates (module docstring).

    ``x_dst`` (P, C_t) pixel features, ``x_src`` (N, C_s) EDS-point features, ``idx`` (P, k) int64
    candidate indices into ``x_src`` (−1 = none), ``edge`` (P, k, E) edge features; ``w_dst``
    (H·D, C_t), ``b_dst`` (H·D,), ``w_src`` (H·D, C_s), ``b_src`` (H·D,), ``w_edge`` (H·D, E),
    ``att`` (H, D).  A pixel without any candidate gets all-zero weights.  ``impl`` as in
    :func:`gatv2_candidates`.
    """
    t, s, ez = F.linear(x_dst, w_dst, b_dst), F.linear(x_src, w_src, b_src), F.linear(edge, w_edge)
    none = s.new_zeros((s.shape[0], 1, 0))
    return gatv2_candidates(t, s, ez, idx, att, none, negative_slope, impl)[0]


__all__ = ["gatv2_candidates", "gatv2_candidates_torch", "gatv2_candidate_attention", "default_impl"]
