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


PANDAS_ROWS = 50_000
"""From this many rows on, :func:`write_columns` formats with pandas (its import, about 0.5 s, is
then paid back); below, with the csv module.  Both write the same bytes."""


def write_columns(path: Path, columns: dict[str, np.ndarray]) -> Path:
    """A dict of equal-length arrays as CSV, written atomically: what pandas'
    ``DataFrame.to_csv(index=False, float_format="%.6g")`` writes (floats ``%.6g``, NaN empty),
    with text cells escaped (:func:`mingraph.common.escapes.csv_cell`).

    Tables of :data:`PANDAS_ROWS` rows or more are formatted by pandas (fast for millions of
    rows), smaller ones by the csv module (no pandas import).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = write_columns(p, {"phase": np.array(["quartz", "=x"]), "ecd_um": np.array([1.5, np.nan])})
    >>> print(p.read_text(), end="")
    phase,ecd_um
    quartz,1.5
    '=x,
    """
    from mingraph.common.escapes import csv_cell

    safe = {}
    for k, col in columns.items():
        col = np.asarray(col)
        if col.dtype.kind in "OUS" and col.size:  # text (phase names): the formula escape, once per value
            values, inv = np.unique(col.astype(str), return_inverse=True)
            col = np.asarray([csv_cell(v) for v in values], dtype=object)[inv.reshape(-1)]
        safe[csv_cell(k)] = col
    n = max((len(c) for c in safe.values()), default=0)
    with atomic_file(path) as tmp:
        if n >= PANDAS_ROWS or any(c.dtype.kind not in "biufOUS" for c in safe.values()):
            import pandas as pd

            pd.DataFrame(safe).to_csv(tmp, index=False, float_format="%.6g")
        else:
            _write_small(tmp, safe)
    return Path(path)


def _cells(col: np.ndarray) -> list:
    """The CSV cells of one column as pandas writes them (``%.6g`` floats, NaN and None empty)."""
    if col.dtype.kind == "f":
        return [f"{v:.6g}" if v == v else "" for v in col.tolist()]
    if col.dtype.kind == "O":
        return ["" if v is None or (isinstance(v, float) and v != v) else v for v in col.tolist()]
    return col.tolist()


def _write_small(path: Path, columns: dict[str, np.ndarray]) -> None:
    import csv
    import os

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator=os.linesep)
        w.writerow(list(columns))
        w.writerows(zip(*(_cells(c) for c in columns.values())))
