"""The one block tiler: a field of any size through a phase model, block by block.

Each block's window holds the block plus a margin on every side (at least the model's
``min_margin``, and four mean EDS spacings so that a point's neighbours stay inside); the model
sees the window and only the block's part of its answer is kept.  Memory is bounded by the block
size, whatever the field size; a field no larger than one block is one window, the whole field.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mingraph.common.errors import InputError


def block_margin(shape: tuple[int, int], n_eds: int, minimum: int = 32) -> int:
    """Overlap margin (px): 4 mean EDS spacings (3 hops of Delaunay neighbours stay inside), at
    least ``minimum``.

    Examples
    --------
    >>> block_margin((1000, 1000), 10_000)   # spacing 10 px
    40
    >>> block_margin((1000, 1000), 0, minimum=64)
    64
    """
    if n_eds == 0:
        return minimum
    spacing = float(np.sqrt(shape[0] * shape[1] / n_eds))
    return int(max(minimum, np.ceil(4 * spacing)))


@torch.no_grad()
def block_probabilities(
    model,
    settings: dict,
    bse: np.ndarray,
    valid: np.ndarray,
    eds_rc: np.ndarray,
    features: np.ndarray,
    block: int = 1024,
    progress: bool = False,
) -> Iterator[tuple[tuple[slice, slice], torch.Tensor | None]]:
    """Yield, block by block, (the block's slices in the field, its class probabilities).

    Parameters
    ----------
    model : PhaseModel
        Any registered model (:mod:`mingraph.learn.registry`).
    settings : dict
        The model file's settings (graph options, backend).
    bse : (H, W) float32
        BSE in [0, 1].
    valid : (H, W) bool
        Specimen pixels.
    eds_rc : (N, 2) int
        EDS points, row and column (px).
    features : (N, D) float32
        The points' features (:meth:`PhaseModel.point_features`).
    block : int
        Block side (px), at least 16.
    progress : bool
        Show a progress bar when there is more than one block.

    Yields
    ------
    (slice, slice), Tensor or None
        The block's rows and columns, and (h, w, classes) probabilities over them (None where the
        model cannot say, e.g. a window without EDS points).

    Raises
    ------
    InputError
        A block side under 16 px.
    """
    from tqdm import tqdm

    if block < 16:
        raise InputError("--block", "block", f"expected a block side of at least 16 pixels, got {block}")
    h, w = bse.shape
    rc = np.asarray(eds_rc).reshape(-1, 2)
    margin = block_margin((h, w), rc.shape[0], minimum=model.min_margin)
    jobs = [(r, c) for r in range(0, h, block) for c in range(0, w, block)]
    single = len(jobs) == 1
    context = model.field_context(bse, valid, rc)  # the whole field's, for every block
    for r0, c0 in tqdm(jobs, desc="predict", unit="block", disable=not progress or single):
        r1, c1 = min(r0 + block, h), min(c0 + block, w)
        wr0, wc0 = (0, 0) if single else (max(0, r0 - margin), max(0, c0 - margin))
        wr1, wc1 = (h, w) if single else (min(h, r1 + margin), min(w, c1 + margin))
        inside = (rc[:, 0] >= wr0) & (rc[:, 0] < wr1) & (rc[:, 1] >= wc0) & (rc[:, 1] < wc1)
        local = (rc[inside] - np.array([wr0, wc0])).astype(rc.dtype)
        p = model.block_probabilities(
            bse[wr0:wr1, wc0:wc1], valid[wr0:wr1, wc0:wc1], local, features[inside], context, settings
        )
        yield (
            (slice(r0, r1), slice(c0, c1)),
            None if p is None else p[r0 - wr0 : r1 - wr0, c0 - wc0 : c1 - wc0],
        )
