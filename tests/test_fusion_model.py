"""The fusion model's parts against independent references: candidate features (plain Python),
the GATv2 candidate attention (PyG's GATv2Conv), the k-nearest map (brute force), gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mingraph.common.files import save_artifact
from mingraph.graphs.candidates import bse_gradient, build_candidate_graph, standardise_bse
from mingraph.learn.bundle import load_bundle, make_bundle
from mingraph.learn.fusion_model import FusionModel, batch_inputs, predict_fusion
from mingraph_kernels.candidates import segment_features, segment_features_reference
from mingraph_kernels.gatv2_candidates import gatv2_candidate_attention


def _field(h=23, w=19, n=9, seed=0):
    rng = np.random.default_rng(seed)
    bse = rng.random((h, w)).astype(np.float32)
    valid = rng.random((h, w)) > 0.1
    pick = rng.choice(h * w, n, replace=False)
    return bse, valid, np.stack(np.divmod(pick, w), 1)


@pytest.mark.parametrize("n,k", [(9, 4), (3, 5), (1, 2)])
def test_candidate_features_equal_the_plain_python_reference(n, k):
    bse, valid, rc = _field(n=n)
    g = build_candidate_graph(bse, valid, rc, k)
    bs, grad = bse_gradient(g.bse)
    dist = np.zeros(g.idx.shape, np.float32)
    has = g.idx >= 0
    rr, cc = np.mgrid[0 : bse.shape[0], 0 : bse.shape[1]]
    d = np.hypot(rr[..., None] - rc[g.idx.clip(0), 0], cc[..., None] - rc[g.idx.clip(0), 1])
    dist[has] = d[has]
    ref = segment_features_reference(bs, grad, g.idx, dist, rc)
    np.testing.assert_allclose(g.features, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(segment_features(bs, grad, g.idx, dist, rc), ref, rtol=1e-5, atol=1e-5)
    # fewer points than k: the extra candidates are marked -1 and carry zero features
    assert (g.idx[..., min(n, k) :] == -1).all() and not g.features[..., min(n, k) :, :].any()


def test_candidates_are_the_k_nearest_points_brute_force():
    bse, valid, rc = _field(n=12)
    g = build_candidate_graph(bse, valid, rc, 5)
    rr, cc = np.mgrid[0 : bse.shape[0], 0 : bse.shape[1]]
    d2 = (rr[..., None] - rc[:, 0]) ** 2 + (cc[..., None] - rc[:, 1]) ** 2
    want = np.sort(d2, -1)[..., :5]
    got = np.take_along_axis(d2, g.idx, -1)
    assert np.array_equal(got, want)  # the same distances in rank order (ties either way)


def test_standardised_bse_does_not_move_with_gain_and_offset():
    bse, valid, _ = _field()
    np.testing.assert_allclose(
        standardise_bse(bse, valid), standardise_bse(0.4 * bse + 0.3, valid), atol=1e-5
    )


def test_gatv2_candidate_attention_equals_pyg_gatv2conv():
    tg = pytest.importorskip("torch_geometric")
    from torch_geometric.nn import GATv2Conv

    torch.manual_seed(0)
    p, n, k, c, e, heads, dim = 30, 7, 4, 6, 5, 3, 2
    conv = GATv2Conv((c, c), dim, heads=heads, edge_dim=e, add_self_loops=False, share_weights=False).double()
    with torch.no_grad():
        conv.lin_l.bias.normal_()
        conv.lin_r.bias.normal_()
    x_dst, x_src = torch.randn(p, c).double(), torch.randn(n, c).double()
    idx = torch.stack([torch.randperm(n)[:k] for _ in range(p)])
    idx[0, 2:] = -1  # a pixel with two candidates only
    edge = torch.randn(p, k, e).double()
    ours = gatv2_candidate_attention(
        x_dst,
        x_src,
        idx,
        edge,
        conv.lin_r.weight,
        conv.lin_r.bias,
        conv.lin_l.weight,
        conv.lin_l.bias,
        conv.lin_edge.weight,
        conv.att[0],
    )
    keep = idx >= 0
    dst = torch.arange(p)[:, None].expand(p, k)[keep]
    ei = torch.stack([idx[keep], dst])
    _, (ei_out, alpha) = conv((x_src, x_dst), ei, edge_attr=edge[keep], return_attention_weights=True)
    assert torch.equal(ei_out, ei)
    torch.testing.assert_close(ours[keep], alpha, rtol=1e-10, atol=1e-12)
    assert (ours[~keep] == 0).all()
    assert tg is not None


def test_gatv2_candidate_attention_gradcheck():
    torch.manual_seed(1)
    p, n, k, c, e, heads, dim = 5, 4, 3, 3, 2, 2, 2
    args = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in [(p, c), (n, c)]]
    idx = torch.randint(0, n, (p, k))
    idx[1, 2] = -1
    w = [
        torch.randn(s, dtype=torch.float64, requires_grad=True)
        for s in [
            (p, k, e),
            (heads * dim, c),
            (heads * dim,),
            (heads * dim, c),
            (heads * dim,),
            (heads * dim, e),
            (heads, dim),
        ]
    ]

    def fn(xd, xs, ed, wd, bd, ws, bs, we, att):
        return gatv2_candidate_attention(xd, xs, idx, ed, wd, bd, ws, bs, we, att)

    assert torch.autograd.gradcheck(fn, (*args, *w))


def test_fusion_output_is_a_mixture_of_measured_evidence_and_round_trips(tmp_path):
    torch.manual_seed(0)
    bse, valid, rc = _field(h=16, w=16, n=6)
    g = build_candidate_graph(bse, valid, rc, 4)
    probs = np.eye(5, dtype=np.float32)[[0, 1, 2, 3, 4, 0]]
    model = FusionModel(num_classes=5, channels=8, heads=2, head_dim=4, k=4)
    logp, att = model(*batch_inputs([g], [probs]))
    q = logp.exp()
    np.testing.assert_allclose(q.sum(-1).detach().numpy(), 1.0, atol=1e-4)
    np.testing.assert_allclose(att.sum(-1).detach().numpy(), 1.0, atol=1e-5)
    # each pixel's distribution only puts mass on classes its candidates carry
    cand_classes = probs.argmax(1)[g.idx]
    for cls in range(5):
        off = ~(cand_classes == cls).any(-1)
        assert (q[0, ..., cls].detach().numpy()[off] < 1e-5).all()
    pred, conf = predict_fusion(model, g, probs)
    bundle = make_bundle(model, None, list("abcde"), {"arch": "fusion"}, {})
    save_artifact(bundle, tmp_path / "m.pt")
    again = load_bundle(tmp_path / "m.pt")
    assert again.arch == "fusion"
    assert np.array_equal(predict_fusion(again.model, g, probs)[0], pred)
    # no EDS point: every pixel unclassified
    empty = build_candidate_graph(bse, valid, np.zeros((0, 2), int), 4)
    assert (predict_fusion(model, empty, probs[:0])[0] == -1).all()
    # any number of classes: the model only mixes them, chunked (no gradients) as with gradients
    other = np.random.default_rng(1).dirichlet(np.ones(9), size=6).astype(np.float32)
    with torch.no_grad():
        chunked, _ = model(*batch_inputs([g], [other]))
    whole, _ = model(*batch_inputs([g], [other]))
    assert chunked.shape[-1] == 9
    np.testing.assert_allclose(chunked.numpy(), whole.detach().numpy(), atol=1e-5)


def test_fusion_cross_layer_kernels_agree_with_the_torch_reference():
    """The fused Numba cross layer (the CPU default) gives the torch reference's outputs and
    gradients, with a pixel's missing candidates (fewer points than k)."""
    bse, valid, rc = _field(h=12, w=10, n=3)
    g = build_candidate_graph(bse, valid, rc, 4)
    probs = np.random.default_rng(0).dirichlet(np.ones(5), 3).astype(np.float32)
    torch.manual_seed(0)
    # float64: in float32 the head weights' gradient, a small sum of large terms, differs by
    # rounding (3e-5 of 0.036 on this graph)
    model = FusionModel(num_classes=5, channels=8, heads=2, head_dim=4, k=4).double()
    assert model.impl is None and "impl" not in model.config
    inputs = [x.double() if x.is_floating_point() else x for x in batch_inputs([g], [probs])]
    res = {}
    for impl in ("torch", "numba"):
        model.impl = impl
        model.zero_grad()
        logp, att = model(*inputs)
        (logp.sum() + att.square().sum()).backward()
        res[impl] = [logp, att] + [p.grad.clone() for p in model.parameters()]
    for a, b in zip(res["numba"], res["torch"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_receptive_field_in_the_docstring_is_the_convolutions():
    """The BSE context's receptive field, from the layers themselves: summed kernel extents, and
    a probe (one perturbed pixel; GroupNorm, whose statistics span the field, taken out)."""
    import mingraph.learn.fusion_model as fm

    torch.manual_seed(0)
    model = FusionModel(channels=8).double().eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.stride == (1, 1) for c in convs)
    extent = 1 + sum(c.dilation[0] * (c.kernel_size[0] - 1) for c in convs)
    for block in model.blocks:
        block.n = torch.nn.Identity()
    size, mid = 2 * extent + 1, extent
    bse = torch.rand(1, size, size, dtype=torch.float64)
    valid = torch.ones_like(bse)
    poked = bse.clone()
    poked[0, mid, mid] += 1.0
    with torch.no_grad():
        changed = (model.context(poked, valid) - model.context(bse, valid)).abs().amax(-1)[0] > 1e-9
    rows, cols = np.nonzero(changed.numpy())
    assert rows.max() - rows.min() + 1 == extent and cols.max() - cols.min() + 1 == extent
    assert rows.min() == mid - extent // 2 and cols.min() == mid - extent // 2
    assert extent == 33 and f"receptive field of {extent} px" in " ".join(fm.__doc__.split())


@pytest.mark.parametrize(
    "h,w,n,k", [(23, 19, 9, 4), (40, 50, 3, 5), (64, 64, 200, 8), (30, 30, 1, 8), (0, 5, 0, 2)]
)
def test_pixel_knn_equals_a_brute_force_sort_with_ties_to_the_lowest_index(h, w, n, k):
    from mingraph_kernels.knn import pixel_knn

    rng = np.random.default_rng(h + n)
    rc = np.stack([rng.integers(0, max(h, 1), n), rng.integers(0, w, n)], 1)
    idx, dist = pixel_knn((h, w), rc, k)
    rr, cc = np.mgrid[0:h, 0:w]
    d2 = (rr[..., None] - rc[:, 0]) ** 2 + (cc[..., None] - rc[:, 1]) ** 2
    want = np.lexsort((np.broadcast_to(np.arange(n), d2.shape), d2), axis=-1)[..., :k]  # by d², then index
    kk = min(k, n)
    assert idx.shape == dist.shape == (h, w, k)
    assert np.array_equal(idx[..., :kk], want[..., :kk]) and (idx[..., kk:] == -1).all()
    np.testing.assert_array_equal(
        dist[..., :kk], np.sqrt(np.take_along_axis(d2, want[..., :kk], -1)).astype(np.float32)
    )
    assert not dist[..., kk:].any()
