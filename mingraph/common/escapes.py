"""User text going out: names from a user's files written so that no output format acts on them.

- CSV (:func:`csv_cell`, used by :func:`mingraph.common.files.write_csv`): a text cell that a
  spreadsheet would take for a formula (``=``, ``+``, ``-``, ``@``, tab, CR first; OWASP "CSV
  injection") gets a leading ``'``; numbers stay numbers. :func:`csv_uncell` undoes it, and
  :func:`mingraph.common.textfiles.read_table` applies it, so mingraph reads back what it wrote.
- Markdown (:func:`md_text`): HTML specials as entities, Markdown's active characters escaped.
- HTML is written with :func:`html.escape`; JSON with :func:`json.dumps`.
"""

from __future__ import annotations

import html
import re
from typing import Any

# what spreadsheets take as the start of a formula (OWASP, "CSV injection"); LF too, as CR is written as LF
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell that a spreadsheet will not run: text starting with ``=``, ``+``, ``-``,
    ``@``, tab or CR gets a leading ``'`` (OWASP); numbers, and text that is a number, are unchanged.

    Text that already starts with ``'`` before such a character gets one more, so that
    :func:`csv_uncell` (used by :func:`mingraph.common.textfiles.read_table`) gives back the text
    exactly, but for line breaks, which are written as LF (a bare CR would end the row).

    Parameters
    ----------
    value : Any
        The cell.

    Returns
    -------
    Any
        ``value``, or the escaped text.
    """
    if not isinstance(value, str):
        return value
    # a CR is no line end to Python's csv writer (it would split the row): line breaks as LF, quoted
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    if not value.lstrip("'").startswith(_FORMULA_START):
        return text
    try:
        float(value)
        return value  # "-1.5", "+3": a number, not a formula
    except ValueError:
        return "'" + text


def csv_uncell(cell: str) -> str:
    """The text of a cell that :func:`csv_cell` escaped (the inverse; other cells unchanged).

    Parameters
    ----------
    cell : str
        The cell as read.

    Returns
    -------
    str
        ``cell`` without the escape's ``'``.
    """
    if cell.startswith("'") and cell.lstrip("'").startswith(_FORMULA_START):
        return cell[1:]
    return cell


# characters that Markdown (CommonMark, GFM, pandoc, MkDocs, Jupyter) acts on anywhere in a line
_MD_INLINE = re.compile(r"([\\`*_\[\]{}|~$#])")
# and at the start of a line (``line_start``): quotes, lists, rules, setext underlines, ordered lists
_MD_LINE_START = re.compile(r"^(\s*)(?:([>+\-=])|(\d+)([.)])(?=\s|$))")


def md_text(s: Any, line_start: bool = False) -> str:
    """Text as Markdown that shows it literally and runs nothing.

    ``&``, ``<`` and ``>`` become HTML entities (so ``<img src=x onerror=...>`` is inert text in any
    viewer that passes inline HTML), the characters Markdown acts on inline are backslash-escaped
    (``\\``, backquote, ``*``, ``_``, brackets, braces, ``|``, ``~``, ``$``, ``#``), and line breaks
    become spaces.

    Parameters
    ----------
    s : Any
        The text (``str(s)`` is used).
    line_start : bool
        The text starts a line (a paragraph, not a table cell): a leading ``>``, ``+``, ``-``,
        ``=`` or ``1.`` is escaped too, so that it makes no quote, list, rule or heading.

    Returns
    -------
    str
        The escaped text, on one line.
    """
    t = _MD_INLINE.sub(r"\\\1", html.escape(" ".join(str(s).splitlines()), quote=False))
    if line_start:
        t = _MD_LINE_START.sub(
            lambda m: m.group(1) + ("\\" + m.group(2) if m.group(2) else m.group(3) + "\\" + m.group(4)), t
        )
    return t
