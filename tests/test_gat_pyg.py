"""Our GAT equals PyG's GATConv / GAT (the authors' released model) given the same weights."""

from __future__ import annotations

import pytest
import torch
from test_gat_backends import CASES, TOL

from mingraph.learn.model import BACKENDS, GATModel, load_pyg_state_dict, pyg_state_dict, to_tensors
from mingraph_kernels.gat_params import GATConvParams
from mingraph_kernels.gat_sparse import gat_conv_sparse
from mingraph_kernels.gat_structured import gat_conv_structured

pyg_nn = pytest.importorskip("torch_geometric.nn")


def _conv_shapes(
    prefix: str, n_in: int, heads: int, per_head: int, n_bias: int
) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of one PyG GATConv with edge features (edge_dim=1)."""
    att = (1, heads, per_head)
    return {
        f"{prefix}.lin.weight": (heads * per_head, n_in),
        f"{prefix}.lin_edge.weight": (heads * per_head, 1),
        f"{prefix}.att_src": att,
        f"{prefix}.att_dst": att,
        f"{prefix}.att_edge": att,
        f"{prefix}.bias": (n_bias,),
    }


# The parameter shapes of the authors' released checkpoint (docs/method.md, "The paper's model"):
# lin.weight (56, 65), (224, 56), (200, 56); attention (1, 4, 14), (1, 4, 56), (1, 4, 50); bias 56, 56, 50.
CHECKPOINT_SHAPES = {
    **_conv_shapes("0.convs.0", 65, 4, 14, 56),
    **_conv_shapes("0.convs.1", 56, 4, 56, 56),
    **_conv_shapes("1.convs.0", 56, 4, 50, 50),
}


def authors_model() -> torch.nn.Sequential:
    """The authors' model as they built it: two PyG GAT blocks in a Sequential."""
    common = dict(heads=4, edge_dim=1, fill_value=0.0, v2=False)
    return torch.nn.Sequential(
        pyg_nn.GAT(65, 56, num_layers=2, out_channels=56, concat=True, **common),
        pyg_nn.GAT(56, 56, num_layers=1, out_channels=50, concat=False, **common),
    )


def run_authors(
    seq: torch.nn.Sequential, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
) -> torch.Tensor:
    """PyG GAT blocks take (x, edge_index, edge_attr): apply them in turn (no self-loops given)."""
    for block in seq:
        x = block(x, edge_index, edge_attr=edge_attr)
    return x


def test_authors_model_has_the_checkpoint_shapes():
    sd = authors_model().state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == CHECKPOINT_SHAPES
    ours = {k: tuple(v.shape) for k, v in GATModel().state_dict().items()}
    assert sorted(ours.values()) == sorted(CHECKPOINT_SHAPES.values())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", ["random", "mixed_0_1_2", "duplicates", "one_row", "no_eds"])
def test_model_equals_pyg_gat_after_loading_its_state_dict(name, dtype):
    torch.manual_seed(3)
    seq = authors_model().to(dtype)
    model = load_pyg_state_dict(GATModel().to(dtype), seq.state_dict())
    g = to_tensors(CASES[name], dtype=dtype)
    x = g.node_features()
    src, dst, attr = g.edge_list(self_loops=False)
    x_pyg = x.clone().requires_grad_(True)
    ref = run_authors(seq, x_pyg, torch.stack([src, dst]), attr[:, None])
    w = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    (ref * w).sum().backward()
    ours_name = {"0.convs.0": "convs.0", "0.convs.1": "convs.1", "1.convs.0": "convs.2"}
    ref_grads = {ours_name[k[:9]] + k[9:]: p.grad for k, p in seq.named_parameters()}
    assert len(ref_grads) == 18
    n_pix = g.n_pixels
    for backend in BACKENDS:
        model.zero_grad()
        g.bse.requires_grad_(True)
        g.bse.grad = None
        pix, eds = model(g, backend=backend)
        out = torch.cat([pix.reshape(n_pix, -1), eds])
        torch.testing.assert_close(out, ref, **TOL[dtype], msg=lambda m: f"{backend}: {m}")
        (out * w).sum().backward()
        for k, v in ref_grads.items():
            torch.testing.assert_close(
                dict(model.named_parameters())[k].grad, v, **TOL[dtype], msg=lambda m: f"{backend} {k}: {m}"
            )
        torch.testing.assert_close(g.bse.grad.reshape(-1), x_pyg.grad[:n_pix, 0], **TOL[dtype])


@pytest.mark.parametrize("concat", [True, False])
def test_single_layer_equals_gatconv_in_every_gradient(concat):
    torch.manual_seed(5)
    conv = pyg_nn.GATConv(7, 3, heads=2, concat=concat, edge_dim=1, fill_value=0.0).double()
    ours = GATConvParams(7, 3, heads=2, concat=concat).double()
    ours.load_state_dict(conv.state_dict())
    g = to_tensors(CASES["border"], dtype=torch.float64)
    x = torch.randn(g.n_pixels + g.n_eds, 7, dtype=torch.float64)
    src, dst, attr = g.edge_list(self_loops=False)
    ref = conv(x, torch.stack([src, dst]), attr[:, None])
    w = torch.randn(ref.shape, dtype=torch.float64)
    (ref * w).sum().backward()
    for fn in (lambda: gat_conv_sparse(ours, x, g.csr()), lambda: gat_conv_structured(ours, x, g.topology)):
        ours.zero_grad()
        out = fn()
        torch.testing.assert_close(out, ref, **TOL[torch.float64])
        (out * w).sum().backward()
        for (k, p), (k2, q) in zip(ours.named_parameters(), conv.named_parameters()):
            assert k == k2
            torch.testing.assert_close(p.grad, q.grad, **TOL[torch.float64], msg=lambda m: f"{k}: {m}")


def test_loader_accepts_prefixes_and_rejects_bad_checkpoints():
    sd = authors_model().state_dict()
    model = load_pyg_state_dict(GATModel(), {f"module.{k}": v for k, v in sd.items()})
    torch.testing.assert_close(model.convs[2].att_edge, sd["1.convs.0.att_edge"])
    with pytest.raises(KeyError, match="lacks"):
        load_pyg_state_dict(GATModel(), {k: v for k, v in sd.items() if "bias" not in k})
    with pytest.raises(KeyError, match="unexpected"):
        load_pyg_state_dict(GATModel(), {**sd, "0.lin.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="shape"):
        load_pyg_state_dict(GATModel(num_classes=10), sd)


def test_export_round_trips_into_pyg():
    model = GATModel()
    seq = authors_model()
    seq.load_state_dict(pyg_state_dict(model))
    back = load_pyg_state_dict(GATModel(), seq.state_dict())
    for (k, v), (k2, v2) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
