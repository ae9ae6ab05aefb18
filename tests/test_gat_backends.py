"""The three GAT backends (dgl, sparse, structured) agree, forward and backward, on random and
degenerate graphs; the structured kernels' implementations (numba, torch) agree; gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mingraph.graphs.structure import StructuredBatch, batch_graphs, build_structured_graph, edge_list
from mingraph.learn.model import GATModel, to_tensors
from mingraph_kernels.gat_params import GATConvParams
from mingraph_kernels.gat_sparse import build_csr, csr_attention, gat_conv_sparse
from mingraph_kernels.gat_structured import gat_conv_structured, structured_attention

TOL = {torch.float64: dict(atol=1e-5, rtol=1e-5), torch.float32: dict(atol=1e-4, rtol=1e-4)}


def make_batch(
    shape: tuple[int, int], positions: list, dim: int = 64, seed: int = 0, lift: float = 1.0
) -> StructuredBatch:
    """A batch with one graph per entry of ``positions`` (a list of (n, 2) EDS positions)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    graphs = []
    for rc in positions:
        rc = np.asarray(rc, dtype=np.int32).reshape(-1, 2)
        feat = rng.standard_normal((rc.shape[0], dim)).astype(np.float32)
        g = build_structured_graph(rng.random((h, w)).astype(np.float32), rc, feat, lift=lift)
        g.labels = rng.integers(0, 50, (h, w))
        g.eds_labels = rng.integers(0, 50, rc.shape[0])
        graphs.append(g)
    return batch_graphs(graphs)


def random_positions(rng: np.random.Generator, shape: tuple[int, int], n: int) -> np.ndarray:
    return np.stack([rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)], 1)


def cases() -> dict[str, StructuredBatch]:
    rng = np.random.default_rng(42)
    return {
        "random": make_batch(
            (9, 11), [random_positions(rng, (9, 11), 6), random_positions(rng, (9, 11), 4)], seed=1
        ),
        "no_eds": make_batch((5, 6), [np.zeros((0, 2)), np.zeros((0, 2))], seed=2),
        "mixed_0_1_2": make_batch((6, 5), [np.zeros((0, 2)), [[2, 3]], [[0, 0], [5, 4]]], seed=3),
        "collinear": make_batch((7, 8), [[[3, 0], [3, 2], [3, 4], [3, 7]]], seed=4),
        "duplicates": make_batch((6, 6), [[[2, 2], [2, 2], [4, 1], [4, 1], [0, 5]]], seed=5),
        "one_pixel": make_batch((1, 1), [[[0, 0]], np.zeros((0, 2)), [[0, 0], [0, 0]]], seed=6),
        "one_row": make_batch((1, 9), [[[0, 0], [0, 4], [0, 8]]], seed=7),
        "one_column": make_batch((7, 1), [[[1, 0], [6, 0]]], seed=8),
        "border": make_batch((6, 7), [[[0, 0], [0, 6], [5, 0], [5, 6], [0, 3], [5, 3]]], seed=9),
        "lift5": make_batch((8, 8), [random_positions(rng, (8, 8), 5)], seed=10, lift=5.0),
    }


CASES = cases()


def _loss_weights(model_out, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in model_out]


def _run(model: GATModel, batch: StructuredBatch, backend: str, dtype: torch.dtype):
    g = to_tensors(batch, dtype=dtype)
    g.bse.requires_grad_(True)
    g.eds_feat.requires_grad_(True)
    model.zero_grad()
    outs = model(g, backend=backend)
    loss = sum((o * w).sum() for o, w in zip(outs, _loss_weights(outs)))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    grads["input.bse"] = g.bse.grad.clone()
    grads["input.eds_feat"] = g.eds_feat.grad.clone()
    return [o.detach() for o in outs], grads


