"""GATv2 attention of each pixel over its k candidate EDS points (the fusion model's cross layer).

Dynamic attention (Brody et al. 2022, "How attentive are graph attention networks?"; PyG's
``GATv2Conv`` with ``edge_dim``, ``share_weights=False``, no self-loops), per pixel i, candidate
j ∈ N(i) (its k nearest EDS points) and head h:

.. math::
    e^h_{ij} = \\mathbf{a}_h^\\top \\mathrm{LeakyReLU}\\big(W_t \\mathbf{x}_i + \\mathbf{b}_t
               + W_s \\mathbf{x}_j + \\mathbf{b}_s + W_e \\mathbf{e}_{ij}\\big)_h,\\qquad
    \\alpha^h_{ij} = \\operatorname{softmax}_{j \\in N(i)} e^h_{ij}

Unlike GATConv's static attention, the pixel's own features enter the non-linearity with the
candidate's, so a pixel can prefer the EDS point whose BSE context matches its own.  Candidates
with index −1 (fields with fewer than k points) get α = 0.  Shapes stay compact: the candidate
list is an (P, k) index map, memory O(P · k · H · D).  This is the plain-torch implementation
(any device, autograd); it is tested equal to PyG's ``GATv2Conv`` attention weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gatv2_candidate_attention(
    x_dst: Tensor,
    x_src: Tensor,
    idx: Tensor,
    edge: Tensor,
    w_dst: Tensor,
    b_dst: Tensor,
    w_src: Tensor,
    b_src: Tensor,
    w_edge: Tensor,
    att: Tensor,
    negative_slope: float = 0.2,
) -> Tensor:
    """(P, k, H) attention of each pixel over its candidates (module docstring).

    ``x_dst`` (P, C_t) pixel features, ``x_src`` (N, C_s) EDS-point features, ``idx`` (P, k) int64
    candidate indices into ``x_src`` (−1 = none), ``edge`` (P, k, E) edge features; ``w_dst``
    (H·D, C_t), ``b_dst`` (H·D,), ``w_src`` (H·D, C_s), ``b_src`` (H·D,), ``w_edge`` (H·D, E),
    ``att`` (H, D).  A pixel without any candidate gets all-zero weights.
    """
    heads, dim = att.shape
    has = idx >= 0
    src = x_src[idx.clamp_min(0)] if x_src.shape[0] else x_src.new_zeros((*idx.shape, x_src.shape[1]))
    z = F.linear(x_dst, w_dst, b_dst)[:, None, :] + F.linear(src, w_src, b_src) + F.linear(edge, w_edge)
    z = F.leaky_relu(z, negative_slope).view(*idx.shape, heads, dim)
    e = (z * att).sum(-1).masked_fill(~has[..., None], float("-inf"))
    alpha = torch.softmax(e, dim=1)
    return torch.nan_to_num(alpha, nan=0.0)  # a row of -inf (no candidate) gives NaN: weight 0
