"""Reading back the CSVs mingraph wrote, for the reports (``report.py``, ``mineralogy_report.py``)."""

from __future__ import annotations

import csv
from typing import Any

from mingraph.common.escapes import csv_uncell


def read_rows(path: Any) -> list[dict[str, str]]:
    """Rows of a CSV mingraph wrote, with the formula escape of :func:`mingraph.common.files.write_csv` undone."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [{csv_uncell(k): csv_uncell(v or "") for k, v in r.items()} for r in csv.DictReader(f)]
    except OSError:
        return []


def parse_float(s: Any) -> float | None:
    try:
        return float(s)
    except (TypeError, ValueError):
        return None
