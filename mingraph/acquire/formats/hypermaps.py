"""Hypermaps through rosettasciio (Bruker .bcf, JEOL .pts, HyperSpy .hspy): the signals a file
holds made into a :class:`Hypermap` on mingraph's 10 eV grid (``calibration.py``) with its metadata.

Which rosettasciio plugin reads a file is the registry's (:mod:`mingraph.acquire.formats`); this
module takes the signal dictionaries the plugin returns.  Every function raises
:class:`~mingraph.common.errors.InputError` naming the file, the field and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mingraph.acquire.calibration import axis_edges, to_grid
from mingraph.acquire.fields import check_counts
from mingraph.acquire.grey_levels import bse_levels
from mingraph.acquire.limits import check_allocation
from mingraph.common.errors import InputError

LENGTH_UM = {"µm": 1.0, "μm": 1.0, "um": 1.0, "micron": 1.0, "nm": 1e-3, "mm": 1e3, "m": 1e6}
"""Micrometres per unit of a spatial axis (both the micro sign U+00B5 and Greek mu U+03BC)."""
BSE_TITLES = ("BSE", "BSD", "ASB", "BACKSCATTER")
"""Image titles taken as a backscattered-electron image (Bruker writes BSE, or AsB for the
angle-selective detector)."""


@dataclass
class Hypermap:
    """A spectrum image on mingraph's grid, with what the file said about it."""

    cube: np.ndarray  # (H, W, 3000) counts: uint8/16/32 when the file's counts are integers, else float32
    bse: np.ndarray | None  # (H, W) float32 in [0, 1], scaled by its dtype's maximum like read_bse
    bse_title: str | None  # title of the image used as BSE
    pixel_size_um: float | None  # from the map's spatial axes; None when the file does not say
    calibration: dict  # calibration.to_grid's record
    cube_file: Path | None = None  # the memory-mapped .npy holding ``cube`` (lazy reading)
    instrument: dict = field(
        default_factory=dict
    )  # what the file states: beam_kev, takeoff_deg, fwhm_mnka_ev


def instrument_metadata(sig: dict) -> dict:
    """The acquisition conditions a HyperSpy/rosettasciio signal states, in mingraph's names:
    ``beam_kev`` (``SEM.beam_energy``, kV), ``takeoff_deg`` (``Detector.EDS.elevation_angle``,
    degrees; the take-off angle of an untilted specimen) and ``fwhm_mnka_ev``
    (``Detector.EDS.energy_resolution_MnKa``, eV); keys the file lacks are left out.

    Examples
    --------
    >>> instrument_metadata({"metadata": {"Acquisition_instrument": {"SEM": {"beam_energy": 20}}}})
    {'beam_kev': 20.0}
    """
    sem = sig.get("metadata", {}).get("Acquisition_instrument", {})
    sem = sem.get("SEM") or sem.get("TEM") or {}
    eds = sem.get("Detector", {}).get("EDS", {})
    out = {}
    for key, value in (
        ("beam_kev", sem.get("beam_energy")),
        ("takeoff_deg", eds.get("elevation_angle")),
        ("fwhm_mnka_ev", eds.get("energy_resolution_MnKa")),
    ):
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if np.isfinite(v) and v > 0:
            out[key] = v
    return out


def _title(sig: dict) -> str:
    return str(sig.get("metadata", {}).get("General", {}).get("title", ""))


def _is_eds(sig: dict) -> bool:
    sig_type = str(sig.get("metadata", {}).get("Signal", {}).get("signal_type", ""))
    return "EDS" in sig_type.upper() or (
        len(sig["axes"]) >= 1 and str(sig["axes"][-1].get("units", "")).strip() in ("keV", "eV")
    )


