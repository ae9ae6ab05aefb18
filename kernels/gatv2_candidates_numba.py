"""Fused Numba kernels (CPU) of the GATv2 candidate attention: forward and backward.

Same math as the plain-torch reference :func:`.gatv2_candidates.gatv2_candidates_torch` (tested
equal to it and to PyG's ``GATv2Conv``), per pixel i, candidate slot j (source n = idx[i, j],
−1 = missing), head h, from the projected inputs t = W_t x_i + b_t, s = W_s x_n + b_s and
ez = W_e e_ij:

.. math::
    \\mathbf{z}_{ij} = \\mathbf{t}_i + \\mathbf{s}_{n} + \\mathbf{ez}_{ij},\\quad
    e^h_{ij} = \\mathbf{a}_h^\\top \\mathrm{LeakyReLU}(\\mathbf{z}_{ij})_h,\\quad
    \\alpha^h_{ij} = \\operatorname{softmax}_j e^h_{ij},\\quad
    \\mathbf{o}^h_i = \\textstyle\\sum_j \\alpha^h_{ij}\\,\\mathbf{v}^{h}_{n}

Backward, with dα^h_ij = g_α + g_o^h_i · v^h_n:  de = α (dα − Σ_j α dα),
dz = de · a_h · LeakyReLU'(z) (= ∂ez; ∂t_i = Σ_j dz; ∂a_h = Σ de · LeakyReLU(z)), and the
source side (∂s_n = Σ dz, ∂v_n = Σ α g_o) gathered per source over a reverse CSR of ``idx``:
no atomics, deterministic.  ``prange`` runs over chunks of pixels (sources); z is recomputed in
the backward, never stored; each chunk's scratch is O(k · H).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

# fmt: off
# no "nnan"/"ninf": a pixel's softmax starts from -inf
_JIT = dict(parallel=True, cache=True, nogil=True, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})


def _chunks(n: int) -> int:
    return max(1, min(n, 8 * numba.get_num_threads()))


@njit(inline="always")
def _span(c, n, n_chunks):
    """Items [start, stop) of chunk c of n items cut into n_chunks chunks (the last one shorter)."""
    step = (n + n_chunks - 1) // n_chunks
    return c * step, min(n, (c + 1) * step)


@njit(inline="always")
def _sizes(idx, att, values):
    """(pixels P, slots k, heads H, head dim D, values shared by the heads, value size V)."""
    return idx.shape[0], idx.shape[1], att.shape[0], att.shape[1], values.shape[1] == 1, values.shape[2]


@njit(inline="always")
def _logits(i, t, s, ez, idx, att, slope, e):
    """e[j, h] for pixel i's candidates (0 where missing); returns whether any is present."""
    k = idx.shape[1]
    nh, nd = att.shape
    any_ = False
    for j in range(k):
        n = idx[i, j]
        for h in range(nh):
            acc = 0.0
            if n >= 0:
                for d in range(nd):
                    hd = h * nd + d
                    z = t[i, hd] + s[n, hd] + ez[i, j, hd]
                    if z < 0:
                        z = z * slope
                    acc += att[h, d] * z
            e[j, h] = acc
        any_ = any_ or n >= 0
    return any_


@njit(**_JIT)
def _forward(t, s, ez, idx, att, values, slope, n_chunks, alpha, out):
    n_pix, k, nh, _, shared, nv = _sizes(idx, att, values)
    for c in prange(n_chunks):
        e = np.empty((k, nh), np.float64)
        start, stop = _span(c, n_pix, n_chunks)
        for i in range(start, stop):
            any_ = _logits(i, t, s, ez, idx, att, slope, e)
            alpha[i] = 0.0
            out[i] = 0.0
            if not any_:
                continue
            for h in range(nh):
                m = -np.inf
                for j in range(k):
                    if idx[i, j] >= 0 and e[j, h] > m:
                        m = e[j, h]
                tot = 0.0
                for j in range(k):
                    if idx[i, j] >= 0:
                        w = np.exp(e[j, h] - m)
                        e[j, h] = w
                        tot += w
                hv = 0 if shared else h
                for j in range(k):
                    n = idx[i, j]
                    if n >= 0:
                        a = e[j, h] / tot
                        alpha[i, j, h] = a
                        for v in range(nv):
                            out[i, h, v] += a * values[n, hv, v]


@njit(**_JIT)
def _backward_pixels(t, s, ez, idx, att, values, alpha, g_alpha, g_out, slope, n_chunks, dt, dez, datt_part):
    """Per pixel: ∂t, ∂ez and (per chunk) ∂att."""
    n_pix, k, nh, nd, shared, nv = _sizes(idx, att, values)
    for c in prange(n_chunks):
        de = np.empty((k, nh), np.float64)
        start, stop = _span(c, n_pix, n_chunks)
        for i in range(start, stop):
            dt[i] = 0.0
            dez[i] = 0.0
            for h in range(nh):
                hv = 0 if shared else h
                tot = 0.0
                for j in range(k):
                    n = idx[i, j]
                    da = 0.0
                    if n >= 0:
                        da = g_alpha[i, j, h]
                        for v in range(nv):
                            da += g_out[i, h, v] * values[n, hv, v]
                        tot += alpha[i, j, h] * da
                    de[j, h] = da
                for j in range(k):
                    de[j, h] = alpha[i, j, h] * (de[j, h] - tot)
            for j in range(k):
                n = idx[i, j]
                if n < 0:
                    continue
                for h in range(nh):
                    for d in range(nd):
                        hd = h * nd + d
                        z = t[i, hd] + s[n, hd] + ez[i, j, hd]
                        g = 1.0
                        if z < 0:
                            g = slope
                        dz = de[j, h] * att[h, d] * g
                        dez[i, j, hd] = dz
                        dt[i, hd] += dz
                        datt_part[c, h, d] += de[j, h] * z * g


