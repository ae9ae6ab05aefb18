"""Body checks of a graph shard: an Arrow IPC file whose framing is intact can still hold damaged
buffers (offsets past the end, blobs cut short, indices out of range).  Reading such a file
further aborts in C++ or raises deep in NumPy, so every row is checked once, on open, and the
first fault is reported as one InputError line naming the shard, the row and the column.
The ``point_features`` entry of a shard built with ``--classifier`` is checked too
(:func:`check_features`): its classifier, class names and width, and each row's features against them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mingraph.acquire.fields import N_CHANNELS
from mingraph.common.errors import InputError
from mingraph.spectra.point_classifier import CLASSIFIERS
from mingraph.spectra.window import EMBED_DIM

_SCALARS = ("height", "width", "label_bytes")
_BLOBS = (
    "bse",
    "valid",
    "labels",
    "eds_rc",
    "eds_labels",
    "delaunay",
    "embedding",
    "spec_ptr",
    "spec_channel",
    "spec_count",
)


def check_body(table: pa.Table, path: object) -> None:
    """Refuse a shard whose buffers are damaged; returns nothing when every row is consistent."""
    try:
        table.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowException) as e:
        raise InputError(path, "shard body", f"damaged ({e}): re-run build-graphs to rebuild it") from None
    cols = {k: table.column(k) for k in _SCALARS + _BLOBS}
    for i in range(table.num_rows):
        fault = _row_fault({k: _value(cols[k], i, k in _SCALARS) for k in cols})
        if fault is not None:
            col, what = fault
            raise InputError(
                path, "shard body", f"row {i}, column {col}: {what}: re-run build-graphs to rebuild it"
            )


def _value(col: pa.ChunkedArray, i: int, scalar: bool):
    v = col[i]
    if scalar:
        return v.as_py()
    buf = v.as_buffer()
    return b"" if buf is None else buf


def _arr(blob, dtype: str) -> np.ndarray:
    return np.frombuffer(blob, dtype=dtype)


def _row_fault(r: dict) -> tuple[str, str] | None:
    """(column, what is wrong) for the first inconsistency of one row, or None."""
    h, w, lb = r["height"], r["width"], r["label_bytes"]
    if h is None or w is None or h <= 0 or w <= 0:
        return "height/width", f"expected positive sizes, got {h}x{w}"
    if lb not in (1, 2, 4):
        return "label_bytes", f"expected 1, 2 or 4, got {lb}"
    sizes = {"bse": 2 * h * w, "valid": (h * w + 7) // 8}
    for col, size in sizes.items():
        if len(r[col]) != size:
            return col, f"{len(r[col])} bytes, expected {size} for {h}x{w} pixels"
    if len(r["labels"]) not in (0, lb * h * w):
        return "labels", f"{len(r['labels'])} bytes, expected {lb * h * w}"
    if len(r["eds_rc"]) % 8:
        return "eds_rc", f"{len(r['eds_rc'])} bytes is not a whole number of (row, col) int32 pairs"
    rc = _arr(r["eds_rc"], "<i4").reshape(-1, 2)
    n = rc.shape[0]
    if n and (rc.min() < 0 or rc[:, 0].max() >= h or rc[:, 1].max() >= w):
        return "eds_rc", f"EDS positions outside the {h}x{w} image"
    if len(r["eds_labels"]) not in (0, lb * n):
        return "eds_labels", f"{len(r['eds_labels'])} bytes for {n} EDS points"
    if len(r["delaunay"]) % 8:
        return "delaunay", "not a whole number of int32 edge pairs"
    de = _arr(r["delaunay"], "<i4")
    if de.size and (de.min() < 0 or de.max() >= n):
        return "delaunay", f"edge endpoints outside the {n} EDS points"
    emb = len(r["embedding"])
    if emb and (n == 0 or emb % (4 * n)):
        return "embedding", f"{emb} bytes is not a float32 row for each of {n} EDS points"
    if r["spec_ptr"]:
        if len(r["spec_ptr"]) != 4 * (n + 1):
            return "spec_ptr", f"{len(r['spec_ptr'])} bytes, expected {4 * (n + 1)}"
        ptr = _arr(r["spec_ptr"], "<i4")
        nnz = int(ptr[-1])
        if ptr[0] != 0 or (np.diff(ptr) < 0).any():
            return "spec_ptr", "pointers do not start at 0 and rise"
        if len(r["spec_channel"]) != 2 * nnz or len(r["spec_count"]) != 4 * nnz:
            return "spec_channel/spec_count", f"sizes do not hold the {nnz} entries the pointers say"
        if nnz and int(_arr(r["spec_channel"], "<u2").max()) >= N_CHANNELS:
            return "spec_channel", f"channel beyond {N_CHANNELS}"
    return None


def check_features(table: pa.Table, rec: object, path: object) -> dict:
    """``rec``, a shard's parsed ``point_features`` entry (:mod:`mingraph.graphs.point_features`),
    when it is whole and every row's features have its width (class probabilities in [0, 1] for
    the physics); else one InputError naming the shard, the entry (or row) and what was expected."""
    n_rows = table.num_rows
    if not isinstance(rec, dict):
        raise InputError(path, "point_features", "expected a JSON object")
    kind = rec.get("classifier")
    if kind not in CLASSIFIERS:
        raise InputError(
            path, "point_features.classifier", f"expected one of {', '.join(CLASSIFIERS)}, got {kind!r}"
        )
    width = rec.get("feature_width")
    if not isinstance(width, int) or isinstance(width, bool) or width <= 0:
        raise InputError(path, "point_features.feature_width", f"expected a positive integer, got {width!r}")
    if kind != "physics" and width != EMBED_DIM:
        raise InputError(
            path, "point_features.feature_width", f"expected {EMBED_DIM} for {kind}, got {width}"
        )
    if kind == "physics":
        _check_physics(rec, width, n_rows, path)
    rc, emb = table.column("eds_rc"), table.column("embedding")
    for i in range(n_rows):
        n = len(_value(rc, i, False)) // 8
        blob = _value(emb, i, False)
        if len(blob) != 4 * n * width:
            raise InputError(
                path,
                "shard body",
                f"row {i}, column embedding: {len(blob)} bytes, expected {4 * n * width} "
                f"({n} EDS points of {width} {kind} features): re-run build-graphs to rebuild it",
            )
        if kind == "physics" and n:
            p = _arr(blob, "<f4")
            if not (np.isfinite(p).all() and p.min() >= 0 and p.max() <= 1 + 1e-5):
                raise InputError(
                    path,
                    "shard body",
                    f"row {i}, column embedding: expected class probabilities in [0, 1]: "
                    "re-run build-graphs to rebuild it",
                )
    return rec


def _check_physics(rec: dict, width: int, n_rows: int, path: object) -> None:
    names = rec.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise InputError(path, "point_features.class_names", "expected a list of class names")
    if width != len(names) + 1:
        raise InputError(
            path,
            "point_features.feature_width",
            f"expected {len(names) + 1} ({len(names)} classes and unknown), got {width}",
        )
    cal = rec.get("calibrations")
    if not isinstance(cal, list) or len(cal) != n_rows:
        got = len(cal) if isinstance(cal, list) else type(cal).__name__
        raise InputError(path, "point_features.calibrations", f"expected one per graph ({n_rows}), got {got}")
    cols = rec.get("label_columns")
    if not isinstance(cols, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and -1 <= c < len(names) for c in cols
    ):
        raise InputError(
            path,
            "point_features.label_columns",
            f"expected a class column in [-1, {len(names) - 1}] for each dataset class",
        )
