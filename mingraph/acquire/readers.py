"""Read real SEM data: BSE and label images (TIFF/PNG), EDS sampling masks, spectrum images.

Spectrum images (Bruker .bcf, HyperSpy .hspy) and single spectra (EMSA .msa) are read through
rosettasciio (the ``io`` extra).  Every reader checks what it returns and raises
:class:`~mingraph.errors.InputError` naming the file, the field and what was expected.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mingraph.acquire.fields import CHANNEL_EV, N_CHANNELS, check_counts
from mingraph.errors import InputError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


def _read_raw_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(path, "file", "not found")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(path, "format", f"expected one of {IMAGE_SUFFIXES}, got {path.suffix!r}")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(path))
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im)
    except Exception as e:  # the libraries raise many types for a corrupt file
        raise InputError(path, "image", f"unreadable ({type(e).__name__}: {e})") from None


def read_bse(path: str | Path) -> np.ndarray:
    """A grey-level BSE image as float32 in [0, 1] (integers scaled by their dtype's maximum)."""
    path = Path(path)
    a = _read_raw_image(path)
    if (
        a.ndim == 3
        and a.shape[2] in (3, 4)
        and np.all(a[..., 0] == a[..., 1])
        and np.all(a[..., 1] == a[..., 2])
    ):
        a = a[..., 0]  # grey image saved as RGB(A)
    if a.ndim != 2:
        raise InputError(path, "bse", f"expected a single-channel 2-D image, got shape {a.shape}")
    if a.size == 0:
        raise InputError(path, "bse", "empty image (0 pixels)")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number):
        raise InputError(path, "bse", f"expected integer or float grey levels, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.integer):
        if np.issubdtype(a.dtype, np.signedinteger) and a.min() < 0:
            raise InputError(path, "bse", "negative grey levels")
        return (a.astype(np.float64) / np.iinfo(a.dtype).max).astype(np.float32)
    if not np.isfinite(a).all():
        raise InputError(path, "bse", "NaN or infinite grey levels")
    if a.min() < 0 or a.max() > 1:
        raise InputError(path, "bse", f"float grey levels must lie in [0, 1], got [{a.min()}, {a.max()}]")
    return a.astype(np.float32)


def read_labels(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """An integer phase-id image as int32; negative ids mean unknown (stored as -1)."""
    path = Path(path)
    a = _read_raw_image(path)
    if a.ndim != 2:
        raise InputError(path, "labels", f"expected a single-channel 2-D image, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise InputError(path, "labels", f"expected integer phase ids, got dtype {a.dtype}")
    if shape is not None and a.shape != tuple(shape):
        raise InputError(path, "labels", f"shape {a.shape} differs from the BSE image {tuple(shape)}")
    return np.where(a < 0, -1, a).astype(np.int32)


def read_mask(path: str | Path, shape: tuple[int, int] | None = None, field: str = "mask") -> np.ndarray:
    """A binary mask image (any non-zero pixel is set) as bool."""
    path = Path(path)
    a = _read_raw_image(path)
    if a.ndim == 3:
        a = a[..., 0]
    if a.ndim != 2:
        raise InputError(path, field, f"expected a 2-D image, got shape {a.shape}")
    if shape is not None and a.shape != tuple(shape):
        raise InputError(path, field, f"shape {a.shape} differs from the BSE image {tuple(shape)}")
    return a != 0


def read_class_names(path: str | Path) -> list[str]:
    """Class names from JSON (a list, or {id: name}) or a text file with one name a line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "not found")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(path, "json", f"unreadable ({e})") from None
        if isinstance(obj, dict):
            try:
                ids = {int(k): str(v) for k, v in obj.items()}
            except ValueError:
                raise InputError(path, "class ids", "keys must be integer class ids") from None
            if not ids or min(ids) < 0:
                raise InputError(path, "class ids", "expected non-negative integer ids")
            return [ids.get(i, f"phase {i}") for i in range(max(ids) + 1)]
        if isinstance(obj, list) and all(isinstance(x, str) for x in obj):
            _check_unique(path, obj)
            return obj
        raise InputError(path, "class names", "expected a list of names or an {id: name} object")
    names = [ln.strip() for ln in text.rstrip("\n").splitlines()]
    if not names or not all(names):
        raise InputError(path, "class names", "expected one non-empty name per line (line k names class k-1)")
    _check_unique(path, names)
    return names


def _check_unique(path: Path, names: list[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise InputError(path, "class names", f"{n!r} appears twice")
        seen.add(n)


def _check_energy_axis(path: Path, axis: dict) -> None:
    scale, offset = float(axis.get("scale", 0)), float(axis.get("offset", 0))
    units = str(axis.get("units", "keV")).strip()
    factor = {"keV": 1000.0, "eV": 1.0}.get(units)
    if factor is None:
        raise InputError(path, "energy axis", f"expected units keV or eV, got {units!r}")
    if not np.isclose(scale * factor, CHANNEL_EV, rtol=1e-6) or not np.isclose(
        offset * factor, 0.0, atol=1e-3
    ):
        raise InputError(
            path,
            "energy axis",
            f"expected {CHANNEL_EV:g} eV channels from 0 eV, got {scale * factor:g} eV channels from {offset * factor:g} eV",
        )


def _fit_channels(path: Path, data: np.ndarray) -> np.ndarray:
    """Pad (with zeros) or refuse spectra so they have exactly N_CHANNELS channels."""
    n = data.shape[-1]
    if n > N_CHANNELS:
        extra = data[..., N_CHANNELS:]
        if np.any(extra != 0):
            raise InputError(
                path,
                "channels",
                f"{n} channels with counts beyond {N_CHANNELS * CHANNEL_EV / 1000:g} keV; expected at most {N_CHANNELS}",
            )
        return data[..., :N_CHANNELS]
    if n < N_CHANNELS:
        pad = np.zeros(data.shape[:-1] + (N_CHANNELS - n,), dtype=data.dtype)
        return np.concatenate([data, pad], axis=-1)
    return data


def _rsciio_reader(path: Path):
    suffix = path.suffix.lower()
    try:
        if suffix == ".bcf":
            from rsciio.bruker import file_reader
        elif suffix in (".hspy", ".hdf5"):
            from rsciio.hspy import file_reader
        elif suffix in (".msa", ".ems", ".emsa"):
            from rsciio.msa import file_reader
        else:
            raise InputError(path, "format", f"expected .bcf, .hspy or .msa, got {suffix!r}")
    except ImportError as e:
        raise InputError(path, "reader", f"needs the io extra (pip install 'mingraph[io]'): {e}") from None
    return file_reader


def _read_signals(path: Path) -> list[dict]:
    if not path.is_file():
        raise InputError(path, "file", "not found")
    reader = _rsciio_reader(path)
    try:
        return reader(str(path))
    except InputError:
        raise
    except Exception as e:
        raise InputError(path, "file", f"unreadable ({type(e).__name__}: {e})") from None


def _is_eds(sig: dict) -> bool:
    sig_type = str(sig.get("metadata", {}).get("Signal", {}).get("signal_type", ""))
    return "EDS" in sig_type.upper() or (
        len(sig["axes"]) >= 1 and str(sig["axes"][-1].get("units", "")).strip() in ("keV", "eV")
    )


def read_spectrum_image(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(cube (H, W, 3000) float32 counts, BSE image in [0, 1] or None) from a .bcf or .hspy file."""
    path = Path(path)
    signals = _read_signals(path)
    cubes = [s for s in signals if np.asarray(s["data"]).ndim == 3 and _is_eds(s)]
    if not cubes:
        raise InputError(path, "spectrum image", "no 3-D EDS signal (height x width x energy) in the file")
    sig = cubes[0]
    _check_energy_axis(path, sig["axes"][-1])
    data = np.asarray(sig["data"])
    check_counts(data, str(path), "spectra")
    cube = _fit_channels(path, data).astype(np.float32)
    bse = None
    images = [s for s in signals if np.asarray(s["data"]).ndim == 2]
    for im in images:
        title = str(im.get("metadata", {}).get("General", {}).get("title", "")).upper()
        if "BSE" in title or len(images) == 1:
            a = np.asarray(im["data"]).astype(np.float64)
            if a.shape == cube.shape[:2] and np.isfinite(a).all():
                lo, hi = a.min(), a.max()
                bse = ((a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)).astype(np.float32)
                break
    return cube, bse


def read_msa(path: str | Path) -> np.ndarray:
    """One EMSA/MSA spectrum as float32 counts in 3000 channels of 10 eV from 0 (reference libraries)."""
    path = Path(path)
    signals = _read_signals(path)
    sig = signals[0]
    data = np.asarray(sig["data"])
    if data.ndim != 1:
        raise InputError(path, "spectrum", f"expected a single spectrum, got shape {data.shape}")
    _check_energy_axis(path, sig["axes"][-1])
    check_counts(data, str(path), "counts")
    return _fit_channels(path, data).astype(np.float32)
