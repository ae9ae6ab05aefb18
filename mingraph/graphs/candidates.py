"""The fusion model's graph: every pixel linked to its k nearest EDS points, with BSE edge features.

Kept compact like the structured graph: an (H, W, k) index map into the EDS points (−1 where a
field has fewer than k points), their distances, and (H, W, k, 9) edge features
(:mod:`mingraph_kernels.candidates`), beside the field's standardised BSE.

BSE standardisation (per field, so that gain, offset and contrast of the detector do not move
the model): b = (BSE − median) / max(p95 − p5, 0.02) over the valid pixels; the gradient is the
Sobel magnitude of b smoothed by a Gaussian of σ = 1 px (scipy.ndimage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mingraph.common.errors import InputError
from mingraph_kernels.candidates import N_FEATURES, segment_features
from mingraph_kernels.knn import pixel_knn

DEFAULT_K = 8


def bse_scale(bse: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """(median, spread) of a field's BSE over its valid pixels, spread = max(p95 − p5, 0.02)."""
    b = np.asarray(bse, dtype=np.float32)
    v = b[valid] if np.asarray(valid, bool).any() else b.ravel()
    lo, med, hi = np.percentile(v, [5, 50, 95])
    return float(med), max(float(hi - lo), 0.02)


POINT_WINDOW = 2  # px: the BSE around each EDS point that point_bse_scale reads (a 5 × 5 window)
POINT_SCALE_MAX = 20_000  # points point_bse_scale reads at most (evenly spaced in the list beyond)


def point_bse_scale(bse: np.ndarray, eds_rc: np.ndarray, radius: int = POINT_WINDOW) -> tuple[float, float]:
    """(median, spread) of a field's BSE around its EDS points, spread = max(p95 − p5, 0.02).

    The instrument places its points on the specimen, so this scale needs no specimen mask:
    the same field standardised with or without one gives the same BSE.  Each point contributes
    the (2 ``radius`` + 1)² window around it, clipped at the field's edge.  Beyond
    :data:`POINT_SCALE_MAX` points, that many evenly spaced in the list are read (memory stays
    bounded on dense maps; deterministic).

    Parameters
    ----------
    bse : (H, W) float
        BSE, any scale.
    eds_rc : (N, 2) int
        EDS points, row and column (px), N ≥ 1.
    radius : int
        Half the window's side, px.

    Returns
    -------
    (float, float)
        The median and the spread (p95 − p5, at least 0.02), in ``bse``'s units.

    Raises
    ------
    ValueError
        No points.

    Examples
    --------
    >>> b = np.zeros((20, 20), np.float32); b[:, 10:] = 1.0  # resin left, a grain right
    >>> point_bse_scale(b, np.array([[5, 15], [12, 16]]))
    (1.0, 0.02)
    """
    b = np.asarray(bse, dtype=np.float32)
    rc = np.asarray(eds_rc, dtype=np.int64).reshape(-1, 2)
    if not len(rc):
        raise ValueError("point_bse_scale needs at least one EDS point")
    if len(rc) > POINT_SCALE_MAX:
        rc = rc[np.linspace(0, len(rc) - 1, POINT_SCALE_MAX).round().astype(np.int64)]
    d = np.arange(-radius, radius + 1)
    rr = np.clip(rc[:, 0, None, None] + d[None, :, None], 0, b.shape[0] - 1)
    cc = np.clip(rc[:, 1, None, None] + d[None, None, :], 0, b.shape[1] - 1)
    lo, med, hi = np.percentile(b[rr, cc], [5, 50, 95])
    return float(med), max(float(hi - lo), 0.02)


STANDARDISE = ("valid", "points")