def _topology_edges(topo) -> dict[tuple[int, int], float]:
    """The edge set the structured kernels imply (pixel stencil, cross links, EDS CSR lists)."""
    edges = {}
    hh, ww, n_pix = topo.height, topo.width, topo.n_pixels
    for i in range(n_pix):
        r, c = (i // ww) % hh, i % ww
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if 0 <= r + dr < hh and 0 <= c + dc < ww:
                    edges[(i + dr * ww + dc, i)] = float(np.hypot(dr, dc))
        if topo.nearest[i] >= 0:
            edges[(n_pix + int(topo.nearest[i]), i)] = float(topo.near_dist[i])
        for t in range(int(topo.extra_ptr[i]), int(topo.extra_ptr[i + 1])):
            edges[(n_pix + int(topo.extra_eds[t]), i)] = topo.lift
    csr = topo.eds_csr
    for k in range(topo.n_eds):
        for t in range(int(csr.ptr[k]), int(csr.ptr[k + 1])):
            edges[(int(csr.src[t]), n_pix + k)] = float(csr.dist[t])
    return edges


@pytest.mark.parametrize("name", ["random", "duplicates", "mixed_0_1_2", "one_pixel", "border", "lift5"])
def test_structured_topology_implies_the_explicit_edge_list(name):
    """The kernels' compact topology and graphs.edge_list describe the same graph."""
    batch = CASES[name]
    s, d, a = edge_list(batch, self_loops=True)
    explicit = {(int(x), int(y)): float(v) for x, y, v in zip(s, d, a)}
    assert len(explicit) == len(s)
    implied = _topology_edges(_topology(batch))
    assert implied.keys() == explicit.keys()
    for k, v in explicit.items():
        assert implied[k] == pytest.approx(v, rel=1e-6)
    assert all((y, x) in implied for x, y in implied)  # symmetric: the backward relies on it


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", list(CASES))
def test_backends_agree_outputs_and_gradients(name, dtype):
    torch.manual_seed(0)
    model = GATModel().to(dtype)
    ref_out, ref_grads = _run(model, CASES[name], "dgl", dtype)
    assert all(torch.isfinite(o).all() for o in ref_out)
    for backend in ("sparse", "structured"):
        out, grads = _run(model, CASES[name], backend, dtype)
        for o, r in zip(out, ref_out):
            torch.testing.assert_close(o, r, **TOL[dtype], msg=lambda m: f"{backend} output: {m}")
        for k, r in ref_grads.items():
            torch.testing.assert_close(grads[k], r, **TOL[dtype], msg=lambda m: f"{backend} grad {k}: {m}")


def _layer_inputs(topo, heads=3, ch=5, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n = topo.n_nodes
    z = torch.randn(n, heads, ch, generator=gen, dtype=dtype)
    a_src = torch.randn(n, heads, generator=gen, dtype=dtype)
    a_dst = torch.randn(n, heads, generator=gen, dtype=dtype)
    c = torch.randn(heads, generator=gen, dtype=dtype)
    return [t.requires_grad_(True) for t in (z, a_src, a_dst, c)]


def _topology(batch: StructuredBatch):
    """The topology the model builds for a batch (to_tensors), float64 inputs aside."""
    return to_tensors(batch).topology


@pytest.mark.parametrize("mean", [False, True])
@pytest.mark.parametrize("name", ["random", "duplicates", "mixed_0_1_2", "one_row"])
def test_structured_numba_equals_torch_reference_and_sparse(name, mean):
    batch = CASES[name]
    topo = _topology(batch)
    s, d, a = edge_list(batch, self_loops=True)
    csr = build_csr(torch.from_numpy(s), torch.from_numpy(d), torch.from_numpy(a).double(), topo.n_nodes)
    inputs = _layer_inputs(topo)
    w = torch.randn(topo.n_nodes, 5 if mean else 15, dtype=torch.float64)
    results = {}
    for impl in ("numba", "torch", "sparse"):
        for t in inputs:
            t.grad = None
        if impl == "sparse":
            agg = csr_attention(*inputs, csr)
            out = agg.mean(1) if mean else agg.reshape(topo.n_nodes, -1)
        else:
            out = structured_attention(*inputs, topo, mean, impl=impl)
        (out * w).sum().backward()
        results[impl] = [out.detach()] + [t.grad.clone() for t in inputs]
    for impl, tol in (("torch", 1e-10), ("sparse", 1e-6)):  # the edge list stores float32 distances
        for x, y in zip(results["numba"], results[impl]):
            torch.testing.assert_close(x, y, atol=tol, rtol=tol)


@pytest.mark.parametrize("impl", ["numba", "torch"])
@pytest.mark.parametrize("mean", [False, True])
def test_structured_gradcheck(impl, mean):
    batch = make_batch((3, 4), [[[0, 1], [2, 3], [2, 3]], [[1, 1]]], seed=11)
    topo = _topology(batch)
    inputs = _layer_inputs(topo, heads=2, ch=3)
    assert torch.autograd.gradcheck(lambda *t: structured_attention(*t, topo, mean, impl=impl), inputs)


def test_sparse_gradcheck():
    batch = make_batch((3, 4), [[[0, 1], [2, 3]], [[1, 1]]], seed=12)
    s, d, a = edge_list(batch, self_loops=True)
    n = batch.batch_size * 12 + batch.n_eds
    csr = build_csr(torch.from_numpy(s), torch.from_numpy(d), torch.from_numpy(a).double(), n)
    gen = torch.Generator().manual_seed(1)
    inputs = [
        torch.randn(*sh, generator=gen, dtype=torch.float64, requires_grad=True)
        for sh in ((n, 2, 3), (n, 2), (n, 2), (2,))
    ]
    assert torch.autograd.gradcheck(lambda *t: csr_attention(*t, csr), inputs)


def test_layers_with_parameters_gradcheck():
    """Whole layers (projection, edge constant, bias) are differentiable in every parameter."""
    batch = make_batch((2, 3), [[[0, 0], [1, 2]]], dim=3, seed=13)
    g = to_tensors(batch, dtype=torch.float64)
    x = g.node_features().requires_grad_(True)
    for concat in (True, False):
        conv = GATConvParams(4, 3, heads=2, concat=concat).double()
        params = [x] + list(conv.parameters())
        fn_struct = lambda *_: gat_conv_structured(conv, x, g.topology)  # noqa: E731
        fn_sparse = lambda *_: gat_conv_sparse(conv, x, g.csr())  # noqa: E731
        assert torch.autograd.gradcheck(fn_struct, params)
        assert torch.autograd.gradcheck(fn_sparse, params)


def test_structured_batch_equals_graphs_one_by_one():
    """A batch's outputs equal those of its graphs run one by one (EDS offsets are right)."""
    torch.manual_seed(0)
    model = GATModel().double()
    batch = CASES["mixed_0_1_2"]
    pix, eds = model(to_tensors(batch, dtype=torch.float64))
    offset = 0
    for b, n in enumerate(np.bincount(batch.eds_graph, minlength=batch.batch_size)):
        one = StructuredBatch(
            batch.height,
            batch.width,
            batch.bse[b : b + 1],
            np.where(batch.nearest_eds[b : b + 1] >= 0, batch.nearest_eds[b : b + 1] - offset, -1),
            batch.eds_rc[offset : offset + n],
            np.zeros(n, np.int64),
            batch.delaunay[(batch.delaunay[:, 0] >= offset) & (batch.delaunay[:, 0] < offset + n)] - offset,
            batch.eds_feat[offset : offset + n],
            batch.lift,
        )
        p1, e1 = model(to_tensors(one, dtype=torch.float64))
        torch.testing.assert_close(p1[0], pix[b])
        torch.testing.assert_close(e1, eds[offset : offset + n])
        offset += n


def test_model_rejects_unknown_backend_and_wrong_feature_size():
    model = GATModel()
    batch = CASES["random"]
    with pytest.raises(ValueError, match="backend"):
        model(batch, backend="nope")
    with pytest.raises(ValueError, match="EDS features"):
        model(make_batch((4, 4), [[[1, 1]]], dim=8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("backend", ["sparse", "structured"])
def test_cuda_backends_equal_cpu(backend):
    torch.manual_seed(0)
    model = GATModel()
    batch = CASES["random"]
    ref_out, ref_grads = _run(model, batch, "dgl", torch.float32)
    model = model.cuda()
    g = to_tensors(batch, "cuda")
    g.bse.requires_grad_(True)
    g.eds_feat.requires_grad_(True)
    outs = model(g, backend=backend)
    ws = _loss_weights([o.cpu() for o in outs])
    sum((o * w.cuda()).sum() for o, w in zip(outs, ws)).backward()
    for o, r in zip(outs, ref_out):
        torch.testing.assert_close(o.detach().cpu(), r, **TOL[torch.float32])
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad.cpu(), ref_grads[n], **TOL[torch.float32])
