"""A sample as one OME-Zarr pyramid (NGFF 0.4): the stitched BSE, confidence and phase map.

Layout of the store (zarr format 2, ``/``-separated chunk keys, as NGFF 0.4 asks)::

    .zattrs          multiscales (axes c, y, x; y and x in micrometer) and omero channels
    0/ 1/ ... L/     the image, (2, H_l, W_l) float32: channel 0 the BSE (0..1), channel 1 the
                     confidence (0..1); NaN where no field lies
    labels/phases/   the phase map as an NGFF label image: 0/ ... L/, (H_l, W_l) int16, the class
                     id, -1 unclassified, -2 (:data:`mingraph.analyse.mosaic.NO_FIELD`) no field;
                     ``image-label`` colours (the legend's) and properties (the mineral names)

Confidence is a channel of the image rather than an image of its own: NGFF 0.4 has no second
image beside the first, and every viewer shows channels.

Level ``l`` keeps every ``2**l``-th pixel of the sample's full-resolution grid (rows and columns
``0, 2**l, 2 * 2**l, ...``), for the phase map (a class id cannot be averaged) and the BSE alike:
so every level is a function of each field's owned pixels alone, written field by field in any
order, and the store equals the stitched full-resolution mosaic taken by the same stride.  (The
PNG overview of ``predict-sample`` averages the BSE in blocks instead and takes each field's
stride from its own origin.)  Levels are added until the coarsest fits :data:`COARSEST_PX`.

:func:`create_store` makes the empty store once the sample's layout is known;
:func:`write_field_region` writes one field's owned pixels into every level (one field at a
time: fields share chunks, so concurrent writers would race); the names of the fields written
are kept in the root's ``mingraph`` attributes (:func:`mark_written`, :func:`fields_written`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from mingraph.analyse.mosaic import NO_FIELD

CHUNK_PX = 512
COARSEST_PX = 512
CHANNELS = ("BSE", "confidence")
LABELS = "phases"


def level_shapes(shape_px: tuple[int, int], coarsest: int | None = None) -> list[tuple[int, int]]:
    """(H_l, W_l) of every level: ceil(H / 2**l), until the longer side fits ``coarsest`` px
    (:data:`COARSEST_PX` by default).

    Examples
    --------
    >>> level_shapes((1500, 700))
    [(1500, 700), (750, 350), (375, 175)]
    """
    h, w = int(shape_px[0]), int(shape_px[1])
    coarsest = COARSEST_PX if coarsest is None else int(coarsest)
    shapes = [(h, w)]
    while max(shapes[-1]) > coarsest:
        s = 2 ** len(shapes)
        shapes.append((-(-h // s), -(-w // s)))
    return shapes


def _hex(rgb) -> str:
    return "".join(f"{int(round(255 * float(v))):02x}" for v in rgb)


def create_store(
    path: str | os.PathLike,
    shape_px: tuple[int, int],
    pixel_size_um: float,
    class_names: Sequence[str],
    colours: np.ndarray,
    fields: Sequence[str],
    name: str = "sample",
):
    """Make the empty store at ``path`` (it must not exist) for a sample grid of ``shape_px`` (H, W)
    px of ``pixel_size_um``; ``colours`` (n, 3) in 0..1 the classes' (the legend's).  ``fields``:
    the sample's field names, recorded with the layout.  Returns the root ``zarr.Group``."""
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

    fmt = FormatV04()
    px = float(pixel_size_um)
    shapes = level_shapes(shape_px)
    root = zarr.open_group(str(path), mode="w-", zarr_format=2)
    labels = root.create_group("labels").create_group(LABELS)
    opts = {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
    for level, (h, w) in enumerate(shapes):
        root.create_array(
            str(level), shape=(2, h, w), chunks=(1, CHUNK_PX, CHUNK_PX), dtype="f4", fill_value=np.nan, **opts
        )
        labels.create_array(
            str(level), shape=(h, w), chunks=(CHUNK_PX, CHUNK_PX), dtype="i2", fill_value=NO_FIELD, **opts
        )

    def datasets(channel: bool) -> list[dict]:
        return [
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"type": "scale", "scale": ([1.0] if channel else []) + [px * 2**level] * 2}
                ],
            }
            for level in range(len(shapes))
        ]

    um = {"y": "micrometer", "x": "micrometer"}
    window = {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0}
    omero = {
        "channels": [
            {"label": c, "color": col, "window": dict(window), "active": c == "BSE"}
            for c, col in zip(CHANNELS, ("ffffff", "ff00ff"))
        ]
    }
    write_multiscales_metadata(
        root,
        datasets(True),
        fmt=fmt,
        axes=["c", "y", "x"],
        axes_units=um,
        name=name,
        metadata={"omero": omero},
    )
    write_multiscales_metadata(labels, datasets(False), fmt=fmt, axes=["y", "x"], axes_units=um, name=LABELS)
    cols = np.asarray(colours, np.float64).reshape(-1, 3)
    colors = [
        {"label-value": i, "rgba": [*(int(round(255 * v)) for v in c), 255]} for i, c in enumerate(cols)
    ]
    colors += [
        {"label-value": -1, "rgba": [128, 128, 128, 255]},
        {"label-value": NO_FIELD, "rgba": [0, 0, 0, 0]},
    ]
    props = [{"label-value": i, "name": str(n), "colour": _hex(cols[i])} for i, n in enumerate(class_names)]
    props += [{"label-value": -1, "name": "unclassified"}, {"label-value": NO_FIELD, "name": "no field"}]
    write_label_metadata(
        root["labels"], LABELS, colors=colors, properties=props, fmt=fmt, source={"image": "../../"}
    )
    root.attrs["mingraph"] = {"layout": layout(shape_px, pixel_size_um, class_names, fields), "written": []}
    return root


