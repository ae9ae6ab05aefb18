"""Text inputs as people save them: the one reader of every CSV, JSON and plain-text file a user gives.

Manifests, class names, class maps, mineral lists, assays, point lists, simulator parameters and
training configurations are all read here, so that every one accepts and refuses the same things
(docs/formats.md, "Text inputs"):

- UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8" writes one). Any other encoding
  (Latin-1 or Windows-1252 bytes that are not UTF-8, UTF-16, UTF-32) is refused in one line naming
  the file: guessing an encoding silently turns "Ä" into "Ã„" in a path or a mineral name.
- CSV: the delimiter is sniffed (:class:`csv.Sniffer`) among ``,`` ``;`` and tab, as spreadsheets
  save them in different locales; blank lines are skipped; a row with more cells than the header
  is refused (it says the delimiter was not what the header suggests), fewer cells read as empty.
- Numbers in cells go through :func:`parse_number`: a decimal comma (``2,65``) is read where it
  cannot be anything else (a ``;`` file, or a tab file unless it could be a thousands group).
- Duplicate names are refused in one line naming the duplicate: CSV column names, JSON object
  keys, and any list checked with :func:`check_unique`.
- A cell that starts with ``'`` before ``=``, ``+``, ``-``, ``@``, tab or CR reads without that
  ``'``: it is the formula escape :func:`mingraph.common.escapes.csv_cell` adds when mingraph writes a CSV.

Files mingraph writes for itself (run.json, field.json, config.json, metrics.jsonl) are not read here.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mingraph.common.errors import InputError
from mingraph.common.escapes import csv_uncell

DELIMITERS = ",;\t"
_SNIFF_LINES = 50
_UTF16_32 = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_SAVE_AS = "save it as UTF-8 (in Excel: 'CSV UTF-8')"
# a decimal comma: digits, one comma, digits (an exponent allowed); nothing else
_DECIMAL_COMMA = re.compile(r"^([+-]?\d+),(\d+)([eE][+-]?\d+)?$")


def _show(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


def read_text_input(path: str | os.PathLike, what: str) -> str:
    """The text of a user's input file: UTF-8 with or without a byte-order mark.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str
        What the file is (e.g. "manifest", "mineral list"), named in errors.

    Returns
    -------
    str
        The text, without the byte-order mark.

    Raises
    ------
    InputError
        The file is missing or unreadable, or is not UTF-8 (another encoding, UTF-16, NUL bytes).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            path, what, "not a file (a folder or a device)" if path.exists() else "file not found"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(path, what, f"unreadable ({e.strerror or type(e).__name__})") from None
    for bom, name in _UTF16_32:
        if data.startswith(bom):
            raise InputError(path, "encoding", f"the file is {name} text; {_SAVE_AS}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(
            path,
            "encoding",
            f"not UTF-8 (byte 0x{data[e.start]:02x} on line {line}, e.g. Latin-1 or Windows-1252); {_SAVE_AS}",
        ) from None
    if "\x00" in text:
        raise InputError(
            path, "encoding", f"NUL bytes (UTF-16 without a byte-order mark, or binary); {_SAVE_AS}"
        )
    return text.removeprefix("\ufeff")


def _refuse_duplicate_keys(path: Path, what: str) -> Callable[[list[tuple[str, Any]]], dict]:
    def hook(pairs: list[tuple[str, Any]]) -> dict:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise InputError(path, what, f"key {k!r} appears twice: keys must be unique")
            out[k] = v
        return out

    return hook


