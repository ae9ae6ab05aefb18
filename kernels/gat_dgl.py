"""GAT layer written with DGL's message-passing primitives: the CPU reference backend ``dgl``.

.. math::
    e_{ij}^h = \\mathrm{LeakyReLU}\\big(\\mathbf{a}^h_s\\cdot\\mathbf{z}^h_j + \\mathbf{a}^h_t\\cdot\\mathbf{z}^h_i
        + \\mathbf{a}^h_e\\cdot(\\mathbf{\\Theta}_e d_{ij})^h\\big),\\quad
    \\alpha_{ij} = \\mathrm{edge\\_softmax}(e)_{ij},\\quad
    \\mathbf{x}'_i = \\textstyle\\sum_j \\alpha_{ij}\\mathbf{z}_j \\;(+\\text{concat/mean}, +\\mathbf{b})

It follows PyG's ``GATConv`` literally (the edge term is computed per edge from ``lin_edge`` and
``att_edge``, not folded), which is what makes it a reference for the faster backends.  DGL's own
``GATConv``/``EdgeGATConv`` are not this layer (docs/method.md, "GAT layer").  The graph must already hold one
self-loop per node with edge attribute 0; edges point source → destination.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .dgl_compat import dgl
from .gat_params import GATConvParams

fn = dgl.function


def make_dgl_graph(src: Tensor, dst: Tensor, num_nodes: int):
    """A homogeneous DGL graph from an explicit edge list (already including the self-loops)."""
    return dgl.graph((src.long(), dst.long()), num_nodes=num_nodes, device=src.device)


def gat_conv_dgl(params: GATConvParams, graph, x: Tensor, edge_attr: Tensor) -> Tensor:
    """One GAT layer on a DGL graph; ``x`` is (nodes, F), ``edge_attr`` (edges,) or (edges, 1)."""
    heads, ch = params.heads, params.out_channels
    z = params.lin(x).view(-1, heads, ch)
    el = (z * params.att_src).sum(-1, keepdim=True)  # (n, H, 1), source half of the score
    er = (z * params.att_dst).sum(-1, keepdim=True)  # destination half
    ee = params.lin_edge(edge_attr.reshape(-1, 1).to(z.dtype)).view(-1, heads, ch)
    ee = (ee * params.att_edge).sum(-1, keepdim=True)  # (E, H, 1)
    with graph.local_scope():
        graph.ndata.update({"z": z, "el": el, "er": er})
        graph.edata["ee"] = ee
        graph.apply_edges(fn.u_add_v("el", "er", "e"))
        e = torch.nn.functional.leaky_relu(graph.edata.pop("e") + ee, params.negative_slope)
        graph.edata["a"] = dgl.ops.edge_softmax(graph, e)
        graph.update_all(fn.u_mul_e("z", "a", "m"), fn.sum("m", "agg"))
        agg = graph.ndata["agg"]
    return params.finish(agg)
