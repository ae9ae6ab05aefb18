"""GAT layer on an explicit edge list with our own torch kernels: the ``sparse`` backend.

.. math::
    e^h_{ij} = \\mathrm{LeakyReLU}(s^h_j + t^h_i + d_{ij} c_h),\\quad
    \\alpha^h_{ij} = \\frac{\\exp(e^h_{ij} - m^h_i)}{\\sum_{k} \\exp(e^h_{ik} - m^h_i)},\\quad
    \\mathbf{x}'^h_i = \\textstyle\\sum_j \\alpha^h_{ij} \\mathbf{z}^h_j

with :math:`s = \\mathbf{a}_s\\cdot\\mathbf{z}`, :math:`t = \\mathbf{a}_t\\cdot\\mathbf{z}` per node and the
edge constant :math:`c_h` of :mod:`.gat_params`.  The edges are kept sorted by destination (CSR).
Scores and attention are (edges × heads) tensors; the weighted sum is never materialised per edge:
it is one sparse-times-dense product with a block matrix whose row ``i*H + h`` holds
:math:`\\alpha^h_{i\\cdot}`, and its backward is a transposed product (for ``z``) and a sampled
dense-dense product (SDDMM, for ``alpha``).  Works on any device torch's CSR kernels support
(CPU, CUDA).  The graph must include one self-loop per node (attribute 0).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .gat_params import GATConvParams


@dataclass
class CsrEdges:
    """Edges sorted by destination: ``src[ptr[i]:ptr[i+1]]`` are the sources of destination i.

    Destinations are numbered ``0..num_dst-1`` and sources ``0..num_src-1`` (equal for a
    homogeneous graph; different when only a slice of the nodes are destinations).
    """

    src: Tensor  # (E,) int64
    dst: Tensor  # (E,) int64, non-decreasing
    dist: Tensor  # (E,) float edge attribute
    ptr: Tensor  # (num_dst + 1,) int64
    num_src: int
    num_dst: int
    _layouts: dict = field(default_factory=dict, repr=False)

    @property
    def num_edges(self) -> int:
        return int(self.src.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> CsrEdges:
        """Move to a device (and cast the edge attributes to ``dtype``)."""
        return CsrEdges(
            self.src.to(device),
            self.dst.to(device),
            self.dist.to(device, dtype or self.dist.dtype),
            self.ptr.to(device),
            self.num_src,
            self.num_dst,
        )

    def block_layout(self, heads: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Index arrays of the (num_dst·H × num_src·H) block matrix and of its transpose, cached.

        Returns ``(crow, col, pos, crow_t, col_t, pos_t)``: CSR row pointers and columns, and
        ``pos`` mapping the edge-major flat index ``e*H + h`` to its slot in the CSR values.
        """
        if heads not in self._layouts:
            fwd = _block_layout(self.dst, self.src, self.num_dst, heads)
            order = torch.argsort(self.src, stable=True)
            crow_t, col_t, pos_sorted = _block_layout(self.src[order], self.dst[order], self.num_src, heads)
            # pos_sorted indexes edges in `order`; map back to the original edge order
            pos_t = torch.empty_like(pos_sorted)
            idx = (order[:, None] * heads + torch.arange(heads, device=order.device)).reshape(-1)
            pos_t[idx] = pos_sorted
            self._layouts[heads] = (*fwd, crow_t, col_t, pos_t)
        return self._layouts[heads]


