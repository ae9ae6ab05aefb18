"""The overview of a sample: each field's phase map and BSE image, downsampled, at its stage position.

Each field makes its own thumbnail (:func:`thumbnail`, on the worker that predicted it); the
thumbnails are stitched by :func:`stitch` where each field *owns* its pixels (overlaps show the
owner's pixels, so seams fall half-way between field centres).  Downsampling: the phase map takes
every ``step``-th pixel (a class id cannot be averaged), the BSE the mean of ``step`` × ``step``
blocks (skimage.measure.block_reduce).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mingraph.common.files import write_bytes

NO_FIELD = -2  # a mosaic pixel no field covers


def overview_step(shape_px: tuple[int, int], max_side: int) -> int:
    """The downsampling factor that fits a (H, W) px sample into ``max_side`` px (≥ 1)."""
    return max(1, int(np.ceil(max(shape_px) / max(int(max_side), 1))))


def thumbnail(labels: np.ndarray, bse: np.ndarray, owned: np.ndarray, step: int) -> dict[str, np.ndarray]:
    """(labels int16, bse float32, owned bool) of a field, each (ceil(H/step), ceil(W/step))."""
    from skimage.measure import block_reduce

    s = int(step)
    return {
        "thumb_labels": np.asarray(labels[::s, ::s], np.int16),
        "thumb_bse": block_reduce(np.asarray(bse, np.float32), (s, s), np.mean).astype(np.float32),
        "thumb_owned": np.asarray(owned[::s, ::s], bool),
    }


def stitch(
    thumbs: Sequence[dict], origins_px: Sequence[tuple[int, int]], shape_px: tuple[int, int], step: int
) -> tuple[np.ndarray, np.ndarray]:
    """The sample's overview: (labels int16 with :data:`NO_FIELD` where no field lies, BSE float32
    NaN there), (ceil(H/step), ceil(W/step)) for a sample grid of ``shape_px`` (H, W) px."""
    h, w = -(-shape_px[0] // step), -(-shape_px[1] // step)
    lab = np.full((h, w), NO_FIELD, np.int16)
    bse = np.full((h, w), np.nan, np.float32)
    for t, (r0, c0) in zip(thumbs, origins_px):
        r, c = r0 // step, c0 // step
        tl, tb, to = t["thumb_labels"], t["thumb_bse"], t["thumb_owned"]
        hh, ww = min(tl.shape[0], h - r), min(tl.shape[1], w - c)
        own = to[:hh, :ww]
        lab[r : r + hh, c : c + ww][own] = tl[:hh, :ww][own]
        bse[r : r + hh, c : c + ww][own] = tb[:hh, :ww][own]
    return lab, bse


def _png(path: Path, rgb: np.ndarray) -> Path:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return write_bytes(path, buf.getvalue())


def write_overview(
    out_dir: str | os.PathLike, labels: np.ndarray, bse: np.ndarray, colours: np.ndarray
) -> dict[str, Path]:
    """``overview_phases.png`` (class colours; unclassified grey, no field black) and
    ``overview_bse.png`` (8-bit grey, no field black) of a stitched overview; their paths by name."""
    out = Path(out_dir)
    pal = np.vstack([np.asarray(colours, np.float64).reshape(-1, 3), [[0.5, 0.5, 0.5], [0.0, 0.0, 0.0]]])
    n = pal.shape[0] - 2
    idx = np.where(labels == NO_FIELD, n + 1, np.where(labels < 0, n, labels))
    rgb = (255 * pal[idx]).round().astype(np.uint8)
    grey = (255 * np.clip(np.nan_to_num(bse, nan=0.0), 0, 1)).round().astype(np.uint8)
    return {
        "overview_phases": _png(out / "overview_phases.png", rgb),
        "overview_bse": _png(out / "overview_bse.png", grey),
    }
