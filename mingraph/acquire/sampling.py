"""Where to measure EDS: random, regular-grid or instrument-mask sampling patterns over valid pixels."""

from __future__ import annotations

import numpy as np

from mingraph.common.errors import InputError

PATTERNS = ("random", "grid", "mask")


def n_points(n_valid: int, fraction: float) -> int:
    """Number of EDS points for a fraction of the valid pixels (rounded, at least 1 if fraction > 0)."""
    if not 0.0 <= fraction <= 1.0:
        raise InputError("sampling", "fraction", f"expected a fraction in [0, 1], got {fraction}")
    if fraction == 0.0 or n_valid == 0:
        return 0
    return max(1, int(round(fraction * n_valid)))


def sample_points(
    valid: np.ndarray,
    fraction: float,
    pattern: str = "random",
    rng: np.random.Generator | None = None,
    eds_mask: np.ndarray | None = None,
) -> np.ndarray:
    """EDS positions (n, 2) int32 (row, col), sorted row-major, all on valid pixels.

    ``random``: uniform without replacement; ``grid``: a square lattice of spacing 1/sqrt(fraction)
    at a random offset (TIMA "dots" mode); ``mask``: the pixels the instrument measured.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    valid = np.asarray(valid, dtype=bool)
    if pattern == "mask":
        if eds_mask is None:
            raise InputError(
                "sampling", "eds_mask", "pattern 'mask' needs a sample with an EDS sampling mask"
            )
        if eds_mask.shape != valid.shape:
            raise InputError(
                "sampling", "eds_mask", f"shape {eds_mask.shape} differs from the image {valid.shape}"
            )
        sel = np.flatnonzero(eds_mask & valid)
    elif pattern == "random":
        idx = np.flatnonzero(valid)
        sel = np.sort(rng.choice(idx, size=n_points(idx.size, fraction), replace=False)) if idx.size else idx
    elif pattern == "grid":
        if fraction <= 0.0:
            sel = np.zeros(0, np.int64)
        else:
            step = 1.0 / np.sqrt(min(fraction, 1.0))
            h, w = valid.shape
            r0, c0 = rng.random(2) * step
            rows = np.unique(np.floor(np.arange(r0, h, step)).astype(np.int64))
            cols = np.unique(np.floor(np.arange(c0, w, step)).astype(np.int64))
            rr, cc = np.meshgrid(rows[rows < h], cols[cols < w], indexing="ij")
            flat = (rr * w + cc).ravel()
            sel = np.sort(flat[valid.ravel()[flat]])
    else:
        raise InputError("sampling", "pattern", f"expected one of {PATTERNS}, got {pattern!r}")
    w = valid.shape[1]
    return np.stack([sel // w, sel % w], axis=1).astype(np.int32).reshape(-1, 2)
