"""The GATv2 candidate attention's implementations (plain torch, fused Numba, fused Triton) against
PyG's ``GATv2Conv`` (edge_dim, share_weights=False, no self-loops) on the same graph: outputs,
attention weights and gradients, on edge cases (missing candidates, k = 1, a pixel without any,
one head), and gradcheck in float64.  Triton runs in its interpreter (tests/test_gat_triton.py
explains the subprocess) where a GPU is absent."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from mingraph_kernels import gatv2_candidates_triton
from mingraph_kernels.gatv2_candidates import gatv2_candidates, gatv2_candidates_layer

# Triton on CPU tensors needs its interpreter, switched on before Triton decorates the kernels:
# test_triton_in_the_interpreter reruns this file's triton cases in a subprocess that sets it
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1" and gatv2_candidates_triton.available("cpu")
IMPLS = [
    "torch",
    "numba",
    pytest.param("triton", marks=pytest.mark.skipif(not INTERPRETED, reason="needs TRITON_INTERPRET=1")),
]

# name: (pixels, sources, k, channels, edge dim, heads, head dim)
CASES = {
    "random": (30, 7, 4, 6, 5, 3, 2),
    "k1": (12, 5, 1, 4, 3, 2, 3),
    "one_head": (15, 6, 3, 4, 2, 1, 4),
    "sources_lt_k": (9, 2, 4, 3, 2, 2, 2),
    "duplicates": (10, 3, 5, 4, 3, 2, 3),  # more slots than points: each pixel repeats candidates
    "wide_heads": (8, 5, 3, 5, 4, 5, 8),  # H·D = 40: two words of sign bits per edge
}


def _graph(name: str, dtype=torch.float64):
    """(conv, x_dst, x_src, idx, edge) of a case: idx has missing candidates and an empty pixel."""
    from torch_geometric.nn import GATv2Conv

    p, n, k, c, e, heads, dim = CASES[name]
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    torch.manual_seed(0)
    conv = GATv2Conv((c, c), dim, heads=heads, edge_dim=e, add_self_loops=False, share_weights=False)
    conv = conv.to(dtype)
    with torch.no_grad():
        for b in (conv.lin_l.bias, conv.lin_r.bias):
            b.copy_(torch.randn(b.shape, generator=g))
    idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(p)]) if n >= k else None
    if name == "duplicates":  # the same point in several slots of a pixel (PyG: parallel edges)
        idx = torch.randint(0, n, (p, k), generator=g)
        idx[3] = 1
    elif idx is None:  # fewer points than k: the extra slots are -1 (as in a candidate graph)
        idx = torch.cat([torch.randperm(n, generator=g)[None].expand(p, n), torch.full((p, k - n), -1)], 1)
    idx[0] = -1  # a pixel without any candidate
    if k > 1:
        idx[1, 1:] = -1  # a pixel with one only
        idx[2, 0] = -1  # a missing first slot
    x_dst = torch.randn(p, c, generator=g, dtype=dtype)
    x_src = torch.randn(n, c, generator=g, dtype=dtype)
    edge = torch.randn(p, k, e, generator=g, dtype=dtype)
    return conv, x_dst, x_src, idx, edge


def _ours(conv, x_dst, x_src, idx, edge, impl, layer=False):
    """(α (P, k, H), PyG's output without bias (P, H·D)) through our layer with conv's weights:
    :func:`gatv2_candidates_layer` (projections inside) or, by default, :func:`gatv2_candidates`."""
    heads, dim = conv.att.shape[1:]
    s = F.linear(x_src, conv.lin_l.weight, conv.lin_l.bias)
    if layer:
        args = (x_dst, conv.lin_r.weight, conv.lin_r.bias, s, edge, conv.lin_edge.weight, idx, conv.att[0])
        alpha, out = gatv2_candidates_layer(*args, s.view(-1, heads, dim), impl=impl)
    else:
        t = F.linear(x_dst, conv.lin_r.weight, conv.lin_r.bias)
        ez = F.linear(edge, conv.lin_edge.weight)
        alpha, out = gatv2_candidates(t, s, ez, idx, conv.att[0], s.view(-1, heads, dim), impl=impl)
    return alpha, out.reshape(len(x_dst), -1)


def _pyg(conv, x_dst, x_src, idx, edge):
    keep = idx >= 0
    ei = torch.stack([idx[keep], torch.arange(len(idx))[:, None].expand_as(idx)[keep]])
    out, (ei_out, alpha) = conv((x_src, x_dst), ei, edge_attr=edge[keep], return_attention_weights=True)
    assert torch.equal(ei_out, ei)
    return keep, alpha, out - conv.bias


def _with_grads(fn, leaves, seed=3):
    """fn's (α, out) and the gradients of a random linear loss of both w.r.t. ``leaves``."""
    for x in leaves:
        x.grad = None
    alpha, out = fn()
    g = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    loss = loss + (alpha * torch.randn(alpha.shape, generator=g, dtype=alpha.dtype)).sum()
    loss.backward()
    grads = [torch.zeros_like(x) if x.grad is None else x.grad.clone() for x in leaves]  # None: no path
    return [alpha.detach(), out.detach()] + grads


@pytest.mark.parametrize("layer", [False, True], ids=["projected", "layer"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(CASES))
def test_equals_pyg_gatv2conv_outputs_attention_and_gradients(name, impl, layer):
    pytest.importorskip("torch_geometric")
    conv, x_dst, x_src, idx, edge = _graph(name)
    inputs = [x.requires_grad_(True) for x in (x_dst, x_src, edge)]
    leaves = inputs + [conv.lin_l.weight, conv.lin_l.bias, conv.lin_r.weight, conv.lin_r.bias]
    leaves += [conv.lin_edge.weight, conv.att]
    keep = idx >= 0

    def pyg():
        _, alpha, out = _pyg(conv, x_dst, x_src, idx, edge)
        full = alpha.new_zeros((*idx.shape, alpha.shape[1])).index_put((keep,), alpha)
        return full, out

    want = _with_grads(pyg, leaves)
    got = _with_grads(lambda: _ours(conv, x_dst, x_src, idx, edge, impl, layer), leaves)
    names = ["alpha", "out", "x_dst", "x_src", "edge", "W_s", "b_s", "W_t", "b_t", "W_e", "att"]
    assert len(got) == len(want) == len(names)
    for a, b, what in zip(got, want, names):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=what)
    assert (got[0][~keep] == 0).all() and (got[0][0] == 0).all() and (got[1][0] == 0).all()


@pytest.mark.parametrize("impl", IMPLS[1:])
@pytest.mark.parametrize("shared", [True, False])
def test_fused_gradcheck_float64(shared, impl):
    g = torch.Generator().manual_seed(5)
    p, n, k, heads, dim, nv = 6, 4, 3, 2, 2, 3
    idx = torch.randint(0, n, (p, k), generator=g)
    idx[0] = -1
    idx[1, 2] = -1
    shapes = [(p, heads * dim), (n, heads * dim), (p, k, heads * dim), (heads, dim)]
    shapes.append((n, 1 if shared else heads, nv))
    t, s, ez, att, v = (
        torch.randn(sh, generator=g, dtype=torch.float64, requires_grad=True) for sh in shapes
    )

    def fn(t, s, ez, att, v):
        return gatv2_candidates(t, s, ez, idx, att, v, impl=impl)

    # the interpreter runs a launch in about a second: Triton gets gradcheck's fast mode (a random
    # projection of the Jacobian), Numba the full Jacobian
    assert torch.autograd.gradcheck(fn, (t, s, ez, att, v), fast_mode=impl == "triton")


def _layer_inputs(p, n, k, c, e, heads, dim, nv, dtype, seed=7):
    """Random inputs of :func:`gatv2_candidates_layer` (leaves with gradients) and idx with a missing
    slot, a pixel without candidates and a repeated candidate."""
    g = torch.Generator().manual_seed(seed)
    hd = heads * dim

    def r(*shape):
        return torch.randn(shape, generator=g, dtype=dtype).requires_grad_(True)

    idx = torch.randint(0, max(n, 1), (p, k), generator=g) if n else torch.full((p, k), -1)
    if p > 2 and n:
        idx[0] = -1
        idx[1, -1] = -1
        idx[2, :] = idx[2, 0]
    leaves = [r(p, c), r(hd, c), r(hd), r(n, hd), r(p, k, e), r(hd, e), r(heads, dim), r(n, 1, nv)]
    return leaves, idx


def _layer_grads(leaves, idx, impl):
    x, wt, bt, s, edge, we, att, v = leaves

    def fn():
        return gatv2_candidates_layer(x, wt, bt, s, edge, we, idx, att, v, impl=impl)

    return _with_grads(fn, leaves)


# (pixels, sources, k, channels, edge dim, heads, head dim, values)
LAYER_CASES = {
    "float32": (700, 40, 8, 12, 9, 4, 8, 5),
    "k1": (50, 7, 1, 6, 3, 2, 4, 3),
    "no_edge_features": (40, 6, 3, 5, 0, 2, 4, 3),
    "empty_batch": (0, 5, 4, 3, 2, 2, 2, 3),
    "no_sources": (6, 0, 3, 3, 2, 2, 2, 3),
}


@pytest.mark.parametrize("name", list(LAYER_CASES))
def test_numba_layer_equals_torch_reference_float32(name):
    """The fused layer (projections inside) against the plain-torch reference in float32: outputs
    and the gradients of all eight float inputs, float32-tight."""
    leaves, idx = _layer_inputs(*LAYER_CASES[name], torch.float32)
    want = _layer_grads(leaves, idx, "torch")
    got = _layer_grads(leaves, idx, "numba")
    names = ["alpha", "out", "x", "w_t", "b_t", "s", "edge", "w_e", "att", "values"]
    for a, b, what in zip(got, want, names):
        scale = max(1.0, b.abs().max().item()) if b.numel() else 1.0
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6 * scale, msg=what)
    assert (got[0][idx < 0] == 0).all()