def _block_layout(rows: Tensor, cols: Tensor, n_rows: int, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """CSR layout of the block matrix with entry (r*H + h, c*H + h) per edge (r, c), rows sorted."""
    dev = rows.device
    deg = torch.bincount(rows, minlength=n_rows)
    ptr = torch.zeros(n_rows + 1, dtype=torch.int64, device=dev)
    ptr[1:] = torch.cumsum(deg, 0)
    e = torch.arange(rows.shape[0], device=dev)
    h = torch.arange(heads, device=dev)
    within = e - ptr[rows]  # position of the edge inside its row segment
    pos = (ptr[rows, None] * heads + h[None, :] * deg[rows, None] + within[:, None]).reshape(-1)
    col = torch.empty(rows.shape[0] * heads, dtype=torch.int64, device=dev)
    col[pos] = (cols[:, None] * heads + h[None, :]).reshape(-1)
    crow = torch.zeros(n_rows * heads + 1, dtype=torch.int64, device=dev)
    crow[1:] = torch.cumsum(deg.repeat_interleave(heads), 0)
    return crow, col, pos


def build_csr(src: Tensor, dst: Tensor, dist: Tensor, num_nodes: int, num_dst: int | None = None) -> CsrEdges:
    """Sort an edge list by destination into :class:`CsrEdges` (stable, so ties keep input order)."""
    src, dst = src.long(), dst.long()
    n_dst = num_nodes if num_dst is None else int(num_dst)
    order = torch.argsort(dst, stable=True)
    src, dst, dist = src[order], dst[order], dist[order]
    ptr = torch.zeros(n_dst + 1, dtype=torch.int64, device=dst.device)
    ptr[1:] = torch.cumsum(torch.bincount(dst, minlength=n_dst), 0)
    return CsrEdges(src.contiguous(), dst.contiguous(), dist.contiguous(), ptr, int(num_nodes), n_dst)


def _csr(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class _BlockSpmm(torch.autograd.Function):
    """agg[i, h] = Σ_j alpha[e(i,j), h] z[j, h] as one CSR product; SDDMM in the backward."""

    @staticmethod
    def forward(ctx, alpha: Tensor, z: Tensor, csr: CsrEdges) -> Tensor:
        heads, ch = z.shape[1], z.shape[2]
        crow, col, pos, crow_t, col_t, pos_t = csr.block_layout(heads)
        vals = torch.empty(alpha.numel(), dtype=alpha.dtype, device=alpha.device)
        vals[pos] = alpha.reshape(-1)
        a = _csr(crow, col, vals, (csr.num_dst * heads, csr.num_src * heads))
        out = (a @ z.reshape(-1, ch)).view(csr.num_dst, heads, ch)
        ctx.save_for_backward(alpha, z)
        ctx.csr = csr
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        alpha, z = ctx.saved_tensors
        csr = ctx.csr
        heads, ch = z.shape[1], z.shape[2]
        crow, col, pos, crow_t, col_t, pos_t = csr.block_layout(heads)
        g = grad.contiguous().reshape(-1, ch)
        d_alpha = d_z = None
        if ctx.needs_input_grad[0]:
            pattern = _csr(
                crow,
                col,
                torch.zeros(alpha.numel(), dtype=z.dtype, device=z.device),
                (csr.num_dst * heads, csr.num_src * heads),
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                dots = torch.sparse.sampled_addmm(pattern, g, z.reshape(-1, ch).t(), beta=0.0)
            d_alpha = dots.values()[pos].view_as(alpha)
        if ctx.needs_input_grad[1]:
            vals_t = torch.empty(alpha.numel(), dtype=alpha.dtype, device=alpha.device)
            vals_t[pos_t] = alpha.reshape(-1)
            at = _csr(crow_t, col_t, vals_t, (csr.num_src * heads, csr.num_dst * heads))
            d_z = (at @ g).view_as(z)
        return d_alpha, d_z, None


def segment_softmax(logits: Tensor, csr: CsrEdges) -> Tensor:
    """Softmax of (E, H) edge scores over the incoming edges of each destination."""
    dst = csr.dst
    heads = logits.shape[1]
    # the shift is for stability only (softmax is shift invariant), so it carries no gradient
    m = torch.full((csr.num_dst, heads), float("-inf"), dtype=logits.dtype, device=logits.device)
    m = m.scatter_reduce(0, dst[:, None].expand(-1, heads), logits.detach(), "amax", include_self=True)
    w = torch.exp(logits - m[dst])
    s = torch.zeros((csr.num_dst, heads), dtype=logits.dtype, device=logits.device).index_add(0, dst, w)
    return w / s[dst]


def csr_attention(
    z: Tensor, a_src: Tensor, a_dst: Tensor, c: Tensor, csr: CsrEdges, negative_slope: float = 0.2
) -> Tensor:
    """Aggregate (num_dst, H, C) = Σ_j softmax_j(LeakyReLU(a_src[j] + a_dst[i] + d_ij c)) z[j].

    ``z``/``a_src`` are indexed by source node, ``a_dst`` by destination (0..num_dst-1).
    """
    if csr.num_edges == 0:
        return z.new_zeros((csr.num_dst, z.shape[1], z.shape[2]))
    e = a_src[csr.src] + a_dst[csr.dst] + csr.dist.to(z.dtype)[:, None] * c
    alpha = segment_softmax(torch.nn.functional.leaky_relu(e, negative_slope), csr)
    return _BlockSpmm.apply(alpha, z.contiguous(), csr)


def gat_conv_sparse(params: GATConvParams, x: Tensor, csr: CsrEdges) -> Tensor:
    """One GAT layer on an explicit edge list (with self-loops) given as :class:`CsrEdges`."""
    z, a_src, a_dst = params.project(x)
    agg = csr_attention(z, a_src, a_dst, params.edge_constant(), csr, params.negative_slope)
    return params.finish(agg)
