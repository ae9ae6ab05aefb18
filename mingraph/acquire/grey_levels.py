"""Grey levels of a BSE image as float32 in [0, 1]: one rule for a BSE file (``readers.py``) and a
BSE image inside a hypermap (``formats/hypermaps.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mingraph.common.errors import InputError


def _grey_scale(a: np.ndarray, source: str | Path, field: str) -> int:
    """The full scale of integer grey levels: 255 for 8-bit containers, 65535 for 16-bit ones,
    and 65535 for wider ones (int32, uint32, int64, uint64) whose values are 16-bit levels (0 to
    65535).  Anything else (negative levels, or more than 16 bits) is refused naming the dtype."""
    lo, hi = int(a.min()), int(a.max())
    if lo < 0:
        raise InputError(
            source,
            field,
            f"negative grey levels (minimum {lo}) in a {a.dtype} image: expected 8- or 16-bit levels "
            "(unsigned data stored signed? save it as uint8 or uint16)",
        )
    if a.dtype.itemsize <= 2:
        return 255 if a.dtype.itemsize == 1 else 65535
    if hi > 65535:
        raise InputError(
            source,
            field,
            f"levels up to {hi} in a {a.dtype} image: mingraph reads 8- or 16-bit grey levels "
            "(0-255, 0-65535); a 32-bit integer image is read only when its levels fit 16 bits",
        )
    return 65535


def bse_levels(a: np.ndarray, source: str | Path, field: str = "bse") -> np.ndarray:
    """A 2-D BSE array as float32 in [0, 1]; the same rule for a BSE file and a BSE image inside a
    hypermap.

    Integer levels are scaled by what the data holds, not by the container: 8-bit containers
    (uint8, int8) by 255, 16-bit ones (uint16, int16) by 65535, and 32- or 64-bit integers holding
    levels 0-65535 (a 16-bit image saved as PIL mode "I" or by ImageJ) by 65535; negative levels,
    or levels above 65535, are refused naming the dtype.  Floats are kept when in [0, 1].  Works
    in float32 (no float64 copy of the image).
    """
    a = np.asarray(a)
    if a.ndim != 2:
        raise InputError(source, field, f"expected a single-channel 2-D image, got shape {a.shape}")
    if a.size == 0:
        raise InputError(source, field, "empty image (0 pixels)")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise InputError(source, field, f"expected integer or float grey levels, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.integer):
        full = _grey_scale(a, source, field)
        out = a.astype(np.float32)
        out /= np.float32(full)  # exact levels: k / full rounds to the float32 nearest
        return out
    if not np.isfinite(a).all():
        raise InputError(source, field, "NaN or infinite grey levels")
    if a.min() < 0 or a.max() > 1:
        raise InputError(source, field, f"float grey levels must lie in [0, 1], got [{a.min()}, {a.max()}]")
    return a.astype(np.float32)
