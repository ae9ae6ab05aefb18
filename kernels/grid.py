"""8-neighbour pixel-grid edges (both directions, attribute 1 straight / sqrt(2) diagonal)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Neighbour offsets in the order edges are emitted for each source pixel.
GRID_OFFSETS = np.array(
    [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)], dtype=np.int64
)


def grid_edge_count(height: int, width: int) -> int:
    """Number of directed 8-neighbour edges of an H x W grid."""
    h, w = int(height), int(width)
    horiz = h * max(w - 1, 0)
    vert = max(h - 1, 0) * w
    diag = 2 * max(h - 1, 0) * max(w - 1, 0)
    return 2 * (horiz + vert + diag)


@njit(cache=True)
def _row_edge_count(r: int, h: int, w: int) -> int:
    nv = (1 if r > 0 else 0) + (1 if r < h - 1 else 0)
    return 2 * (w - 1) + nv * (w + 2 * (w - 1))


@njit(cache=True, parallel=True)
def _grid_edges(h, w, src, dst, attr, offsets, node_offset):
    diag = np.float32(math.sqrt(2.0))
    for r in prange(h):
        k = offsets[r]
        for c in range(w):
            p = r * w + c
            for dr in range(-1, 2):
                rr = r + dr
                if rr < 0 or rr >= h:
                    continue
                for dc in range(-1, 2):
                    cc = c + dc
                    if (dr == 0 and dc == 0) or cc < 0 or cc >= w:
                        continue
                    src[k] = p + node_offset
                    dst[k] = rr * w + cc + node_offset
                    attr[k] = diag if (dr != 0 and dc != 0) else np.float32(1.0)
                    k += 1


def grid_edges_into(
    height: int, width: int, src: np.ndarray, dst: np.ndarray, attr: np.ndarray, node_offset: int = 0
) -> None:
    """Write the ``grid_edge_count`` directed edges of an H x W grid into the given int64/int64/float32
    arrays (e.g. slices of a larger edge list), pixel (r, c) numbered ``node_offset + r*W + c``."""
    h, w = int(height), int(width)
    n = grid_edge_count(h, w)
    if not (src.shape[0] == dst.shape[0] == attr.shape[0] == n):
        raise ValueError(f"grid_edges_into: arrays must hold {n} edges")
    if n == 0:
        return
    if h < 3:
        counts = np.array([_row_edge_count(r, h, w) for r in range(h)], np.int64)
    else:  # all interior rows share one count: avoid a Python loop over rows
        counts = np.full(h, 2 * (w - 1) + 2 * (w + 2 * (w - 1)), np.int64)
        counts[0] = counts[-1] = 2 * (w - 1) + (w + 2 * (w - 1))
    offsets = np.zeros(h, np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    _grid_edges(h, w, src, dst, attr, offsets, np.int64(node_offset))


def grid_edges(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed 8-neighbour edges of an H x W grid, pixel (r, c) numbered r*W + c.

    Returns (src, dst) int64 and attr float32 (1 or sqrt 2), sorted by source pixel then by
    neighbour in row-major order; every edge appears in both directions.
    """
    h, w = int(height), int(width)
    if h < 0 or w < 0:
        raise ValueError(f"grid_edges: negative size {h}x{w}")
    n = grid_edge_count(h, w)
    src = np.empty(n, np.int64)
    dst = np.empty(n, np.int64)
    attr = np.empty(n, np.float32)
    grid_edges_into(h, w, src, dst, attr)
    return src, dst, attr