@njit(**_JIT)
def _backward_sources(k, rev_ptr, rev_edge, alpha, g_out, dez, n_chunks, ds, dv):
    """Per source n, over the edges that point at it: ∂s_n = Σ ∂ez, ∂v_n = Σ α g_o."""
    n_src = ds.shape[0]
    nh = alpha.shape[2]
    shared = dv.shape[1] == 1
    nv = dv.shape[2]
    for c in prange(n_chunks):
        start, stop = _span(c, n_src, n_chunks)
        for n in range(start, stop):
            ds[n] = 0.0
            dv[n] = 0.0
            for r in range(rev_ptr[n], rev_ptr[n + 1]):
                i = rev_edge[r] // k
                j = rev_edge[r] % k
                for hd in range(ds.shape[1]):
                    ds[n, hd] += dez[i, j, hd]
                for h in range(nh):
                    a = alpha[i, j, h]
                    hv = 0 if shared else h
                    for v in range(nv):
                        dv[n, hv, v] += a * g_out[i, h, v]


@njit(cache=True)
def _reverse_csr(flat, n_src):
    """(ptr (n_src + 1,), edges) of the flat edge ids e = i·k + j grouped by source, in order."""
    ptr = np.zeros(n_src + 1, np.int64)
    for e in range(flat.shape[0]):
        if flat[e] >= 0:
            ptr[flat[e] + 1] += 1
    for n in range(n_src):
        ptr[n + 1] += ptr[n]
    fill = ptr[:-1].copy()
    edges = np.empty(ptr[n_src], np.int64)
    for e in range(flat.shape[0]):
        n = flat[e]
        if n >= 0:
            edges[fill[n]] = e
            fill[n] += 1
    return ptr, edges


# fmt: on
def _np(x: Tensor) -> np.ndarray:
    return x.detach().numpy()


def new_outputs(inputs: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    """Uninitialised (α (P, k, H), out (P, H, V)) like ``t`` for the forward kernels to fill.

    ``inputs`` = (t, s, ez, idx, att, values), the fused backends' (Numba, Triton) shared form:
    contiguous tensors of one float dtype on one device, ``t`` (P, H·D), ``s`` (N, H·D), ``ez``
    (P, k, H·D), ``idx`` (P, k) int64, ``att`` (H, D), ``values`` (N, 1 or H, V)."""
    t, _, _, idx, att, values = inputs
    return t.new_empty((*idx.shape, att.shape[0])), t.new_empty((idx.shape[0], att.shape[0], values.shape[2]))


def new_grads(inputs: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Uninitialised (∂t, ∂s, ∂ez, ∂values) like ``inputs`` (:func:`new_outputs`) for the backward
    kernels, which write every element."""
    t, s, ez, _, _, values = inputs
    return torch.empty_like(t), torch.empty_like(s), torch.empty_like(ez), torch.empty_like(values)


def numba_forward(inputs: tuple[Tensor, ...], slope: float) -> tuple[Tensor, Tensor]:
    """(α (P, k, H), out (P, H, V)) of CPU ``inputs`` (t, s, ez, idx, att, values): :func:`new_outputs`."""
    alpha, out = new_outputs(inputs)
    _forward(*[_np(a) for a in inputs], slope, _chunks(inputs[3].shape[0]), _np(alpha), _np(out))
    return alpha, out


def numba_backward(
    inputs: tuple[Tensor, ...], alpha: Tensor, g_alpha: Tensor, g_out: Tensor, slope: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(∂t, ∂s, ∂ez, ∂att, ∂values) of :func:`numba_forward` given the upstream gradients
    ``g_alpha`` (P, k, H) and ``g_out`` (P, H, V) (contiguous, same dtype)."""
    _, s, _, idx, att, _ = inputs
    n_pix, k = idx.shape
    n_chunks = _chunks(n_pix)
    dt, ds, dez, dv = new_grads(inputs)
    datt = np.zeros((n_chunks, *att.shape), _np(att).dtype)
    arrs = [_np(a) for a in (*inputs, alpha, g_alpha, g_out)]
    _backward_pixels(*arrs, slope, n_chunks, _np(dt), _np(dez), datt)
    ptr, edges = _reverse_csr(_np(idx).reshape(-1), s.shape[0])
    n_src = _chunks(s.shape[0])
    _backward_sources(k, ptr, edges, _np(alpha), _np(g_out), _np(dez), n_src, _np(ds), _np(dv))
    return dt, ds, dez, torch.from_numpy(datt.sum(0)), dv


__all__ = ["numba_forward", "numba_backward", "new_outputs", "new_grads"]
