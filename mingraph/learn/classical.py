"""Classical fusion baselines: BSE-geodesic nearest-EDS and BSE-segment vote.

Both take the same inputs as every other method (the field's BSE, its valid mask, the measured
EDS points and the class each point's spectrum gets) and need no training beyond one parameter,
chosen on the validation split (:func:`choose_parameter`).

* **BSE-geodesic nearest-EDS**: each pixel takes the class of the EDS point it reaches most
  cheaply, where a step of length ℓ between pixels a and b costs ℓ (c_a + c_b) / 2 with
  c = 1 + α |∇BSE| (Sobel magnitude of the BSE scaled by its 1–99 % range): crossing a BSE edge is
  expensive, so labels stop at grain boundaries.  Minimum-cost paths by scikit-image's
  ``MCP_Geometric`` (Dijkstra on the 8-connected grid); α = 0 is nearest-EDS in the octile path
  metric of that grid (within 8 % of Euclidean nearest-EDS).
* **BSE-segment vote**: what Bruker AMICS' segmentation mode and MLA's XBSE do: segment the BSE
  image (SLIC superpixels, Achanta et al. 2012, scikit-image), give each segment the majority
  class of the EDS points inside it, and let segments without a point fall back to nearest-EDS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from mingraph.common.errors import InputError

GEODESIC_ALPHAS = (0.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
"""Edge-cost weights tried first on the validation split (α = 0 is plain nearest-EDS); ``mingraph
evaluate`` extends them while the best is the largest (:func:`mingraph.analyse.methods.tune_parameter`)."""
SEGMENT_SIZES_PX = (16, 36, 64, 144, 256)
"""Mean SLIC segment areas (pixels) tried on the validation split, with sizes from the point
spacing at each fraction (:class:`mingraph.analyse.methods.SegmentVote`)."""


def _check(bse: np.ndarray, valid: np.ndarray, eds_rc: np.ndarray, eds_classes: np.ndarray):
    bse = np.asarray(bse, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    rc = np.asarray(eds_rc, dtype=np.int64).reshape(-1, 2)
    cls = np.asarray(eds_classes, dtype=np.int64).reshape(-1)
    if bse.ndim != 2 or valid.shape != bse.shape:
        raise InputError(
            "baseline", "bse", f"expected (H, W) BSE and mask of one shape, got {bse.shape} and {valid.shape}"
        )
    if len(cls) != len(rc):
        raise InputError(
            "baseline", "eds_classes", f"expected {len(rc)} classes (one per EDS point), got {len(cls)}"
        )
    if len(rc) and (rc.min() < 0 or (rc >= bse.shape).any()):
        raise InputError("baseline", "eds_rc", f"EDS points must lie inside the {bse.shape} field")
    return bse, valid, rc, cls


def bse_edge_cost(bse: np.ndarray, alpha: float) -> np.ndarray:
    """(H, W) float64 local cost 1 + α |∇BSE|, the gradient (Sobel) of the BSE scaled by its
    1–99 % range so that α means the same for any BSE gain and offset."""
    bse = np.asarray(bse, dtype=np.float64)
    lo, hi = np.percentile(bse, [1, 99])
    scaled = (bse - lo) / max(hi - lo, 1e-12)
    grad = np.hypot(ndimage.sobel(scaled, 0), ndimage.sobel(scaled, 1)) / 8.0  # Sobel gain is 8
    return 1.0 + float(alpha) * grad


def geodesic_nearest_eds(
    bse: np.ndarray, valid: np.ndarray, eds_rc: np.ndarray, eds_classes: np.ndarray, alpha: float = 30.0
) -> np.ndarray:
    """(H, W) int64 class of the EDS point each pixel reaches at least cost (module docstring).

    ``bse`` (H, W) float, ``valid`` (H, W) bool (invalid pixels cost 10× the most expensive valid
    step, so paths avoid resin and holes but every particle stays reachable), ``eds_rc`` (N, 2)
    row/col, ``eds_classes`` (N,) ints (-1 = unclassified point).  No point: all -1.
    """
    from skimage.graph import MCP_Geometric

    bse, valid, rc, cls = _check(bse, valid, eds_rc, eds_classes)
    if len(rc) == 0:
        return np.full(bse.shape, -1, np.int64)
    cost = bse_edge_cost(bse, alpha)
    cost[~valid] = 10.0 * cost[valid].max() if valid.any() else 1.0
    mcp = MCP_Geometric(cost, fully_connected=True)
    _, traceback = mcp.find_costs([tuple(p) for p in rc])
    h, w = bse.shape
    offsets = np.asarray(mcp.offsets, dtype=np.int64)
    idx = np.arange(h * w, dtype=np.int64)
    tb = traceback.reshape(-1)
    step = offsets[np.maximum(tb, 0)]
    parent = np.where(tb >= 0, idx - step[:, 0] * w - step[:, 1], idx)
    while True:  # pointer doubling: every pixel's path collapses onto its start in log steps
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    start_class = np.full(h * w, -1, np.int64)
    flat = rc[:, 0] * w + rc[:, 1]
    start_class[flat[::-1]] = cls[::-1]  # several points on one pixel: the first one's class
    return start_class[parent].reshape(h, w)


def segment_vote(
    bse: np.ndarray,
    valid: np.ndarray,
    eds_rc: np.ndarray,
    eds_classes: np.ndarray,
    nearest: np.ndarray,
    segment_px: float = 64.0,
    compactness: float = 0.05,
) -> np.ndarray:
    """(H, W) int64 classes by BSE-segment vote (module docstring).

    ``nearest`` (H, W) is the nearest-EDS map used where a segment holds no point; ``segment_px``
    the mean SLIC segment area in pixels; ``compactness`` SLIC's (for BSE scaled to 0..1).
    Ties in a segment's vote go to the lowest class id.
    """
    from skimage.segmentation import slic

    bse, valid, rc, cls = _check(bse, valid, eds_rc, eds_classes)
    if not valid.any():  # a field of resin only: no segment, nothing to vote (SLIC refuses an empty mask)
        return np.asarray(nearest, dtype=np.int64).copy()
    lo, hi = np.percentile(bse, [1, 99])
    scaled = np.clip((bse - lo) / max(hi - lo, 1e-12), 0, 1)
    n_seg = max(1, int(round(valid.sum() / float(segment_px))))
    seg = slic(
        scaled, n_segments=n_seg, compactness=compactness, channel_axis=None, mask=valid, start_label=1
    )
    out = np.asarray(nearest, dtype=np.int64).copy()
    keep = cls >= 0
    if not keep.any():
        return out
    s_of_point = seg[rc[keep, 0], rc[keep, 1]]
    inside = s_of_point > 0
    n_cls = int(cls.max()) + 1
    votes = np.zeros((int(seg.max()) + 1, n_cls), np.int64)
    np.add.at(votes, (s_of_point[inside], cls[keep][inside]), 1)
    has = votes.sum(1) > 0
    winner = np.where(has, votes.argmax(1), -1)
    px_winner = winner[seg]
    take = (seg > 0) & (px_winner >= 0)
    out[take] = px_winner[take]
    return out


def choose_parameter(
    candidates: Sequence[float], score: Callable[[float], float]
) -> tuple[float, dict[float, float]]:
    """The candidate with the highest ``score`` (validation F1), and every candidate's score."""
    table = {float(c): float(score(c)) for c in candidates}
    best = max(table, key=lambda c: (table[c], -c))
    return best, table
