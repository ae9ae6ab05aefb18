"""report.xlsx: one sheet a table, equal to the CSVs cell for cell (read back with openpyxl; the
CSVs read with the standard library's csv module as the reference)."""

from __future__ import annotations

import csv
import math

import openpyxl
import pytest

from mingraph.analyse.workbook import ORDER, write_workbook
from mingraph.common.files import write_csv


def _same(cell, text: str) -> bool:
    if text == "":
        return cell is None
    if isinstance(cell, bool) or text in ("True", "False"):
        return str(cell) == text
    if isinstance(cell, (int, float)):
        return math.isclose(cell, float(text), rel_tol=1e-12, abs_tol=0)
    return cell == text


@pytest.fixture(scope="module")
def run(predicted_96):
    return predicted_96


def test_every_mineralogy_table_is_one_sheet_equal_to_its_csv(run):
    book = openpyxl.load_workbook(run / "report.xlsx", read_only=True)
    csvs = {p.stem: p for p in (run / "mineralogy").glob("*.csv")}
    assert book.sheetnames[0] == "run" and set(book.sheetnames[1:]) == set(csvs)
    order = [s for s in book.sheetnames[1:] if s in ORDER]
    assert order == [s for s in ORDER if s in csvs]  # modal first, as a mineralogist reads
    for name, path in csvs.items():
        with open(path, newline="", encoding="utf-8") as f:
            ref = list(csv.reader(f))
        rows = [list(r) for r in book[name].iter_rows(values_only=True)]
        assert len(rows) == len(ref), name
        for got, want in zip(rows, ref):
            got = list(got)[: len(want)] + [None] * max(0, len(want) - len(got))
            assert all(_same(g, w) for g, w in zip(got, want)), (name, got, want)
    modal = [list(r) for r in book["modal"].iter_rows(values_only=True)]
    col = modal[0].index("area_pct")
    assert all(isinstance(r[col], float | int) for r in modal[1:])  # numbers as numbers


def test_the_run_sheet_holds_the_provenance(run):
    import json

    summary = json.loads((run / "summary.json").read_text())["summary"]
    book = openpyxl.load_workbook(run / "report.xlsx", read_only=True)
    entries = {r[0]: r[1] for r in book["run"].iter_rows(min_row=2, values_only=True)}
    assert entries["input"] == summary["input"] and entries["eds_points"] == summary["eds_points"]
    assert entries["classifier"] == "encoder"


def test_names_stay_text_never_formulas(tmp_path):
    write_csv(tmp_path / "modal.csv", [["phase", "area_pct"], ["=HYPERLINK(1)", 3.5], ["+x", 1]])
    wb = write_workbook(tmp_path / "r.xlsx", {"modal": tmp_path / "modal.csv"})
    ws = openpyxl.load_workbook(wb)["modal"]
    assert (ws["A2"].value, ws["A2"].data_type) == ("=HYPERLINK(1)", "s")
    assert ws["A3"].value == "+x" and ws["B2"].value == 3.5