def test_numba_layer_broadcast_upstream_gradient():
    """``out.sum().backward()`` hands the backward a stride-0 g_out and no g_α: same gradients as
    the reference."""
    leaves, idx = _layer_inputs(*LAYER_CASES["float32"], torch.float32)
    grads = {}
    for impl in ("torch", "numba"):
        for x in leaves:
            x.grad = None
        x, wt, bt, s, edge, we, att, v = leaves
        gatv2_candidates_layer(x, wt, bt, s, edge, we, idx, att, v, impl=impl)[1].sum().backward()
        grads[impl] = [x.grad.clone() for x in leaves]
    for a, b in zip(grads["numba"], grads["torch"]):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6 * max(1.0, b.abs().max().item()))


def test_numba_layer_gradcheck_float64():
    leaves, idx = _layer_inputs(6, 4, 3, 3, 2, 2, 2, 3, torch.float64)

    def fn(*args):
        x, wt, bt, s, edge, we, att, v = args
        return gatv2_candidates_layer(x, wt, bt, s, edge, we, idx, att, v, impl="numba")

    assert torch.autograd.gradcheck(fn, tuple(leaves))


def test_numba_layer_identical_across_thread_counts():
    """Forward and every gradient bit for bit the same on 1 thread and on all of them (fixed partial
    buffers, no atomics)."""
    import numba

    leaves, idx = _layer_inputs(*LAYER_CASES["float32"], torch.float32)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _layer_grads(leaves, idx, "numba")
    finally:
        numba.set_num_threads(threads)
    many = _layer_grads(leaves, idx, "numba")
    for a, b in zip(one, many):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["float32", "no_edge_features", "empty_batch", "no_sources"])
