"""Readers of instrument files: one module a format, one contract, one registry.

- ``images.py``: BSE, label and mask images (TIFF through tifffile, PNG through Pillow);
- ``hypermaps.py``: spectrum images through rosettasciio (Bruker .bcf, JEOL .pts, HyperSpy .hspy);
- ``emsa.py``: single spectra (EMSA/MSA, Bruker .spx);
- ``points.py``: point spectra (.npz), and how a dataset stores them;
- ``tima.py``: TESCAN TIMA field folders.

The contract is :class:`Reader`: the kind of data a file holds, its suffixes, a description and
the ``read`` that gives its arrays on mingraph's calibrated axes (10 eV channels from 0 eV, pixel
sizes in µm) with the file's metadata.  :data:`REGISTRY` maps every suffix to its reader and
:func:`reader_for` looks a file up, so that no caller chooses a reader by its own suffix list.
The readers that dispatch through the registry (a spectrum, a hypermap's signals, point spectra)
live here; the format modules import nothing from this package.  Every reader raises
:class:`~mingraph.common.errors.InputError` naming the file, the field and what was expected.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mingraph.acquire.formats.emsa import read_msa_spectrum, spectrum_from_signals, spectrum_on_grid
from mingraph.acquire.formats.hypermaps import Hypermap, hypermap_from_signals
from mingraph.acquire.formats.images import IMAGE_SUFFIXES, read_bse
from mingraph.acquire.formats.points import read_npz_points
from mingraph.acquire.formats.tima import read_tima_field
from mingraph.common.errors import InputError
from mingraph.common.textfiles import read_table


@dataclass(frozen=True)
class Reader:
    """One file format: what it holds, how it is named, and how it is read.

    Attributes
    ----------
    kind : str
        What ``read`` returns: ``"image"`` (H, W) float32 BSE levels in [0, 1]; ``"hypermap"`` a
        :class:`~mingraph.acquire.formats.hypermaps.Hypermap` ((H, W, 3000) counts, pixel size in
        µm, BSE, calibration and instrument metadata); ``"spectrum"`` (counts (3000,), calibration
        record); ``"points"`` (rc int64 (n, 2), spectra (n, 3000), calibration record);
        ``"tima"`` a field folder's dict (:func:`~mingraph.acquire.formats.tima.read_tima_field`).
        Spectra are on 10 eV channels from 0 eV; integer counts stay unsigned integers.
    suffixes : tuple of str
        Lower-case file suffixes with their dot (none for a folder).
    description : str
        What a file of the format is, as error messages name it (``"a Bruker .bcf"``).
    read : callable
        ``read(path, ...)``: the arrays of ``kind`` (InputError naming the file for bad input).
    rsciio : str or None
        The rosettasciio plugin module that reads the file's signals, or None.
    """

    kind: str
    suffixes: tuple[str, ...]
    description: str
    read: Callable[..., Any]
    rsciio: str | None = None


def _listing(suffixes: list[str]) -> str:
    return suffixes[0] if len(suffixes) == 1 else f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"


def reader_for(
    path: str | os.PathLike,
    kinds: tuple[str, ...] | None = None,
    *,
    rsciio: bool = False,
    fallback: Reader | None = None,
) -> Reader:
    """The registered reader of a file, by its suffix (case-insensitive).

    Parameters
    ----------
    path : str or PathLike
        The file; it need not exist.
    kinds : tuple of str, optional
        The kinds of data the caller takes (:class:`Reader`); None: every kind.
    rsciio : bool
        Only readers whose files rosettasciio reads.
    fallback : Reader, optional
        Returned for a suffix no reader of these kinds has, instead of raising.

    Returns
    -------
    Reader

    Raises
    ------
    InputError
        ``FILE: format: expected SUFFIXES, got 'SUFFIX'`` for a suffix no reader of these kinds
        has (and no ``fallback``), listing the suffixes they have.

    Examples
    --------
    >>> reader_for("field.BCF").description
    'a Bruker .bcf'
    >>> reader_for("notes.doc", ("spectrum",))
    Traceback (most recent call last):
    ...
    mingraph.common.errors.InputError: notes.doc: format: expected .spx, .msa, .ems, .emsa or .txt, got '.doc'
    """
    suffix = Path(path).suffix.lower()
    wanted = [r for r in READERS if (kinds is None or r.kind in kinds) and (r.rsciio or not rsciio)]
    reader = REGISTRY.get(suffix)
    if reader in wanted:
        return reader
    if fallback is not None:
        return fallback
    raise InputError(
        path, "format", f"expected {_listing([s for r in wanted for s in r.suffixes])}, got {suffix!r}"
    )


def read_signals(path: str | os.PathLike, lazy: bool = False) -> list[dict]:
    """rosettasciio's signal dictionaries of a file, read by the plugin its reader names.

    Parameters
    ----------
    path : str or PathLike
        A file of a rosettasciio reader (:data:`REGISTRY`: .bcf, .spx, .pts, .hspy, .hdf5).
    lazy : bool
        Data as dask arrays, read on demand.

    Returns
    -------
    list of dict
        ``data`` (array: counts, or image levels), ``axes`` (offset, scale, units of each axis),
        ``metadata`` and ``original_metadata`` of every signal in the file.

    Raises
    ------
    InputError
        A missing file, a suffix no rosettasciio reader has, the ``io`` extra not installed, or
        any failure of the plugin (one line: ``not readable as a Bruker .bcf (...)``).

    Examples
    --------
    >>> read_signals("missing.bcf")
    Traceback (most recent call last):
    ...
    mingraph.common.errors.InputError: missing.bcf: file: not found
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "not found")
    reader = reader_for(path, rsciio=True)
    try:
        file_reader = importlib.import_module(reader.rsciio).file_reader
    except ImportError as e:
        raise InputError(path, "reader", f"needs the io extra (pip install 'mingraph[io]'): {e}") from None
    try:
        return file_reader(str(path), lazy=lazy) if lazy else file_reader(str(path))
    except InputError:
        raise
    except Exception as e:
        raise InputError(
            path, "file", f"not readable as {reader.description} ({type(e).__name__}: {e})"
        ) from None


