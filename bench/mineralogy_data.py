"""A synthetic particle mount for the mineralogy bench: square grains of random phases in blobs of specimen."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def synthetic_mount(side: int, grain_px: int = 9, n_classes: int = 50, seed: int = 0):
    """(labels int16 (side, side), valid bool, confidence float32): ~side²/grain_px² grains, ~65 % specimen.

    Grains are grain_px-square blocks of a random phase (neighbours of one phase merge); particles are
    blobs of smoothed noise at 1/16 resolution, some touching (so the watershed has work to do).
    """
    rng = np.random.default_rng(seed)
    n = -(-side // grain_px)
    small = rng.integers(0, n_classes, (n, n)).astype(np.int16)
    lab = np.repeat(np.repeat(small, grain_px, 0), grain_px, 1)[:side, :side]
    m = -(-side // 16)
    noise = ndimage.gaussian_filter(rng.random((m, m)), 2.5)
    valid = np.repeat(np.repeat(noise > np.quantile(noise, 0.35), 16, 0), 16, 1)[:side, :side]
    lab = np.where(valid, lab, -1).astype(np.int16)
    conf = (0.4 + 0.6 * rng.random((side, side), dtype=np.float32)).astype(np.float32)
    return lab, valid, conf
