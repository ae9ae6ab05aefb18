"""Pixel-to-EDS candidate edges of the fusion graph: each pixel's k nearest EDS points and the
BSE evidence along the straight segment to each.

For pixel i at (r, c) and candidate j at (r_j, c_j), at distance d_ij (pixels) and rank m
(0 = nearest), the features (``N_FEATURES``) are, with b the standardised BSE, g its gradient
magnitude and the segment sampled at max(|Δr|, |Δc|) + 1 rounded points (a DDA line walk):

0. d_ij / 10;  1. m / k;  2. log(1 + d_ij / max(d_i0, 0.5));  3. |b_j − b_i|;
4. max g on the segment;  5. mean g on the segment;  6. max |b − b_i| on the segment;
7. b_j − b_i;  8. (d_ij − d_i0) / 10.

Features 3–6 are those of the gradient-boosted candidate pick of issue 10 (distance, rank, ratio,
BSE contrast, and the BSE gradient and departure along the segment); 7–8 add the sign of the
contrast and the extra distance.  ``segment_features`` (Numba, parallel over rows) is tested equal
to ``segment_features_reference`` (plain Python).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

N_FEATURES = 9


@njit(cache=True, inline="always")
def _one(bg, r, c, er, ec, dist, d0, rank, k, out):
    b0 = bg[r, c, 0]
    dr = er - r
    dc = ec - c
    n = max(abs(dr), abs(dc))
    gmax = 0.0
    gsum = 0.0
    dep = 0.0
    two_n = 2.0 * max(n, 1)
    for t in range(n + 1):
        # rounded DDA point: floor(r + dr t / n + 1/2) = r + floor((2 dr t + n) / 2n), exact in
        # float64 (small integers; a non-integer quotient is >= 1/2n from the next integer)
        rr = r + int(np.floor((2 * dr * t + n) / two_n))
        cc = c + int(np.floor((2 * dc * t + n) / two_n))
        g = bg[rr, cc, 1]
        gsum += g
        gmax = max(gmax, g)
        dep = max(dep, abs(bg[rr, cc, 0] - b0))
    out[0] = dist / 10.0
    out[1] = rank / k
    out[2] = np.log1p(dist / max(d0, 0.5))
    out[3] = abs(bg[er, ec, 0] - b0)
    out[4] = gmax
    out[5] = gsum / (n + 1)
    out[6] = dep
    out[7] = bg[er, ec, 0] - b0
    out[8] = (dist - d0) / 10.0


@njit(cache=True, parallel=True)
def _features(bg, idx, dist, rc, out):
    h, w, k = idx.shape
    for r in prange(h):
        for c in range(w):
            for m in range(k):
                e = idx[r, c, m]
                if e >= 0:
                    _one(
                        bg,
                        np.int64(r),
                        np.int64(c),
                        rc[e, 0],
                        rc[e, 1],
                        dist[r, c, m],
                        dist[r, c, 0],
                        m,
                        k,
                        out[r, c, m],
                    )


def segment_features(
    bse: np.ndarray, grad: np.ndarray, idx: np.ndarray, dist: np.ndarray, eds_rc: np.ndarray
) -> np.ndarray:
    """(H, W, k, N_FEATURES) float32 candidate features (module docstring); zero where idx < 0.

    ``bse``, ``grad`` (H, W) float32 standardised BSE and its gradient magnitude; ``idx`` (H, W, k)
    int64 candidate EDS indices (−1 = none); ``dist`` (H, W, k) float32 distances in pixels;
    ``eds_rc`` (N, 2) int64 row/col of the EDS points.
    """
    out = np.zeros((*idx.shape, N_FEATURES), np.float32)
    bg = np.empty((*np.shape(bse), 2), np.float32)  # b and g of a pixel side by side: one cache line
    bg[..., 0], bg[..., 1] = bse, grad
    _features(
        bg,
        np.ascontiguousarray(idx, np.int64),
        np.ascontiguousarray(dist, np.float32),
        np.ascontiguousarray(eds_rc, np.int64).reshape(-1, 2),
        out,
    )
    return out


def segment_features_reference(bse, grad, idx, dist, eds_rc) -> np.ndarray:
    """Plain-Python reference of :func:`segment_features` (slow; for tests)."""
    h, w, k = idx.shape
    out = np.zeros((h, w, k, N_FEATURES), np.float64)
    for r in range(h):
        for c in range(w):
            for m in range(k):
                e = idx[r, c, m]
                if e < 0:
                    continue
                er, ec = int(eds_rc[e, 0]), int(eds_rc[e, 1])
                n = max(abs(er - r), abs(ec - c))
                pts = (
                    [(r, c)]
                    if n == 0
                    else [
                        (int(np.floor(r + (er - r) * t / n + 0.5)), int(np.floor(c + (ec - c) * t / n + 0.5)))
                        for t in range(n + 1)
                    ]
                )
                g = [float(grad[p]) for p in pts]
                dep = max(abs(float(bse[p]) - float(bse[r, c])) for p in pts)
                d, d0 = float(dist[r, c, m]), float(dist[r, c, 0])
                out[r, c, m] = [
                    d / 10,
                    m / k,
                    np.log1p(d / max(d0, 0.5)),
                    abs(float(bse[er, ec]) - float(bse[r, c])),
                    max(g),
                    sum(g) / len(g),
                    dep,
                    float(bse[er, ec]) - float(bse[r, c]),
                    (d - d0) / 10,
                ]
    return out
