"""The CSV writers of the mineralogy tables (``tables.py``, ``process_tables.py``): rows of dicts,
and columns of arrays for tables of millions of rows; both written atomically."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from mingraph.common.files import atomic_file, write_csv


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return repr(float(v)) if math.isfinite(v) else ""
    return v


def write_rows(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    """Rows of dicts as CSV (``columns`` or the first row's keys), written atomically."""
    cols = columns if columns is not None else (list(rows[0]) if rows else [])
    return write_csv(path, [cols] + [[_csv_value(r.get(c)) for c in cols] for r in rows])


def write_columns(path: Path, columns: dict[str, np.ndarray]) -> Path:
    """A dict of equal-length arrays as CSV (pandas, atomically): fast for millions of rows."""
    import pandas as pd

    from mingraph.common.escapes import csv_cell

    safe = {}
    for k, col in columns.items():
        col = np.asarray(col)
        if col.dtype.kind in "OUS" and col.size:  # text (phase names): the formula escape, once per value
            values, inv = np.unique(col.astype(str), return_inverse=True)
            col = np.asarray([csv_cell(v) for v in values], dtype=object)[inv.reshape(-1)]
        safe[csv_cell(k)] = col
    with atomic_file(path) as tmp:
        pd.DataFrame(safe).to_csv(tmp, index=False, float_format="%.6g")
    return Path(path)
