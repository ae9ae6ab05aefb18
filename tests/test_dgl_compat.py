"""DGL's core works on this torch through the compatibility shim."""

import torch

from mingraph_kernels.dgl_compat import dgl


def test_graph_and_edge_softmax_match_manual_softmax():
    src = torch.tensor([0, 1, 2, 2])
    dst = torch.tensor([1, 2, 0, 1])
    g = dgl.graph((src, dst), num_nodes=3)
    assert g.num_edges() == 4
    logits = torch.tensor([[0.5], [1.0], [2.0], [-1.0]])
    att = dgl.ops.edge_softmax(g, logits)
    # node 1 receives edges 0 (0.5) and 3 (-1.0); node 2 edge 1; node 0 edge 2
    e = torch.exp(torch.tensor([0.5, -1.0]))
    expected = torch.tensor([[e[0] / e.sum()], [1.0], [1.0], [e[1] / e.sum()]])
    assert torch.allclose(att, expected)


def test_to_homogeneous_keeps_types_and_counts():
    hg = dgl.heterograph(
        {
            ("pixel", "grid", "pixel"): (torch.tensor([0, 1]), torch.tensor([1, 0])),
            ("pixel", "to_eds", "eds"): (torch.tensor([0, 1]), torch.tensor([0, 0])),
        },
        num_nodes_dict={"pixel": 2, "eds": 1},
    )
    g = dgl.to_homogeneous(hg)
    assert g.num_nodes() == 3 and g.num_edges() == 4
    eds_type = hg.ntypes.index("eds")
    assert (g.ndata[dgl.NTYPE] == eds_type).sum().item() == 1
    assert g.edata[dgl.ETYPE].bincount().tolist() == [2, 2]