def read_json_input(path: str | os.PathLike, what: str) -> Any:
    """A user's JSON file (UTF-8, see :func:`read_text_input`); an object with a key twice is refused.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str
        What the file is, named in errors.

    Returns
    -------
    Any
        The decoded value.

    Raises
    ------
    InputError
        As :func:`read_text_input`, for invalid JSON (naming line and column), or a duplicate key.
    """
    path = Path(path)
    text = read_text_input(path, what)
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicate_keys(path, what))
    except json.JSONDecodeError as e:
        raise InputError(path, what, f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None


def sniff_delimiter(text: str) -> str:
    """The delimiter of CSV ``text`` among ``,`` ``;`` and tab (``,`` when a file has one column).

    Parameters
    ----------
    text : str
        The file's text (its first lines are enough).

    Returns
    -------
    str
        One of ``,``, ``;`` or ``\\t``.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()][:_SNIFF_LINES]
    if not lines:
        return ","
    head = lines[0]
    in_header = max(DELIMITERS, key=head.count) if any(d in head for d in DELIMITERS) else ","
    try:
        found = csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:  # one line, or rows that disagree: the header decides
        return in_header
    # a delimiter the header row does not hold (cells quoting another) loses to the header's
    return found if found in head or in_header not in head else in_header


@dataclass(frozen=True)
class Table:
    """A CSV file read by :func:`read_table`.

    ``header`` the column names (stripped); ``rows`` one dict per data row, column -> cell text
    (``""`` where a row is short); ``lines`` the file line of each row (for messages);
    ``delimiter`` the one sniffed.
    """

    source: Path
    header: list[str]
    rows: list[dict[str, str]]
    lines: list[int]
    delimiter: str

    def number(self, i: int, column: str, expected: str = "a number", required: bool = False) -> float | None:
        """Row ``i``'s ``column`` as a float, decimal commas as :func:`parse_number`.

        An empty cell is None, or refused when ``required``. Raises InputError naming the file,
        the line and the column.
        """
        cell = self.rows[i].get(column, "").strip()
        where = f"line {self.lines[i]}: {column}"
        if not cell:
            if required:
                raise InputError(self.source, where, f"expected {expected}, got an empty cell")
            return None
        try:
            return parse_number(cell, self.delimiter)
        except ValueError as e:
            raise InputError(self.source, where, f"expected {expected}; {e}") from None


def parse_number(text: str, delimiter: str | None = ",") -> float:
    """A number from a cell, accepting a decimal comma where it cannot mean anything else.

    Parameters
    ----------
    text : str
        The cell (surrounding spaces ignored).
    delimiter : str or None
        The file's delimiter. With ``;`` a single comma between digits is a decimal comma (the
        locales that save ``;`` write decimal commas); with tab too, unless three digits follow it
        (``1,234`` could be a thousands group: refused as ambiguous); with ``,`` or None (JSON)
        only a point is a decimal separator.

    Returns
    -------
    float
        The value.

    Raises
    ------
    ValueError
        Not a number, or an ambiguous comma; the message says which.
    """
    s = str(text).strip()
    try:
        return float(s)
    except ValueError:
        pass
    m = _DECIMAL_COMMA.match(s)
    if m is None:
        if "," in s:
            raise ValueError(f"got {s!r}: a decimal comma is read only as '2,65' in a ';' or tab file")
        raise ValueError(f"got {s!r}")
    if delimiter == ";" or (delimiter == "\t" and len(m.group(2)) != 3):
        return float(f"{m.group(1)}.{m.group(2)}{m.group(3) or ''}")
    if delimiter == "\t":
        raise ValueError(
            f"got {s!r}: ambiguous (a decimal comma or a thousands separator?); write it with a point"
        )
    if delimiter is None:
        raise ValueError(f"got {s!r}: a decimal comma is not read here; write the number with a point")
    raise ValueError(f"got {s!r}: a comma is the delimiter here; write decimals with a point")


def read_table(path: str | os.PathLike, what: str, required: Iterable[str] = ()) -> Table:
    """A user's CSV table with a header row (UTF-8, delimiter sniffed; module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str
        What the file is (e.g. "manifest"), named in errors.
    required : iterable of str
        Columns the header must have.

    Returns
    -------
    Table
        Header, rows (dicts of cell text), their line numbers and the delimiter.

    Raises
    ------
    InputError
        As :func:`read_text_input`; no header; a column named twice; a required column missing;
        a row with more cells than the header.
    """
    path = Path(path)
    text = read_text_input(path, what)
    delim = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    header: list[str] | None = None
    named: list[tuple[int, str]] = []
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    try:
        for cells in reader:
            cells = [csv_uncell(c) for c in cells]
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                named = [(k, h) for k, h in enumerate(header) if h]
                check_unique([h for _, h in named], path, "header", "column")
                continue
            if len(cells) > len(header):
                raise InputError(
                    path,
                    f"line {reader.line_num}",
                    f"{len(cells)} cells but the header has {len(header)} columns "
                    f"(delimiter {_show(delim)}; quote cells that hold it)",
                )
            cells += [""] * (len(header) - len(cells))
            unnamed = [k for k, h in enumerate(header) if not h and cells[k].strip()]
            if unnamed:
                raise InputError(
                    path, f"line {reader.line_num}", f"column {unnamed[0] + 1} has a value but no name"
                )
            rows.append({h: cells[k] for k, h in named})
            lines.append(reader.line_num)
    except csv.Error as e:
        raise InputError(path, f"line {reader.line_num}", f"not readable as CSV ({e})") from None
    if header is None:
        raise InputError(path, what, "empty (expected a header row, then one row per entry)")
    header = [h for _, h in named]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(
            path, "header", f"missing column(s) {missing} (found {header}, delimiter {_show(delim)})"
        )
    return Table(path, header, rows, lines, delim)


def check_unique(
    names: Iterable[str],
    source: object,
    field: str,
    what: str = "name",
    key: Callable[[str], str] = lambda s: s,
) -> None:
    """Refuse a list that holds a name twice (compared by ``key``, e.g. ``str.casefold``).

    Parameters
    ----------
    names : iterable of str
        The names.
    source : object
        The file (or other source) named in the error.
    field : str
        The field named in the error.
    what : str
        What a name is ("column", "mineral", ...).
    key : callable
        What makes two names the same.

    Raises
    ------
    InputError
        Naming the first duplicate.
    """
    seen: dict[str, str] = {}
    for n in names:
        k = key(n)
        if k in seen:
            same = "" if seen[k] == n else f" (as {seen[k]!r})"
            raise InputError(source, field, f"{what} {n!r} appears twice{same}: {what}s must be unique")
        seen[k] = n
