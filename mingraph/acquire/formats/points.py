"""Point spectra files: an ``.npz`` with the measured positions and their spectra.

Layout: ``rc`` (n, 2) integer (row, column) pixel positions and ``spectra`` (n, channels) counts.
The spectra are on mingraph's grid (3000 channels of 10 eV from 0 eV) unless the file says
otherwise with scalars ``offset_ev`` and ``channel_ev``, or with ``energy_ev`` (channels,) the
lower edge of every channel; they are then rebinned (``calibration.to_grid``).

A coordinate array is never reshaped: ``rc`` of shape (2, n) -- what ``np.nonzero`` gives -- is
refused, not reinterpreted, because reading it as (n, 2) scatters every point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mingraph.acquire.calibration import axis_edges, to_grid
from mingraph.acquire.fields import check_counts
from mingraph.acquire.limits import check_allocation
from mingraph.common.errors import InputError


def check_rc(rc: np.ndarray, source: object, n: int | None = None, field: str = "rc") -> np.ndarray:
    """Positions as int64 (n, 2); refuses any other layout (never reshaped), non-integers, and a
    count differing from ``n`` (the number of spectra)."""
    rc = np.asarray(rc)
    want = "(n, 2) row, column pairs" if n is None else f"({n}, 2) row, column pairs, one per spectrum"
    if rc.ndim != 2 or rc.shape[1] != 2 or (n is not None and rc.shape[0] != n):
        hint = ""
        if rc.ndim == 2 and rc.shape[0] == 2 and rc.shape[1] != 2:
            hint = " (this looks like np.nonzero's (2, n) layout: store np.stack([rows, cols], axis=1))"
        raise InputError(source, field, f"expected shape {want}, got {rc.shape}{hint}")
    if rc.size and not np.issubdtype(rc.dtype, np.integer):
        if not (
            np.issubdtype(rc.dtype, np.floating)
            and np.isfinite(rc).all()
            and np.array_equal(rc, np.round(rc))
        ):
            raise InputError(source, field, f"positions must be whole pixel indices, got dtype {rc.dtype}")
    return rc.astype(np.int64)


def read_npz_points(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """Point spectra of an .npz (module docstring), rebinned onto the grid.

    Parameters
    ----------
    path : str or PathLike
        The .npz: ``rc`` (n, 2) integer pixel positions, ``spectra`` (n, channels) counts, and
        optionally scalars ``offset_ev`` and ``channel_ev`` (eV), or ``energy_ev`` (channels,).

    Returns
    -------
    rc : (n, 2) int64
        (row, column) of every spectrum.
    spectra : (n, 3000) ndarray
        Counts on 10 eV channels from 0 eV: unsigned integers when the counts are integers, else
        float32.
    record : dict
        The calibration and what rebinning did (:func:`mingraph.acquire.calibration.to_grid`).

    Raises
    ------
    InputError
        Naming the file and the array: missing arrays, shapes, positions, counts, calibration.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "p.npz"
    >>> np.savez(f, rc=np.array([[0, 1], [2, 3]]), spectra=np.ones((2, 3000), np.uint16))
    >>> rc, spectra, record = read_npz_points(f)
    >>> rc.tolist(), spectra.shape, spectra.dtype.name, record["rebinned"]
    ([[0, 1], [2, 3]], (2, 3000), 'uint8', False)
    """
    path = Path(path)
    _check_npz_size(path)
    try:
        with np.load(path) as z:
            if "rc" not in z or "spectra" not in z:
                raise InputError(
                    path, "points", f"expected arrays 'rc' and 'spectra', found {sorted(z.files)}"
                )
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except InputError:
        raise
    except Exception as e:
        raise InputError(path, "points", f"unreadable ({type(e).__name__}: {e})") from None
    spectra = arrays["spectra"]
    if spectra.ndim != 2:
        raise InputError(path, "spectra", f"expected shape (n, channels), got {spectra.shape}")
    rc = check_rc(arrays["rc"], path, spectra.shape[0])
    check_counts(spectra, str(path), "spectra")
    n_ch = spectra.shape[1]
    if "energy_ev" in arrays:
        axis = {"axis": arrays["energy_ev"], "units": "eV"}
    elif "offset_ev" in arrays or "channel_ev" in arrays:
        axis = {"offset": arrays.get("offset_ev", 0.0), "scale": arrays.get("channel_ev"), "units": "eV"}
        for k in ("offset", "scale"):
            if np.ndim(axis[k]) != 0:
                raise InputError(path, f"{k}_ev", f"expected one number, got shape {np.shape(axis[k])}")
    else:
        from mingraph.acquire.fields import CHANNEL_EV, N_CHANNELS

        if n_ch != N_CHANNELS:
            raise InputError(
                path,
                "spectra",
                f"{n_ch} channels but no calibration: expected {N_CHANNELS} channels of {CHANNEL_EV:g} eV "
                "from 0 eV, or arrays 'offset_ev' and 'channel_ev' (or 'energy_ev') saying what they are",
            )
        axis = {"offset": 0.0, "scale": CHANNEL_EV, "units": "eV"}
    on_grid, record = to_grid(spectra, axis_edges(axis, n_ch, path), path)
    return rc, on_grid, record


def _check_npz_size(path: Path) -> None:
    """The size rule for an .npz before anything is decompressed: the arrays' sizes as the zip
    directory states them (zip reading stops there), plus a float32 copy of the spectra."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return  # np.load says what it is
    try:
        with zipfile.ZipFile(path) as zf:
            total = sum(int(i.file_size) for i in zf.infolist())
    except (OSError, zipfile.BadZipFile):
        return
    check_allocation(path, "points", f"arrays of {total:,} bytes", 2 * total)