def read_hypermap(
    path: str | os.PathLike, work_dir: str | os.PathLike | None = None, require_bse: bool = False
) -> Hypermap:
    """A spectrum image (.bcf, .pts, .hspy) on the 10 eV grid, with its BSE and metadata.

    Parameters
    ----------
    path : str or PathLike
        The file.
    work_dir : str or PathLike, optional
        Read lazily, a block of rows at a time, into a memory-mapped ``.npy`` here (memory about
        one block, ``hypermaps.BLOCK_BYTES``, whatever the map's size); None: read into memory.
    require_bse : bool
        Refuse a file without a BSE image of the map's size before reading the cube.

    Returns
    -------
    Hypermap
        ``cube`` (H, W, 3000) counts (uint8/16/32, else float32), ``bse`` (H, W) float32 in
        [0, 1] or None, ``pixel_size_um`` (µm) or None, the calibration and instrument metadata
        (:func:`~mingraph.acquire.formats.hypermaps.hypermap_from_signals`).

    Raises
    ------
    InputError
        As :func:`read_signals` and :func:`~mingraph.acquire.formats.hypermaps.hypermap_from_signals`.

    Examples
    --------
    The registry's hypermap readers all come here, each with its rosettasciio plugin; a hypermap
    reader without one (``rsciio=None``) is handed the call, with the same keywords:

    >>> sorted((s, r.rsciio) for s, r in REGISTRY.items() if r.read is read_hypermap)
    [('.bcf', 'rsciio.bruker'), ('.hdf5', 'rsciio.hspy'), ('.hspy', 'rsciio.hspy'), ('.pts', 'rsciio.jeol')]
    """
    path = Path(path)
    own = REGISTRY.get(path.suffix.lower())
    if own is not None and own.kind == "hypermap" and own.rsciio is None:  # a reader of its own
        return own.read(path, work_dir=work_dir, require_bse=require_bse)
    signals = read_signals(path, lazy=work_dir is not None)
    return hypermap_from_signals(signals, path, work_dir, require_bse)