def pixel_size_um(axes: list[dict], source: object) -> float | None:
    """Pixel size in µm from the two spatial axes; None when their units are not lengths (e.g.
    'pix').  Refuses non-square pixels (rows and columns more than 1 % apart)."""
    sizes = []
    for ax in axes[:2]:
        f = LENGTH_UM.get(str(ax.get("units", "")).strip())
        try:
            scale = float(ax.get("scale", 1.0))
        except (TypeError, ValueError):
            return None
        if f is None or not np.isfinite(scale) or scale <= 0:
            return None
        sizes.append(scale * f)
    if len(sizes) != 2:
        return None
    if not np.isclose(sizes[0], sizes[1], rtol=0.01):
        raise InputError(
            source,
            "pixel size",
            f"rows are {sizes[0]:g} µm and columns {sizes[1]:g} µm apart: mingraph needs square "
            "pixels (resample the map, or give --pixel-size to use one value)",
        )
    return float(np.mean(sizes))


def hypermap_from_signals(
    signals: list[dict], path: str | Path, work_dir: str | Path | None = None, require_bse: bool = False
) -> Hypermap:
    """The spectrum image of a file's rosettasciio signals: the first 3-D EDS signal, rebinned
    onto the 10 eV grid.

    The BSE is the image titled BSE/AsB of the map's size, else the only image of the map's size
    (its title is reported), else None.  Integer BSE levels are divided by the dtype's maximum.
    With ``work_dir`` the signals hold dask arrays (rosettasciio's ``lazy=True``), read a block of
    rows at a time, and the cube is a memory-mapped ``.npy`` in ``work_dir``: memory stays near
    one block (``BLOCK_BYTES``) whatever the map's size.

    Parameters
    ----------
    signals : list of dict
        rosettasciio's signal dictionaries (``data``, ``axes``, ``metadata``) of the file.
    path : str or Path
        The file, named in errors.
    work_dir : str or Path, optional
        Where the memory-mapped cube goes (lazy reading); None: the cube is read into memory.
    require_bse : bool
        Refuse a file without a BSE image before the (long) rebinning of the cube.

    Returns
    -------
    Hypermap
        ``cube`` (H, W, 3000) counts (uint8/16/32, else float32) on 10 eV channels from 0 eV,
        ``bse`` (H, W) float32 in [0, 1] or None, ``pixel_size_um`` (µm) or None, the
        calibration record and the instrument metadata.

    Raises
    ------
    InputError
        No 3-D EDS signal, no BSE image with ``require_bse``, an energy axis or counts that do
        not fit the grid, non-square pixels.

    Examples
    --------
    >>> cube = np.zeros((2, 3, 2048), np.uint16); cube[..., 300] = 4   # 10 eV channels from 0 keV
    >>> eds = {"data": cube, "metadata": {"Signal": {"signal_type": "EDS_SEM"}},
    ...        "axes": [{"scale": 0.5, "units": "µm"}, {"scale": 0.5, "units": "µm"},
    ...                 {"offset": 0.0, "scale": 0.01, "units": "keV"}]}
    >>> hm = hypermap_from_signals([eds], "map.hspy")
    >>> hm.cube.shape, hm.cube.dtype.name, int(hm.cube[0, 0, 300]), hm.pixel_size_um, hm.bse
    ((2, 3, 3000), 'uint8', 4, 0.5, None)
    """
    path = Path(path)
    cubes = [s for s in signals if len(s["data"].shape) == 3 and _is_eds(s)]
    if not cubes:
        raise InputError(path, "spectrum image", "no 3-D EDS signal (height x width x energy) in the file")
    sig = cubes[0]
    shape = tuple(sig["data"].shape)
    images = [s for s in signals if len(s["data"].shape) == 2 and tuple(s["data"].shape) == shape[:2]]
    named = [s for s in images if any(t in _title(s).upper() for t in BSE_TITLES)]
    chosen = named[0] if named else (images[0] if len(images) == 1 else None)
    if require_bse and chosen is None:  # before the (long) rebinning of the cube
        raise InputError(path, "bse", "the file holds no BSE image of the map's size: pass --bse")
    edges = axis_edges(sig["axes"][-1], shape[-1], path)
    cube_file = None
    if work_dir is None:
        data = np.asarray(sig["data"])
        check_counts(data, str(path), "spectra")
        cube, calib = to_grid(data, edges, path)
    else:
        cube, calib = _grid_to_file(sig["data"], edges, path, Path(work_dir))
        cube_file = Path(cube.filename)
    px = pixel_size_um(sig["axes"][:2], path)
    bse = (
        None if chosen is None else bse_levels(np.asarray(chosen["data"]), path, f"image {_title(chosen)!r}")
    )
    return Hypermap(
        cube, bse, None if chosen is None else _title(chosen), px, calib, cube_file, instrument_metadata(sig)
    )


