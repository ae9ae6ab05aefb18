"""BSE maps of an acquisition state that the model-driven strategies share: structure (the BSE
gradient, ``uncertainty.py`` and ``slads.py``) and novelty (``uncertainty.py``), cached in the state."""

from __future__ import annotations

import numpy as np

from mingraph.acquisition.state import AcquisitionState


def bse_structure(state: AcquisitionState) -> np.ndarray:
    """(H, W) float32 ĝ in [0, 1]: Sobel gradient magnitude of the field's standardised BSE
    (σ = 1 px, :func:`mingraph.graphs.candidates.bse_gradient`) over its 99th percentile on valid
    pixels.  Cached in the state."""
    from mingraph.graphs.candidates import bse_gradient, standardise_bse

    if state.structure is None:
        _, g = bse_gradient(standardise_bse(state.bse, state.valid))
        ref = float(np.percentile(g[state.valid], 99)) if state.valid.any() else 1.0
        state.gradient = g
        state.structure = np.clip(g / max(ref, 1e-6), 0, 1).astype(np.float32)
    return state.structure


def bse_novelty(state: AcquisitionState, tolerance: float = 0.1) -> np.ndarray:
    """(H, W) float32 in [0, 1]: how far a pixel's BSE level lies from every measured point's,
    min_j |b_s − b_j| / ``tolerance`` clipped to 1, on the standardised BSE smoothed by σ = 1 px
    (:func:`mingraph.graphs.candidates.bse_gradient`): a BSE level no spectrum has seen yet is a
    phase the map may be missing (rare phases of distinct mean Z)."""
    from mingraph.graphs.candidates import bse_gradient, standardise_bse

    if state.bse_smooth is None:
        state.bse_smooth = bse_gradient(standardise_bse(state.bse, state.valid))[0]
    b = state.bse_smooth
    levels = np.sort(b[state.points[:, 0], state.points[:, 1]])
    if levels.size == 0:
        return np.ones(b.shape, np.float32)
    i = np.clip(np.searchsorted(levels, b), 1, max(levels.size - 1, 1))
    d = np.minimum(np.abs(b - levels[i - 1]), np.abs(b - levels[np.minimum(i, levels.size - 1)]))
    return np.clip(d / tolerance, 0, 1).astype(np.float32)