def read_spectrum(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """One spectrum (.msa/.ems/.emsa/.txt, or a rosettasciio file such as Bruker .spx) on the grid.

    Parameters
    ----------
    path : str or PathLike
        The file.

    Returns
    -------
    counts : (3000,) ndarray
        On 10 eV channels from 0 eV; integer counts stay unsigned integers, others float32.
    record : dict
        The file's calibration and what rebinning did (``calibration.to_grid``).

    Raises
    ------
    InputError
        A missing file, an unknown suffix, no single spectrum, a bad header or bad counts.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "s.msa"
    >>> head = ["#FORMAT : EMSA/MAS Spectral Data File", "#VERSION : 1.0", "#NPOINTS : 3",
    ...         "#NCOLUMNS : 1", "#XUNITS : keV", "#DATATYPE : Y", "#XPERCHAN : 0.01", "#OFFSET : 0.0"]
    >>> _ = f.write_text("\\n".join(head + ["#SPECTRUM : data", "1", "2", "3", "#ENDOFDATA : end"]) + "\\n")
    >>> counts, record = read_spectrum(f)
    >>> counts.shape, counts[:4].tolist(), record["rebinned"]
    ((3000,), [1.0, 2.0, 3.0, 0.0], False)
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "not found")
    reader = reader_for(path, ("spectrum", "hypermap"))
    if reader.kind == "spectrum" and reader.rsciio is None and reader.read is not read_spectrum:
        return reader.read(path)  # a reader of its own: (counts (3000,), record) on the grid
    data, axis = spectrum_from_signals(read_signals(path), path) if reader.rsciio else read_msa_spectrum(path)
    return spectrum_on_grid(data, axis, path)


def read_point_list(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Point spectra as single-spectrum files (Bruker .spx, EMSA .msa) listed in a CSV with a
    header ``row,col,spectrum`` (paths relative to the CSV), each rebinned onto the grid.

    Parameters
    ----------
    path : Path
        The CSV; every ``spectrum`` is read by :func:`read_spectrum`.

    Returns
    -------
    rc : (n, 2) int64
        (row, column) of every point.
    spectra : (n, 3000) ndarray
        Counts on the grid: the files' unsigned integer dtype when every file has one, else
        float32.
    record : dict
        ``files``, ``rebinned`` and the counts left out below 0 eV and above 30 keV, summed.

    Raises
    ------
    InputError
        The CSV's header or a line's positions, or any listed file (naming it).

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "points.csv"
    >>> _ = f.write_text("row,col,spectrum\\n")
    >>> read_point_list(f)
    Traceback (most recent call last):
    ...
    mingraph.common.errors.InputError: ...points.csv: columns: expected a header row,col,spectrum and one measured point a line
    """
    table = read_table(path, "point list")
    rows = table.rows
    if not rows or set(table.header) != {"row", "col", "spectrum"}:
        raise InputError(path, "columns", "expected a header row,col,spectrum and one measured point a line")
    rc, spectra = [], []
    record = {"files": len(rows), "rebinned": False, "counts_below_0_ev": 0.0, "counts_above_grid": 0.0}
    for i, r in zip(table.lines, rows):
        try:
            rc.append((int(r["row"]), int(r["col"])))
        except (TypeError, ValueError):
            raise InputError(path, f"line {i}", f"row and col must be whole pixel indices, got {r}") from None
        counts, rec = read_spectrum(path.parent / (r["spectrum"] or "").strip())
        spectra.append(counts)
        record["rebinned"] |= rec["rebinned"]
        record["counts_below_0_ev"] += rec["counts_below_0_ev"]
        record["counts_above_grid"] += rec["counts_above_grid"]
    record["counts_total"] = (
        float(sum(float(s.sum()) for s in spectra))
        + record["counts_below_0_ev"]
        + record["counts_above_grid"]
    )
    kinds = {s.dtype.kind for s in spectra}
    dtype = np.result_type(*spectra) if kinds == {"u"} else np.float32
    return np.asarray(rc, np.int64).reshape(-1, 2), np.stack(spectra).astype(dtype), record


def read_points(path: str | os.PathLike, with_calibration: bool = False):
    """Point spectra of an .npz (``points.py``) or a point list .csv (:func:`read_point_list`).

    Parameters
    ----------
    path : str or PathLike
        The file; any suffix but .csv is read as an .npz.
    with_calibration : bool
        Also return the calibration record, and the spectra in their stored form.

    Returns
    -------
    rc : (n, 2) int64
        (row, column) pixel positions.
    spectra : (n, 3000) ndarray
        float32 counts on the grid; with ``with_calibration`` unsigned integers when the counts
        are integers.
    record : dict
        Only with ``with_calibration``: the calibration and what rebinning did.

    Raises
    ------
    InputError
        Naming the file and the array.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "p.npz"
    >>> np.savez(f, rc=np.array([[0, 1]]), spectra=np.ones((1, 3000), np.uint16))
    >>> rc, spectra = read_points(f)
    >>> rc.tolist(), spectra.shape, spectra.dtype.name
    ([[0, 1]], (1, 3000), 'float32')
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "points", "file not found")
    rc, on_grid, record = reader_for(path, ("points",), fallback=POINTS_NPZ).read(path)
    return (rc, on_grid, record) if with_calibration else (rc, on_grid.astype(np.float32))


def read_spectrum_image(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """(cube (H, W, 3000) counts on the 10 eV grid, BSE (H, W) float32 in [0, 1] or None) of a
    hypermap file (:func:`read_hypermap`, which also gives its calibration and metadata).

    Raises
    ------
    InputError
        As :func:`read_hypermap`: a missing file, an unknown suffix, no 3-D EDS signal.

    Examples
    --------
    >>> import tempfile
    >>> from rsciio.hspy import file_writer
    >>> f = Path(tempfile.mkdtemp()) / "m.hspy"
    >>> energy = {"name": "E", "size": 1024, "offset": 0.0, "scale": 0.02, "units": "keV", "navigate": False}
    >>> axes = [{"name": n, "size": 2, "scale": 1.0, "units": "µm", "navigate": True} for n in "yx"]
    >>> sig = {"data": np.ones((2, 2, 1024), np.uint16), "axes": axes + [energy], "original_metadata": {},
    ...        "metadata": {"General": {"title": "EDS"}, "Signal": {"signal_type": "EDS_SEM"}},
    ...        "tmp_parameters": {},
    ...        "attributes": {"_lazy": False}, "package_info": {}, "learning_results": {}, "models": {}}
    >>> file_writer(str(f), sig, show_progressbar=False)
    >>> cube, bse = read_spectrum_image(f)
    >>> cube.shape, int(cube[0, 0, :2].sum()), bse
    ((2, 2, 3000), 1, None)
    """
    m = read_hypermap(path)
    return m.cube, m.bse


def read_msa(path: str | os.PathLike) -> np.ndarray:
    """One EMSA/MSA (or Bruker .spx) spectrum as float32 counts (3000,) on the 10 eV grid from 0 eV
    (:func:`read_spectrum`).

    Raises
    ------
    InputError
        As :func:`read_spectrum`: a missing file, an unknown suffix, a bad header or bad counts.

    Examples
    --------
    >>> try:
    ...     read_msa("missing.msa")
    ... except InputError as e:
    ...     print(e.field, "|", e.problem)
    file | not found
    """
    return read_spectrum(path)[0].astype(np.float32)


# the registry: every format mingraph reads, in the order error messages list their suffixes
POINTS_NPZ = Reader("points", (".npz",), "a point-spectra .npz (rc, spectra)", read_npz_points)
READERS: tuple[Reader, ...] = (
    Reader("image", IMAGE_SUFFIXES, "a BSE, label or mask image", read_bse),
    Reader("hypermap", (".bcf",), "a Bruker .bcf", read_hypermap, "rsciio.bruker"),
    Reader("spectrum", (".spx",), "a Bruker .spx", read_spectrum, "rsciio.bruker"),
    Reader("hypermap", (".pts",), "a JEOL .pts", read_hypermap, "rsciio.jeol"),
    Reader("hypermap", (".hspy", ".hdf5"), "a HyperSpy file", read_hypermap, "rsciio.hspy"),
    Reader("spectrum", (".msa", ".ems", ".emsa", ".txt"), "an EMSA/MSA spectrum", read_spectrum),
    POINTS_NPZ,
    Reader("points", (".csv",), "a point list .csv (row,col,spectrum)", read_point_list),
    Reader("tima", (), "a TESCAN TIMA field folder (bse.png, xray.map[.gz], pixelmask.png)", read_tima_field),
)
REGISTRY: dict[str, Reader] = {s: r for r in READERS for s in r.suffixes}
"""Suffix (lower case, with its dot) -> the :class:`Reader` of its files; one reader a suffix."""