def layout(shape_px, pixel_size_um: float, class_names: Sequence[str], fields: Sequence[str]) -> dict:
    """What a store's pixels are laid out by (a reopened store must have the same)."""
    return {
        "shape_px": [int(v) for v in shape_px],
        "pixel_size_um": float(pixel_size_um),
        "classes": [str(n) for n in class_names],
        "fields": [str(f) for f in fields],
        "levels": len(level_shapes(shape_px)),
        "chunk_px": CHUNK_PX,
    }


def fields_written(root) -> list[str]:
    """The names of the fields whose regions the store holds, in the order they were written."""
    return list(root.attrs.get("mingraph", {}).get("written", []))


def mark_written(root, name: str) -> None:
    """Record field ``name`` as written (after its regions are; a kill before leaves it to redo)."""
    meta = dict(root.attrs["mingraph"])
    meta["written"] = [*meta["written"], str(name)]
    root.attrs["mingraph"] = meta


def _strided(origin: int, size: int, stride: int) -> tuple[int, int, int]:
    """(first, stop) level index and the local offset of field pixels ``origin .. origin+size`` at
    ``stride``: the global pixels ``g * stride`` with origin <= g * stride < origin + size."""
    first = -(-origin // stride)
    stop = -(-(origin + size) // stride)
    return first, stop, first * stride - origin


def write_field_region(
    root,
    origin_px: tuple[int, int],
    labels: np.ndarray,
    bse: np.ndarray,
    confidence: np.ndarray,
    owned: np.ndarray,
) -> None:
    """Write one field's owned pixels into every level of the store.

    ``labels`` (H, W) class ids (-1 unclassified), ``bse`` and ``confidence`` (H, W) in 0..1,
    ``owned`` (H, W) bool the pixels this field owns (:func:`mingraph.acquire.sample.owned_mask`);
    ``origin_px`` (row, col) its top-left pixel in the sample's grid.  Pixels the field does not own
    keep what is stored (another field's, or the fill), so the result does not depend on the order
    of the fields.  One chunk at a time: each chunk the field touches is read, given the field's
    pixels and written whole (not read when the field owns all of it), so that memory holds the
    field's maps and one chunk, whatever the field's size against the chunks'.
    """
    levels = len(root["labels"][LABELS])
    for level in range(levels):
        s = 2**level
        a, b, lr = _strided(origin_px[0], labels.shape[0], s)
        c, d, lc = _strided(origin_px[1], labels.shape[1], s)
        if a >= b or c >= d:
            continue
        own = owned[lr::s, lc::s]
        if not own.any():
            continue
        for arr, key, values in (
            (root["labels"][LABELS][str(level)], (), labels),
            (root[str(level)], (0,), bse),
            (root[str(level)], (1,), confidence),
        ):
            _write_chunks(arr, key, (a, b, c, d), values[lr::s, lc::s], own)


def _write_chunks(
    arr, key: tuple, box: tuple[int, int, int, int], values: np.ndarray, own: np.ndarray
) -> None:
    """Set ``arr[key][a:b, c:d][own] = values[own]``, chunk by chunk (``box`` = (a, b, c, d))."""
    a, b, c, d = box
    ch, cw = arr.chunks[-2:]
    h, w = arr.shape[-2:]
    for r0 in range(a - a % ch, b, ch):
        r1 = min(r0 + ch, h)
        for c0 in range(c - c % cw, d, cw):
            c1 = min(c0 + cw, w)
            ra, rb, ca, cb = max(r0, a), min(r1, b), max(c0, c), min(c1, d)
            o = own[ra - a : rb - a, ca - c : cb - c]
            if not o.any():
                continue
            v = values[ra - a : rb - a, ca - c : cb - c]
            sel = (*key, slice(r0, r1), slice(c0, c1))
            if (ra, rb, ca, cb) == (r0, r1, c0, c1) and o.all():
                arr[sel] = np.asarray(v, arr.dtype)  # the field owns the whole chunk: no read
                continue
            cur = arr[sel]
            cur[ra - r0 : rb - r0, ca - c0 : cb - c0][o] = v[o]
            arr[sel] = cur
