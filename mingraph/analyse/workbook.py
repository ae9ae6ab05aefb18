"""``report.xlsx``: a run's results list as one workbook, one sheet a table (openpyxl).

The first sheet, ``run``, holds the provenance: every summary entry of the report (input,
model, classifier and calibration, EDS points, pixel size, unclassified share, ...) and any
scores against truth.  Then one sheet per mineralogy table, in the order a process
mineralogist reads them (modal mineralogy with its intervals, calculated assay, deportment,
liberation, locking, association, grain size, particles, then the rest), each the CSV of the
same name cell for cell: numbers as numbers, empty cells empty, text as text (never a formula:
a phase named ``=x`` stays that text), units in the headers as the CSVs have them
(``area_um2``, ``ecd_um``, ``pct``).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mingraph.common.escapes import csv_uncell

ORDER = (
    "modal",
    "assay",
    "deportment",
    "liberation",
    "liberation_yield",
    "locking",
    "association",
    "association_boundary_um",
    "grain_size_distribution",
    "grain_summary",
    "grains",
    "particles",
    "grade_recovery",
)
"""Sheets first in this order (by the CSV's stem); any other table follows, by name."""


def cell_value(text: str) -> Any:
    """A CSV cell as the workbook stores it: int, float, bool, None for empty, else the text.

    Examples
    --------
    >>> [cell_value(t) for t in ["3", "0.25", "", "True", "quartz", "1e-3", "nan"]]
    [3, 0.25, None, True, 'quartz', 0.001, 'nan']
    """
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        v = float(text)
    except ValueError:
        return text
    return v if v == v and abs(v) != float("inf") else text  # NaN/inf stay text (Excel has none)


def read_table(path: str | os.PathLike) -> list[list[Any]]:
    """Rows of a mingraph CSV with each cell as :func:`cell_value` reads it (escapes undone)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [[cell_value(csv_uncell(c)) for c in row] for row in csv.reader(f)]


def _tables(mineralogy: Mapping[str, str | os.PathLike]) -> list[Path]:
    paths = {Path(p).stem: Path(p) for p in mineralogy.values() if str(p).lower().endswith(".csv")}
    first = [paths[k] for k in ORDER if k in paths]
    return first + [paths[k] for k in sorted(paths) if k not in ORDER]


def write_workbook(
    path: str | os.PathLike,
    mineralogy: Mapping[str, str | os.PathLike],
    summary: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``report.xlsx`` (atomically): the run sheet, then one sheet per mineralogy CSV.

    Parameters
    ----------
    path : path-like
        The workbook to write.
    mineralogy : mapping
        What :func:`mingraph.analyse.mineralogy.write_mineralogy` returns (its ``.csv`` values
        become sheets).
    summary, metrics : mapping, optional
        The report's summary and scores (values that are not numbers or text are written as JSON).

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "modal.csv").write_text("phase,area_pct\\nquartz,60.5\\n")
    >>> wb = write_workbook(d / "report.xlsx", {"modal": d / "modal.csv"}, {"input": "f1"})
    >>> import openpyxl
    >>> book = openpyxl.load_workbook(wb)
    >>> book.sheetnames, book["modal"]["B2"].value
    (['run', 'modal'], 60.5)
    """
    import io

    from openpyxl import Workbook
    from openpyxl.styles import Font

    from mingraph.common.files import write_bytes

    wb = Workbook()
    run = wb.active
    run.title = "run"
    run.append(["entry", "value"])
    sheet = _Sheet(run, max_row=1, max_col=2, rows=1)
    for k, v in list((summary or {}).items()) + [(f"score: {k}", v) for k, v in (metrics or {}).items()]:
        if not isinstance(v, (int, float, str, bool)) and v is not None:
            v = json.dumps(v, default=str)
        sheet.append([str(k), v])
    for p in _tables(mineralogy):
        ws = wb.create_sheet(p.stem[:31])
        sheet = _Sheet(ws)
        for row in read_table(p):
            sheet.append(row)
        ws.freeze_panes = "A2"
    for ws in wb.worksheets:
        for c in ws[1]:
            c.font = Font(bold=True)
    buf = io.BytesIO()
    wb.save(buf)
    return write_bytes(path, buf.getvalue())


class _Sheet:
    """Rows appended to a worksheet with every text cell typed as text, never a formula (a name
    may start with '=').  The sheet's extent is kept here: openpyxl's ``max_row`` and
    ``max_column`` scan every cell, which made a sheet of n rows cost n² (5 s for a 256² field's
    tables).  The cells touched are those ``ws[ws.max_row]`` touches: columns 1 to the widest
    row so far (the workbook's XML is the same)."""

    def __init__(self, ws, max_row: int = 1, max_col: int = 1, rows: int = 0) -> None:
        self.ws, self.max_row, self.max_col, self.rows = ws, max_row, max_col, rows

    def append(self, row: list[Any]) -> None:
        ws = self.ws
        ws.append(row)
        self.rows += 1  # the row ws.append wrote
        if not row:  # ws[ws.max_row] would touch the last row with cells again
            self._touch(1)
            return
        self.max_row = self.rows
        self.max_col = max(self.max_col, len(row))
        cells = ws._cells
        for col, v in enumerate(row, 1):
            if isinstance(v, str):
                cells[(self.rows, col)].data_type = "s"
        self._touch(len(row) + 1)

    def _touch(self, first: int) -> None:
        """Cells ``first`` to the widest row's end of the last row with cells, as ``ws[row]``
        creates them, typed as text where they hold text."""
        for col in range(first, self.max_col + 1):
            c = self.ws.cell(self.max_row, col)
            if isinstance(c.value, str):
                c.data_type = "s"