BLOCK_BYTES = 256 << 20
"""Rows of a lazily read map are rebinned in blocks of about this many output bytes."""


def _grid_to_file(data, edges: np.ndarray, path: Path, work_dir: Path) -> tuple[np.ndarray, dict]:
    """Rebin a (lazy) (H, W, n) cube block by block into an (H, W, 3000) .npy, memory-mapped on
    return.  Blocks are written with plain file writes (no mapping, so memory stays near one
    block); integer counts go to a dtype that holds any possible sum, then to the smallest dtype
    that holds the counts found."""
    from numpy.lib import format as npf

    from mingraph.acquire.calibration import GRID_EDGES_EV, check_inside, describe
    from mingraph.acquire.fields import N_CHANNELS

    h, w, _ = data.shape
    integer = np.issubdtype(data.dtype, np.integer)
    if integer:  # a grid channel sums at most k source channels (+1 from rounding)
        first = np.searchsorted(edges, GRID_EDGES_EV[:-1], "right") - 1
        last = np.searchsorted(edges, GRID_EDGES_EV[1:], "left") - 1
        bound = int((last - first + 1).max()) * int(np.iinfo(data.dtype).max) + 1
        wide_t = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if bound <= np.iinfo(t).max)
    else:
        wide_t = np.float32
    rows = max(1, BLOCK_BYTES // (w * N_CHANNELS * 4))
    n_src = data.shape[2]  # the size rule for one block (a header may claim very wide rows)
    r = min(rows, h)
    block_bytes = r * w * (n_src * np.dtype(data.dtype).itemsize + N_CHANNELS * 4)
    check_allocation(path, "spectrum image", f"a block of {r} x {w} spectra of {n_src} channels", block_bytes)
    sums = {"counts_below_0_ev": 0.0, "counts_above_grid": 0.0, "counts_total": 0.0}
    hi, rebinned = 0, False
    wide = work_dir / "cube-wide.npy"
    header = {"fortran_order": False, "shape": (h, w, N_CHANNELS)}
    with open(wide, "wb") as fh:
        npf.write_array_header_1_0(fh, header | {"descr": npf.dtype_to_descr(np.dtype(wide_t))})
        for r0 in range(0, h, rows):
            block = np.asarray(data[r0 : r0 + rows])  # only these rows are read
            check_counts(block, str(path), "spectra")
            g, rec = to_grid(block, edges, path, check_outside=False)
            fh.write(np.ascontiguousarray(g, dtype=wide_t).tobytes())
            hi = max(hi, int(g.max(initial=0)) if integer else 0)
            rebinned = rec["rebinned"]
            for k in sums:
                sums[k] += float(rec[k])
    calib = describe(edges) | {"rebinned": rebinned} | sums
    check_inside(calib, edges, path)
    final = wide
    if integer:
        small_t = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if hi <= np.iinfo(t).max)
        if small_t != wide_t:
            final = work_dir / "cube.npy"
            with open(wide, "rb") as src, open(final, "wb") as dst:
                npf.read_magic(src)
                npf.read_array_header_1_0(src)
                npf.write_array_header_1_0(dst, header | {"descr": npf.dtype_to_descr(np.dtype(small_t))})
                for r0 in range(0, h, rows):
                    a = np.fromfile(src, dtype=wide_t, count=min(rows, h - r0) * w * N_CHANNELS)
                    dst.write(a.astype(small_t).tobytes())
            wide.unlink()
    return np.load(final, mmap_mode="r"), calib