def field_scale(
    bse: np.ndarray, valid: np.ndarray, eds_rc: np.ndarray | None, standardise: str = "valid"
) -> tuple[float, float]:
    """(median, spread) a fusion model standardises a field's BSE with: :func:`bse_scale` over
    the valid pixels (``standardise = "valid"``, every file before issue 23's retrain) or
    :func:`point_bse_scale` around the EDS points (``"points"``; the valid pixels when there is
    no point).

    Parameters
    ----------
    bse : (H, W) float
        BSE, any scale.
    valid : (H, W) bool
        Specimen pixels.
    eds_rc : (N, 2) int or None
        EDS points, row and column (px).
    standardise : {"valid", "points"}
        Which pixels the percentiles are taken over.

    Returns
    -------
    (float, float)
        The median and the spread, in ``bse``'s units.

    Raises
    ------
    ValueError
        An unknown ``standardise``.

    Examples
    --------
    >>> b = np.zeros((20, 20), np.float32); b[:, 10:] = 1.0
    >>> field_scale(b, np.ones((20, 20), bool), np.array([[5, 15]]), "points")
    (1.0, 0.02)
    >>> field_scale(b, np.ones((20, 20), bool), np.array([[5, 15]]), "valid")
    (0.5, 1.0)
    """
    if standardise not in STANDARDISE:
        raise ValueError(f"unknown standardise {standardise!r}; expected one of {STANDARDISE}")
    if standardise == "points" and eds_rc is not None and len(eds_rc):
        return point_bse_scale(bse, eds_rc)
    return bse_scale(bse, valid)


def standardise_bse(
    bse: np.ndarray, valid: np.ndarray, scale: tuple[float, float] | None = None
) -> np.ndarray:
    """(H, W) float32 standardised BSE (module docstring); ``scale`` (median, spread) of the whole
    field when ``bse`` is a block of it (so that blocks agree with the whole field)."""
    med, spread = bse_scale(bse, valid) if scale is None else scale
    return ((np.asarray(bse, dtype=np.float32) - med) / spread).astype(np.float32)


def bse_gradient(b: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(smoothed b, its Sobel gradient magnitude), both (H, W) float32, per pixel."""
    bs = ndimage.gaussian_filter(np.asarray(b, np.float32), sigma)
    g = np.hypot(ndimage.sobel(bs, 0), ndimage.sobel(bs, 1)) / 8.0  # Sobel gain is 8
    return bs.astype(np.float32), g.astype(np.float32)


@dataclass
class CandidateGraph:
    """One field's fusion graph: ``bse`` (H, W) standardised, ``valid`` (H, W) bool, ``eds_rc``
    (N, 2) int64, ``idx`` (H, W, k) int64 (−1 = no candidate), ``features`` (H, W, k, 9) float32."""

    bse: np.ndarray
    valid: np.ndarray
    eds_rc: np.ndarray
    idx: np.ndarray
    features: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.bse.shape  # type: ignore[return-value]

    @property
    def n_eds(self) -> int:
        return int(self.eds_rc.shape[0])


def build_candidate_graph(
    bse: np.ndarray,
    valid: np.ndarray,
    eds_rc: np.ndarray,
    k: int = DEFAULT_K,
    scale: tuple[float, float] | None = None,
) -> CandidateGraph:
    """The k-nearest-EDS graph of a field (ties in distance to the lowest point index,
    :func:`mingraph_kernels.knn.pixel_knn`).

    ``bse`` (H, W) any float scale, ``valid`` (H, W) bool, ``eds_rc`` (N, 2) integer row/col inside
    the field; ``scale`` the whole field's :func:`bse_scale` when this is a block of it.  Raises
    InputError on shapes or points outside the field.
    """
    bse = np.asarray(bse)
    valid = np.asarray(valid, dtype=bool)
    rc = np.asarray(eds_rc, dtype=np.int64).reshape(-1, 2)
    if bse.ndim != 2 or valid.shape != bse.shape:
        raise InputError(
            "fusion graph",
            "bse",
            f"expected (H, W) BSE and mask of one shape, got {bse.shape}, {valid.shape}",
        )
    if k < 1:
        raise InputError("fusion graph", "k", f"expected k >= 1, got {k}")
    if len(rc) and (rc.min() < 0 or (rc >= bse.shape).any()):
        raise InputError("fusion graph", "eds_rc", f"EDS points must lie inside the {bse.shape} field")
    b = standardise_bse(bse, valid, scale)
    idx, dist = pixel_knn(b.shape, rc, k)
    bs, grad = bse_gradient(b)
    feats = segment_features(bs, grad, idx, dist, rc)
    return CandidateGraph(b, valid, rc, idx, feats)


__all__ = [
    "CandidateGraph",
    "build_candidate_graph",
    "point_bse_scale",
    "field_scale",
    "standardise_bse",
    "bse_gradient",
    "DEFAULT_K",
    "N_FEATURES",
]