def test_numba_layer_without_gradients_forms_no_sign_bits(name):
    """Under ``torch.no_grad`` (prediction) the fused forward skips the sign bits, which only the
    backward reads: α and o are bit for bit those of a forward that keeps them, and nothing is
    saved for a backward."""
    from mingraph_kernels.gatv2_candidates_numba import numba_layer_forward

    leaves, idx = _layer_inputs(*LAYER_CASES[name], torch.float32)
    x, wt, bt, s, edge, we, att, v = (t.detach() for t in leaves)
    args = (x, wt, bt, s, edge, we, idx, att, v, 0.2)
    with_bits, without = numba_layer_forward(*args), numba_layer_forward(*args, want_bits=False)
    assert torch.equal(with_bits[0], without[0]) and torch.equal(with_bits[1], without[1])
    assert without[2].shape[0] == 0 and with_bits[2].shape[0] == idx.shape[0]
    with torch.no_grad():
        alpha, out = gatv2_candidates_layer(*leaves[:6], idx, *leaves[6:], impl="numba")
    assert torch.equal(alpha, with_bits[0]) and torch.equal(out, with_bits[1])
    assert alpha.grad_fn is None
    # a forward with gradients still forms them: its backward equals the reference's (above)
    alpha_g, _ = gatv2_candidates_layer(*leaves[:6], idx, *leaves[6:], impl="numba")
    assert alpha_g.grad_fn is not None and torch.equal(alpha_g.detach(), with_bits[0])


def test_unknown_impl_and_bad_values_raise():
    t, s, ez = torch.zeros(2, 4), torch.zeros(3, 4), torch.zeros(2, 1, 4)
    idx, att = torch.zeros(2, 1, dtype=torch.int64), torch.zeros(2, 2)
    with pytest.raises(ValueError, match="implementation"):
        gatv2_candidates(t, s, ez, idx, att, torch.zeros(3, 1, 1), impl="cuda")
    with pytest.raises(ValueError, match="values"):
        gatv2_candidates(t, s, ez, idx, att, torch.zeros(3, 3, 1))


def test_triton_in_the_interpreter():
    pytest.importorskip("triton")
    pytest.importorskip("torch_geometric")
    if INTERPRETED:
        pytest.skip("already in the interpreter")
    env = dict(os.environ, TRITON_INTERPRET="1")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        __file__,
        "-k",
        "triton and not interpreter and not cuda",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]


@pytest.mark.skipif(
    not (torch.cuda.is_available() and gatv2_candidates_triton.available()), reason="needs CUDA"
)
@pytest.mark.parametrize("name", list(CASES))
def test_triton_on_cuda_equals_the_torch_reference(name):
    pytest.importorskip("torch_geometric")
    conv, x_dst, x_src, idx, edge = (x.cuda() for x in _graph(name, torch.float32))
    leaves = [x.requires_grad_(True) for x in (x_dst, x_src, edge)] + [conv.lin_edge.weight, conv.att]
    want = _with_grads(lambda: _ours(conv, x_dst, x_src, idx, edge, "torch"), leaves)
    got = _with_grads(lambda: _ours(conv, x_dst, x_src, idx, edge, "triton"), leaves)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
