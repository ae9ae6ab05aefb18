"""Arrays and HyperSpy signals in: point spectra on mingraph's energy grid, a BSE image and its
pixel size.

A HyperSpy (or exspy) signal is taken for what its axes say: an EDS spectrum signal's energy
axis (offset and channel width, or explicit channel energies; eV or keV), a hypermap's
navigation axes (its pixel size), a BSE Signal2D's axes.  HyperSpy itself is not imported: any
object with ``data`` and ``axes_manager`` in HyperSpy's form is read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mingraph.acquire.calibration import axis_edges, is_grid, to_grid
from mingraph.acquire.fields import N_CHANNELS, check_counts
from mingraph.acquire.formats.points import check_rc
from mingraph.acquire.grey_levels import bse_levels
from mingraph.common.errors import InputError

_LENGTH_UM = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "m": 1e6}


def is_signal(x: object) -> bool:
    """Whether ``x`` looks like a HyperSpy signal (``data`` and ``axes_manager``)."""
    return hasattr(x, "axes_manager") and hasattr(x, "data")


def _signal_axis(sig) -> dict:
    """The signal axis as :func:`mingraph.acquire.calibration.axis_edges` takes it."""
    ax = sig.axes_manager.signal_axes[0]
    if getattr(ax, "is_uniform", True):
        return {"offset": float(ax.offset), "scale": float(ax.scale), "units": ax.units}
    return {"axis": np.asarray(ax.axis, dtype=np.float64), "units": ax.units}


def signal_pixel_size_um(sig) -> float | None:
    """A hypermap signal's pixel size in µm from its navigation axes (None when not a length)."""
    nav = sig.axes_manager.navigation_axes
    if len(nav) != 2:
        return None
    f = _LENGTH_UM.get(str(nav[0].units).strip())
    return None if f is None else float(nav[0].scale) * f


def spectra_on_grid(
    spectra: Any, points_rc: np.ndarray | None = None, *, energy_axis: Any = None, source: str = "spectra"
) -> np.ndarray:
    """Point spectra as (n, 3000) counts on mingraph's grid (10 eV channels from 0 eV).

    Parameters
    ----------
    spectra : (n, C) array or HyperSpy signal
        Counts.  A signal with one navigation axis holds the n point spectra; one with two
        (a hypermap) is read at ``points_rc``.  A signal's energy axis is taken from it.
    points_rc : (n, 2) int, optional
        Where the points are (needed to read a hypermap signal).
    energy_axis : dict or (C + 1,) array, optional
        For arrays: ``{"offset", "scale", "units"}`` (eV or keV; offset is channel 0's lower
        edge), ``{"axis", "units"}`` or the channel edges in eV.  None: the spectra must already
        be on the grid (3000 channels of 10 eV from 0 eV).

    Returns
    -------
    (n, 3000) ndarray
        float32 counts (unsigned integer counts keep an unsigned dtype), rebinned
        flux-conservingly when the axis is not the grid
        (:func:`mingraph.acquire.calibration.to_grid`).

    Raises
    ------
    InputError
        Counts that are negative, not finite or beyond float32; an axis in other units; an
        array of another length with no ``energy_axis``.

    Examples
    --------
    >>> s = np.zeros((2, 2048), np.float32); s[:, 100] = 50   # 20 eV channels from -0.5 keV
    >>> g = spectra_on_grid(s, energy_axis={"offset": -0.5, "scale": 0.02, "units": "keV"})
    >>> g.shape, float(g.sum())
    ((2, 3000), 100.0)
    """
    if is_signal(spectra):
        sig = spectra
        energy_axis = _signal_axis(sig)
        data = np.asarray(sig.data)
        nav = sig.axes_manager.navigation_dimension
        if nav == 2:
            if points_rc is None:
                raise InputError(source, "points_rc", "a hypermap signal is read at points: give points_rc")
            rc = check_rc(np.asarray(points_rc), source)
            data = data[rc[:, 0], rc[:, 1]]
        elif nav != 1:
            raise InputError(source, "navigation axes", f"expected 1 (points) or 2 (a map), got {nav}")
        spectra = data
    a = np.asarray(spectra)
    if a.ndim != 2:
        raise InputError(source, "spectra", f"expected (n, channels) counts, got shape {a.shape}")
    check_counts(a, source, "spectra")
    if energy_axis is None:
        if a.shape[1] != N_CHANNELS:
            raise InputError(
                source,
                "energy_axis",
                f"{a.shape[1]} channels are not mingraph's grid ({N_CHANNELS} × 10 eV): give energy_axis",
            )
        return a if a.dtype.kind == "u" else a.astype(np.float32, copy=False)
    if isinstance(energy_axis, dict):
        edges = axis_edges(energy_axis, a.shape[1], source)
    else:
        edges = np.asarray(energy_axis, dtype=np.float64)
        if edges.shape != (a.shape[1] + 1,):
            raise InputError(source, "energy_axis", f"expected {a.shape[1] + 1} channel edges (eV)")
    if is_grid(edges) and a.shape[1] == N_CHANNELS:
        return a if a.dtype.kind == "u" else a.astype(np.float32, copy=False)
    grid, _ = to_grid(a, edges, source)
    return grid


def bse_array(bse: Any) -> tuple[np.ndarray, float | None]:
    """(H, W) float32 BSE in [0, 1] from an array or a Signal2D, and the signal's pixel size (µm)."""
    if is_signal(bse):
        data = np.asarray(bse.data)
        ax = bse.axes_manager.signal_axes
        px = None
        if len(ax) == 2 and str(ax[0].units).strip() in _LENGTH_UM:
            px = float(ax[0].scale) * _LENGTH_UM[str(ax[0].units).strip()]
        return bse_levels(data, "bse"), px
    return bse_levels(np.asarray(bse), "bse"), None
