"""Single spectra: EMSA/MSA (ISO 22029; header checked here, data read through rosettasciio) and
the one-spectrum signals of a rosettasciio file (Bruker .spx), put on mingraph's 10 eV grid.

rosettasciio converts header values with ``float()`` and, when that fails, logs an error and keeps
the text, so a file written with decimal commas (``#XPERCHAN : 0,010000``, what some locales
write) gives an axis whose scale is a string.  Here every numeric header value that mingraph uses
is converted first, inside the error contract (InputError naming the file and the header key);
a file written with decimal commas is read by rewriting its numbers with points into a temporary
copy, which rosettasciio then reads.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from mingraph.acquire.calibration import axis_edges, to_grid
from mingraph.acquire.fields import check_counts
from mingraph.common.errors import InputError

NUMERIC_KEYS = ("NPOINTS", "NCOLUMNS", "XPERCHAN", "OFFSET")
_COMMA_NUMBER = re.compile(r"^[+-]?\d+,\d*(?:[eE][+-]?\d+)?$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def _header(lines: list[str]) -> tuple[dict[str, str], int]:
    """Header keys (upper case, without '#') -> raw values, and the index of the first data line."""
    head: dict[str, str] = {}
    for i, line in enumerate(lines):
        if not line.startswith("#"):
            continue
        key, _, value = line[1:].partition(":")
        key = key.strip().upper()
        head.setdefault(key, value.strip())
        if key == "SPECTRUM":
            return head, i + 1
    return head, len(lines)


def header_number(value: str, path: object, key: str) -> float:
    """A header value as a float: '10', '10.', '1e1', and with a decimal comma '0,01'.

    Text after the number (a unit, a comment) is ignored.  Raises InputError naming the key.
    """
    token = value.strip().split()[0] if value.strip() else ""
    if _COMMA_NUMBER.match(token):
        token = token.replace(",", ".")
    if not _NUMBER.match(token):
        raise InputError(path, f"header {key}", f"expected a number, got {value!r}")
    return float(token)


def _decimal_comma_data(lines: list[str], path: object, single_column_y: bool) -> list[str]:
    """Data lines with decimal commas rewritten to points; refuses layouts where a comma may also
    separate values (several columns or X, Y pairs separated by commas)."""
    out = []
    for k, line in enumerate(lines):
        s = line.strip()
        if not s or s.startswith("#"):
            out.append(line)
            continue
        if ";" in s or "\t" in s:  # values separated by ';' or tabs: every comma is a decimal comma
            out.append(",".join(v.strip().replace(",", ".") for v in re.split(r"[;\t]+", s) if v.strip()))
        elif single_column_y and s.rstrip(",").count(",") == 1 and " " not in s.rstrip(","):
            out.append(s.rstrip(",").replace(",", "."))
        elif "," not in s:
            out.append(s)
        else:
            raise InputError(
                path,
                "data",
                f"line {k + 1} of the data, {s[:40]!r}: decimal commas in a multi-column data section are "
                "ambiguous (a comma also separates values); write decimal points",
            )
    return out


def read_msa_spectrum(path: str | Path) -> tuple[np.ndarray, dict]:
    """(counts (n,) as written, axis {offset, scale, units}) of an EMSA/MSA file.

    Reads keV and eV axes, Y and XY layouts, one or several columns a line (rosettasciio), and
    headers and data written with decimal commas.  Raises InputError naming the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "not found")
    try:
        from rsciio.msa import file_reader
    except ImportError as e:
        raise InputError(path, "reader", f"needs the io extra (pip install 'mingraph[io]'): {e}") from None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    lines = text.splitlines()
    head, start = _header(lines)
    if "SPECTRUM" not in head:
        raise InputError(path, "header SPECTRUM", "no '#SPECTRUM' line: not an EMSA/MSA file")
    for key in ("XPERCHAN", "OFFSET"):
        if key not in head:
            raise InputError(path, f"header {key}", "missing: the energy axis is not calibrated")
    nums = {k: header_number(head[k], path, k) for k in NUMERIC_KEYS if k in head}
    comma = any(_COMMA_NUMBER.match(head[k].split()[0]) for k in nums if head[k].split())
    read_from = path
    with tempfile.TemporaryDirectory(prefix="mingraph-msa-") as tmp:
        if comma:  # a decimal-comma locale: rewrite the numbers with points for rosettasciio
            fixed = []
            for ln in lines[:start]:
                key, _, value = ln[1:].partition(":")
                numeric = ln.startswith("#") and key.strip().upper() in nums
                fixed.append(f"#{key}: {value.strip().replace(',', '.')}" if numeric else ln)
            single_y = head.get("DATATYPE", "Y").strip().upper() == "Y" and nums.get("NCOLUMNS", 1) == 1
            fixed += _decimal_comma_data(lines[start:], path, single_y)
            read_from = Path(tmp) / path.name
            read_from.write_text("\n".join(fixed) + "\n", encoding="utf-8")
        try:
            sig = file_reader(str(read_from))[0]
        except InputError:
            raise
        except Exception as e:
            raise InputError(path, "file", f"unreadable as EMSA/MSA ({type(e).__name__}: {e})") from None
    data = np.asarray(sig["data"])
    if data.ndim != 1:
        raise InputError(path, "spectrum", f"expected a single spectrum, got shape {data.shape}")
    if "NPOINTS" in nums:  # a declared length is checked against what the file holds
        declared = nums["NPOINTS"]
        if declared != int(declared) or declared < 1:
            raise InputError(
                path, "header NPOINTS", f"expected a positive whole number, got {head['NPOINTS']!r}"
            )
        # fewer values than declared: channels are missing (never zero-filled); more are kept, as
        # the EMSA standard's own example (NPOINTS 20, 21 points) and HyperSpy's writer have them
        if data.size < int(declared):
            raise InputError(
                path,
                "header NPOINTS",
                f"says {int(declared)} channels but the data holds {data.size} values (the file is cut short?)",
            )
    axis = {"offset": nums["OFFSET"], "scale": nums["XPERCHAN"], "units": head.get("XUNITS", "")}
    return data, axis


