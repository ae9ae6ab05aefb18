"""Body checks of a graph shard: an Arrow IPC file whose framing is intact can still hold damaged
buffers (offsets past the end, blobs cut short, indices out of range).  Reading such a file
further aborts in C++ or raises deep in NumPy, so every row is checked once, on open, and the
first fault is reported as one InputError line naming the shard, the row and the column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mingraph.acquire.fields import N_CHANNELS
from mingraph.common.errors import InputError

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