def check_measured(rc: np.ndarray, shape: tuple[int, int], source: object) -> None:
    """Refuse positions outside an (H, W) image, or a pixel measured twice (which spectrum is it?)."""
    h, w = shape
    bad = (rc[:, 0] < 0) | (rc[:, 0] >= h) | (rc[:, 1] < 0) | (rc[:, 1] >= w)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            source, "rc", f"{int(bad.sum())} point(s) outside the {h}x{w} image, e.g. #{i} at {tuple(rc[i])}"
        )
    key = rc[:, 0].astype(np.int64) * w + rc[:, 1]
    uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
    if (counts > 1).any():
        k = int(uniq[np.flatnonzero(counts > 1)[0]])
        raise InputError(source, "rc", f"pixel ({k // w}, {k % w}) has more than one spectrum")


def save_points(path: Path, rc: np.ndarray, spectra: np.ndarray) -> None:
    """Store point spectra sparse: ``rc`` int32 (n, 2), CSR ``ptr`` int64, ``channel`` uint16 and
    ``count`` (the spectra's dtype: unsigned integers, else float32) in an uncompressed .npz."""
    s, rc = np.asarray(spectra), np.asarray(rc)
    if rc.size and (rc.min() < 0 or rc.max() > np.iinfo(np.int32).max):
        raise InputError(path, "rc", f"positions must fit 32 bits, got [{rc.min()}, {rc.max()}]")
    if s.dtype.kind == "f" and s.dtype.itemsize > 4:  # stored as float32: checked for its range
        check_counts(s, str(path), "spectra")
    ptr, channel, count = sparse_rows(s)
    with open(path, "wb") as fh:
        np.savez(fh, rc=np.asarray(rc, np.int32), ptr=ptr, channel=channel, count=count)


def sparse_rows(spectra: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR form of (n, channels) spectra: ``ptr`` int64 (n + 1,), ``channel`` uint16 and ``count``
    (unsigned integers kept, anything else as float32) of the non-zero channels, row by row."""
    from mingraph_kernels.sparse_rows import csr_rows

    s = np.asarray(spectra)
    if s.dtype.kind not in "uif" or s.ndim != 2 or s.shape[1] > 65536:  # the plain NumPy way
        rows, chans = np.nonzero(s)
        ptr = np.zeros(s.shape[0] + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=s.shape[0]), out=ptr[1:])
        count = s[rows, chans]
        chans = chans.astype(np.uint16)
    else:  # one pass, no int64 index arrays (the same result)
        ptr, chans, count = csr_rows(s)
    return ptr, chans, count if count.dtype.kind == "u" else count.astype(np.float32)


def spectra_at_points(rc: np.ndarray, spectra: np.ndarray, shape: tuple[int, int], source: str):
    """The measured (n, channels) ``spectra`` at ``rc`` as an EDS source
    (:class:`~mingraph.acquire.fields.PointSpectra`) of a (H, W) field."""
    from mingraph.acquire.fields import PointSpectra

    ptr, channel, count = sparse_rows(spectra)
    return PointSpectra(np.asarray(rc, np.int64), ptr, channel, count, tuple(shape), source)


def load_points(path: Path, shape: tuple[int, int], source: str):
    """The :class:`~mingraph.acquire.fields.PointSpectra` stored by :func:`save_points`."""
    from mingraph.acquire.fields import PointSpectra

    try:
        with np.load(path) as z:
            arrays = {k: np.asarray(z[k]) for k in ("rc", "ptr", "channel", "count")}
    except Exception as e:
        raise InputError(path, "points", f"unreadable ({type(e).__name__}: {e})") from None
    rc, ptr, channel, count = (arrays[k] for k in ("rc", "ptr", "channel", "count"))
    rc = check_rc(rc, path)
    check_measured(rc, shape, path)
    n = rc.shape[0]
    if ptr.shape != (n + 1,) or not np.issubdtype(ptr.dtype, np.integer):
        raise InputError(
            path, "ptr", f"expected {n + 1} integer offsets ({n} spectra), got {ptr.dtype} {ptr.shape}"
        )
    nnz = channel.size
    if ptr[0] != 0 or np.any(np.diff(ptr) < 0) or ptr[-1] != nnz or count.shape != (nnz,):
        raise InputError(
            path,
            "ptr",
            f"the offsets end at {int(ptr[-1])} but {nnz} channels and {count.size} counts are stored "
            "(offsets must rise from 0 to the number stored)",
        )
    from mingraph.acquire.fields import N_CHANNELS

    if nnz and (
        not np.issubdtype(channel.dtype, np.integer) or channel.min() < 0 or channel.max() >= N_CHANNELS
    ):
        raise InputError(path, "channel", f"expected channel indices in [0, {N_CHANNELS - 1}]")
    check_counts(count, str(path), "count")
    return PointSpectra(rc, ptr, channel, count, shape, source)
