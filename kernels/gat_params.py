"""The parameters of one GAT layer, shared by every backend (``dgl``, ``sparse``, ``structured``).

The layer is PyG's ``GATConv(in, C, heads=H, edge_dim=1, add_self_loops=True, fill_value=0.0)``
(docs/method.md, "GAT layer"):

.. math::
    \\mathbf{z}_j = \\mathbf{\\Theta}\\mathbf{x}_j \\in \\mathbb{R}^{H \\times C},\\qquad
    e_{ij}^h = \\mathrm{LeakyReLU}_{0.2}\\big(\\mathbf{a}^h_{s}\\!\\cdot\\mathbf{z}^h_j
        + \\mathbf{a}^h_{t}\\!\\cdot\\mathbf{z}^h_i + d_{ij}\\, c_h\\big),\\qquad
    c_h = \\textstyle\\sum_c \\mathbf{\\Theta}_e[h, c]\\, \\mathbf{a}^h_e[c],

.. math::
    \\alpha^h_{ij} = \\operatorname{softmax}_{j \\in \\mathcal{N}(i) \\cup \\{i\\}} e^h_{ij},\\qquad
    \\mathbf{x}'_i = \\big\\Vert_h \\textstyle\\sum_j \\alpha^h_{ij} \\mathbf{z}^h_j + \\mathbf{b}
    \\;\\text{(concat)}\\quad\\text{or}\\quad
    \\tfrac{1}{H}\\textstyle\\sum_h \\sum_j \\alpha^h_{ij} \\mathbf{z}^h_j + \\mathbf{b}\\;\\text{(mean)},

with :math:`d_{ij}` the scalar edge attribute (0 on self-loops).  Because the edge feature is a
scalar, PyG's edge term :math:`\\mathbf{a}_e\\cdot(\\mathbf{\\Theta}_e d_{ij})` collapses to
:math:`d_{ij} c_h`: one constant per head, which the kernels use instead of per-edge vectors.
Parameter names and shapes are PyG's, so a PyG ``GATConv`` state dict loads unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _glorot_(t: Tensor) -> None:
    """PyG's ``glorot``: uniform in ±sqrt(6 / (fan_in + fan_out)) over the last two dims."""
    bound = math.sqrt(6.0 / (t.size(-2) + t.size(-1)))
    with torch.no_grad():
        t.uniform_(-bound, bound)


class GATConvParams(torch.nn.Module):
    """Parameters of one GAT layer (PyG ``GATConv`` names: lin, lin_edge, att_*, bias).

    ``out_channels`` is per head; the output has ``heads * out_channels`` values when
    ``concat`` else ``out_channels`` (heads averaged).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 4,
        concat: bool = True,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.heads = int(heads)
        self.concat = bool(concat)
        self.negative_slope = float(negative_slope)
        hc = self.heads * self.out_channels
        self.lin = torch.nn.Linear(self.in_channels, hc, bias=False)
        self.lin_edge = torch.nn.Linear(1, hc, bias=False)
        self.att_src = torch.nn.Parameter(torch.empty(1, self.heads, self.out_channels))
        self.att_dst = torch.nn.Parameter(torch.empty(1, self.heads, self.out_channels))
        self.att_edge = torch.nn.Parameter(torch.empty(1, self.heads, self.out_channels))
        self.bias = torch.nn.Parameter(torch.empty(hc if self.concat else self.out_channels))
        self.reset_parameters()

    @property
    def total_out_channels(self) -> int:
        return self.heads * self.out_channels if self.concat else self.out_channels

    def reset_parameters(self) -> None:
        """PyG's initialisation: glorot for the weights and attention vectors, zero bias."""
        for t in (self.lin.weight, self.lin_edge.weight, self.att_src, self.att_dst, self.att_edge):
            _glorot_(t)
        with torch.no_grad():
            self.bias.zero_()

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, heads={self.heads}, concat={self.concat}"

    # -- pieces shared by the backends -------------------------------------------------------
    def edge_constant(self) -> Tensor:
        """c_h = Σ_c Θ_e[h, c] a_e[h, c]: the edge term of the score is d_ij · c_h."""
        return (self.lin_edge.weight.view(self.heads, self.out_channels) * self.att_edge[0]).sum(-1)

    def project(self, x: Tensor, first_col: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """z = Θx as (n, H, C) and the per-node score halves a_src·z, a_dst·z as (n, H).

        ``x`` may hold only the input columns ``first_col .. first_col + x.shape[1] - 1``, the
        others being zero (e.g. a pixel's [bse, 0×64]): the product then skips the zeros.
        The score halves use Θ folded into the attention vectors (an (F, 2H) matrix), so no
        (n, H, C) product is materialised for them.
        """
        w = self.lin.weight[:, first_col : first_col + x.shape[1]]
        z = (x @ w.t()).view(-1, self.heads, self.out_channels)
        wh = w.reshape(self.heads, self.out_channels, -1)
        fold = torch.cat(
            [
                torch.einsum("hcf,hc->fh", wh, self.att_src[0]),
                torch.einsum("hcf,hc->fh", wh, self.att_dst[0]),
            ],
            1,
        )
        a = x @ fold
        return z, a[:, : self.heads], a[:, self.heads :]

    def finish(self, agg: Tensor) -> Tensor:
        """Concatenate or average the heads of an (n, H, C) aggregate and add the bias."""
        out = agg.reshape(-1, self.heads * self.out_channels) if self.concat else agg.mean(1)
        return out + self.bias