def spectrum_from_signals(signals: list[dict], path: str | Path) -> tuple[np.ndarray, dict]:
    """(counts (n,) as written, energy axis) of the first 1-D signal of a rosettasciio file.

    Parameters
    ----------
    signals : list of dict
        rosettasciio's signal dictionaries of the file (``data``, ``axes``, ``original_metadata``).
    path : str or Path
        The file, named in errors.

    Returns
    -------
    counts : (n,) ndarray
        The spectrum in the file's dtype.
    axis : dict
        Its energy axis as rosettasciio gives it (``offset``, ``scale``, ``units``: eV or keV).

    Raises
    ------
    InputError
        No 1-D signal, or fewer channels than a Bruker header's ``ChannelCount`` declares.

    Examples
    --------
    >>> sig = {"data": np.arange(4), "axes": [{"offset": 0.0, "scale": 0.01, "units": "keV"}]}
    >>> counts, axis = spectrum_from_signals([sig], "s.spx")
    >>> counts.tolist(), axis["units"]
    ([0, 1, 2, 3], 'keV')
    """
    signals = [s for s in signals if np.asarray(s["data"]).ndim == 1]
    if not signals:
        raise InputError(path, "spectrum", "no single spectrum in the file")
    data, axis = np.asarray(signals[0]["data"]), signals[0]["axes"][-1]
    declared = signals[0].get("original_metadata", {}).get("Spectrum", {}).get("ChannelCount")
    if isinstance(declared, (int, float)) and data.ndim == 1 and data.size < int(declared):
        raise InputError(
            path, "ChannelCount", f"says {int(declared)} channels but the file holds {data.size} (cut short?)"
        )
    return data, axis


def spectrum_on_grid(data: np.ndarray, axis: dict, path: str | Path) -> tuple[np.ndarray, dict]:
    """One spectrum on the 10 eV grid: (counts (3000,), record) from its counts and energy axis.

    Parameters
    ----------
    data : (n,) ndarray
        Counts as the file holds them.
    axis : dict
        ``{"offset", "scale", "units"}`` (eV or keV; offset is channel 0's lower edge) or
        ``{"axis", "units"}`` (:func:`mingraph.acquire.calibration.axis_edges`).
    path : str or Path
        The file, named in errors.

    Returns
    -------
    counts : (3000,) ndarray
        On 10 eV channels from 0 eV; integer counts stay unsigned integers, others float32
        (:func:`mingraph.acquire.calibration.to_grid`).
    record : dict
        The file's calibration and what rebinning did (counts below 0 eV and above 30 keV).

    Raises
    ------
    InputError
        Not one non-empty spectrum; counts negative, not finite or beyond float32; an axis in
        other units or with most counts outside 0-30 keV.

    Examples
    --------
    >>> counts, rec = spectrum_on_grid(np.full(2048, 2, np.uint16), {"offset": 0, "scale": 10, "units": "eV"}, "s")
    >>> counts.shape, int(counts.sum()), rec["rebinned"]
    ((3000,), 4096, False)
    """
    if data.ndim != 1 or data.size == 0:
        raise InputError(path, "spectrum", f"expected a single spectrum, got shape {data.shape}")
    check_counts(data, str(path), "counts")
    return to_grid(data, axis_edges(axis, data.size, path), path, "counts")
