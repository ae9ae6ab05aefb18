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
candidate list is an (P, k) index map.  :func:`gatv2_candidates` takes the projections
t = W_t x + b_t (P, H·D), s = W_s x + b_s (N, H·D) and ez = W_e e (P, k, H·D);
:func:`gatv2_candidates_layer` takes the pixel features x (P, C) and the edge features
e (P, k, E) with W_t, b_t, W_e instead, so that the fused Numba kernels compute t and ez inside
and never store them (the edge projection was most of the layer's memory).

Three implementations, chosen by ``impl``: fused Numba kernels (CPU, :mod:`.gatv2_candidates_numba`),
fused Triton kernels (CUDA, :mod:`.gatv2_candidates_triton`) and plain torch ops (any device; the
reference, tested equal to PyG's ``GATv2Conv``).  The Numba ones keep no per-edge tensor but α
(P, k, H) and one sign bit per edge and channel, and their backward neither recomputes z nor
uses atomics; Triton's keep α and recompute z (their inputs being t, s and ez).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .gat_structured import default_impl  # numba on CPU, triton on CUDA (float32), else torch
from .gatv2_candidates_numba import numba_layer_backward, numba_layer_forward

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
    """Fused Triton forward/backward of :func:`gatv2_candidates`; saves the inputs and α only."""

    @staticmethod
    def forward(ctx, t, s, ez, idx, att, values, slope):
        from .gatv2_candidates_triton import triton_forward

        inputs = tuple(x.contiguous() for x in (t, s, ez, idx, att, values))
        alpha, out = triton_forward(inputs, slope)
        ctx.save_for_backward(*inputs, alpha)
        ctx.slope = slope
        return alpha, out

    @staticmethod
    def backward(ctx, g_alpha, g_out):
        from .gatv2_candidates_triton import triton_backward

        *inputs, alpha = ctx.saved_tensors
        g_alpha = torch.zeros_like(alpha) if g_alpha is None else g_alpha.contiguous()
        if g_out is None:
            g_out = alpha.new_zeros((*alpha.shape[::2], inputs[5].shape[2]))
        dt, ds, dez, datt, dv = triton_backward(tuple(inputs), alpha, g_alpha, g_out.contiguous(), ctx.slope)
        return dt, ds, dez, None, datt, dv, None


class _NumbaLayer(torch.autograd.Function):
    """Fused Numba forward/backward, projections included (:mod:`.gatv2_candidates_numba`); saves
    the inputs, α and the LeakyReLU's sign bits only."""

    @staticmethod
    def forward(ctx, x, w_t, b_t, s, edge, w_e, idx, att, values, slope):
        inputs = tuple(
            None if a is None else a.contiguous() for a in (x, w_t, b_t, s, edge, w_e, idx, att, values)
        )
        # no input needs a gradient (prediction): the sign bits, which only the backward reads,
        # are not formed and nothing is saved
        grad = any(ctx.needs_input_grad)
        alpha, out, bits = numba_layer_forward(*inputs, slope, want_bits=grad)
        if grad:
            ctx.save_for_backward(*inputs, alpha, bits)
        ctx.slope = slope
        return alpha, out

    @staticmethod
    def backward(ctx, g_alpha, g_out):
        *saved, alpha, bits = ctx.saved_tensors
        needs = ctx.needs_input_grad[:9]
        dx, dwt, dbt, ds, de, dwe, datt, dv = numba_layer_backward(
            tuple(saved), alpha, bits, g_alpha, g_out, ctx.slope, needs
        )
        return dx, dwt, dbt, ds, de, dwe, None, datt, dv, None


def _check(t: Tensor, att: Tensor, values: Tensor, impl: str | None) -> str:
    """The implementation to run (``impl`` or the device's default); raises as :func:`gatv2_candidates`."""
    impl = impl or default_impl(t.device, t.dtype)
    if impl not in IMPLS:
        raise ValueError(f"unknown candidate-attention implementation {impl!r}; expected one of {IMPLS}")
    if values.dim() != 3 or values.shape[1] not in (1, att.shape[0]):
        raise ValueError(f"values must be (N, 1 or {att.shape[0]}, V), got {tuple(values.shape)}")
    return impl


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
    impl = _check(t, att, values, impl)
    if impl == "torch":
        return gatv2_candidates_torch(t, s, ez, idx, att, values, negative_slope)
    if impl == "numba":
        return _NumbaLayer.apply(t, None, None, s, ez, None, idx, att, values, float(negative_slope))
    return _FusedCandidates.apply(t, s, ez, idx, att, values, float(negative_slope))


def gatv2_candidates_layer(
    x_dst: Tensor, w_dst: Tensor, b_dst: Tensor | None, s: Tensor, edge: Tensor, w_edge: Tensor,
    idx: Tensor, att: Tensor, values: Tensor, negative_slope: float = 0.2, impl: str | None = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """:func:`gatv2_candidates` with t = W_t x + b_t and ez = W_e e taken as their inputs: ``x_dst``
    (P, C) pixel features, ``w_dst`` (H·D, C), ``b_dst`` (H·D,) or None, ``edge`` (P, k, E) edge
    features, ``w_edge`` (H·D, E); the other arguments and the results as there.

    The Numba implementation fuses both projections (per tile of pixels, in cache) and keeps no
    per-edge tensor but α and one sign bit per edge and channel; the others project with
    ``F.linear`` and call :func:`gatv2_candidates`.
    """
    impl = _check(x_dst, att, values, impl)
    if impl == "numba":
        args = (x_dst, w_dst, b_dst, s, edge, w_edge, idx, att, values, float(negative_slope))
        return _NumbaLayer.apply(*args)
    t, ez = F.linear(x_dst, w_dst, b_dst), F.linear(edge, w_edge)
    return gatv2_candidates(t, s, ez, idx, att, values, negative_slope, impl)


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
    s = F.linear(x_src, w_src, b_src)
    none = s.new_zeros((s.shape[0], 1, 0))
    return gatv2_candidates_layer(x_dst, w_dst, b_dst, s, edge, w_edge, idx, att, none, negative_slope, impl)[
        0
    ]


__all__ = [
    "gatv2_candidates",
    "gatv2_candidates_layer",
    "gatv2_candidates_torch",
    "gatv2_candidate_attention",
    "default_impl",
]
