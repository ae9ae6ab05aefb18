"""Samples: a BSE image, its valid mask and labels, and an EDS source to ask for spectra.

A sample is what every later stage consumes (docs/architecture.md).  Sparse acquisition is
"ask the EDS source at these pixels", so simulated and measured data look the same downstream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from mingraph.common.errors import InputError

N_CHANNELS = 3000
"""EDS channels per spectrum."""
CHANNEL_EV = 10.0
"""Channel width in eV; channel k covers [k*10, (k+1)*10) eV, so its centre is (k + 0.5) * 10 eV."""


def channel_of(energy_ev: float) -> int:
    """Index of the channel that holds ``energy_ev``."""
    return int(np.floor(energy_ev / CHANNEL_EV))


def channel_energies_ev() -> np.ndarray:
    """Centre energy (eV) of every channel."""
    return (np.arange(N_CHANNELS) + 0.5) * CHANNEL_EV


@runtime_checkable
class EdsSource(Protocol):
    """Anything that returns raw EDS spectra (counts, ``N_CHANNELS`` channels) at given pixels."""

    def spectra(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Float32 counts of shape (len(rows), N_CHANNELS) measured at pixels (rows[i], cols[i])."""
        ...


@dataclass
class DenseSpectrumImage:
    """A measured spectrum image (hypermap): one spectrum for every pixel."""

    cube: np.ndarray  # (H, W, N_CHANNELS) counts
    source: str = "<memory>"
    checked: bool = False  # True when the counts were validated already (e.g. at import)

    def __post_init__(self) -> None:
        c = self.cube
        if c.ndim != 3 or c.shape[2] != N_CHANNELS:
            raise InputError(self.source, "spectra", f"expected shape (H, W, {N_CHANNELS}), got {c.shape}")
        if not self.checked:
            check_counts(c, self.source, "spectra")

    def spectra(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        h, w = self.cube.shape[:2]
        if rows.size and (rows.min() < 0 or rows.max() >= h or cols.min() < 0 or cols.max() >= w):
            raise InputError(self.source, "EDS points", f"pixel outside the {h}x{w} spectrum image")
        return np.asarray(self.cube[rows, cols], dtype=np.float32)


@dataclass
class PointSpectra:
    """Spectra measured at some pixels only (point analyses, TIMA dots), stored sparse (CSR).

    ``rc`` (n, 2) int row, col of each measured pixel (each at most once); spectrum i is
    ``count[ptr[i]:ptr[i + 1]]`` at channels ``channel[ptr[i]:ptr[i + 1]]``.  Asking for a pixel
    that was not measured raises InputError: nothing is invented.
    """

    rc: np.ndarray  # (n, 2) int
    ptr: np.ndarray  # (n + 1,) int64
    channel: np.ndarray  # (nnz,) uint16
    count: np.ndarray  # (nnz,) counts (unsigned integers or float32)
    shape: tuple[int, int]
    source: str = "<memory>"

    def __post_init__(self) -> None:
        h, w = self.shape
        key = self.rc[:, 0].astype(np.int64) * w + self.rc[:, 1]
        self._order = np.argsort(key, kind="stable")
        self._keys = key[self._order]

    @property
    def measured_mask(self) -> np.ndarray:
        """(H, W) bool: the pixels that have a spectrum."""
        m = np.zeros(self.shape, bool)
        m[self.rc[:, 0], self.rc[:, 1]] = True
        return m

    def spectra(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        key = rows * self.shape[1] + cols
        pos = np.searchsorted(self._keys, key)
        pos_c = np.minimum(pos, max(self._keys.size - 1, 0))
        missing = (pos >= self._keys.size) | (self._keys[pos_c] != key) if self._keys.size else key >= 0
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise InputError(
                self.source,
                "EDS points",
                f"no spectrum was measured at pixel ({rows[i]}, {cols[i]}) ({int(missing.sum())} such): "
                "a point-spectra field samples its measured points only (--pattern mask)",
            )
        idx = self._order[pos_c]
        out = np.zeros((key.size, N_CHANNELS), np.float32)
        starts, lens = self.ptr[idx], self.ptr[idx + 1] - self.ptr[idx]
        row = np.repeat(np.arange(idx.size), lens)
        # the CSR entries of each requested spectrum, concatenated
        ent = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(lens.sum())
        out[row, self.channel[ent].astype(np.int64)] = self.count[ent]
        return out


@dataclass
class NoSpectra:
    """An EDS source for data whose spectra are not available (e.g. a BSE + sampling mask export)."""

    source: str = "<memory>"

    def spectra(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        raise InputError(
            self.source, "spectra", "this sample has no EDS spectra (only the sampling positions)"
        )


@dataclass
class Field:
    """One field: BSE image, valid mask, optional labels, class names, pixel size and EDS source."""

    bse: np.ndarray  # (H, W) float32, normalised to [0, 1]
    valid: np.ndarray  # (H, W) bool: pixels that belong to the specimen
    labels: np.ndarray | None  # (H, W) int32 class ids, -1 where unknown or invalid
    class_names: list[str]
    pixel_size_um: float
    eds: EdsSource
    name: str = "sample"
    eds_mask: np.ndarray | None = None  # (H, W) bool: where the instrument measured EDS, if known
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_field(self)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.bse.shape)  # type: ignore[return-value]


FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Counts are stored and computed as float32 (or unsigned integers): the largest count allowed."""


def check_counts(counts: np.ndarray, source: str, field_name: str) -> None:
    """Refuse spectra that mingraph cannot store as they are: non-numeric, NaN, infinite or
    negative counts, and counts (or a spectrum's total) beyond float32's range (about 3.4e38),
    which would become infinite when stored.  Every reader of spectra calls it (point files,
    hypermaps, EMSA/Bruker spectra, the encoder's input)."""
    a = np.asarray(counts)
    if not np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_ or np.iscomplexobj(a):
        raise InputError(source, field_name, f"expected numeric counts, got dtype {a.dtype}")
    if not a.size:
        return
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a)
        if bad.any():
            raise InputError(source, field_name, f"{int(bad.sum())} NaN or infinite counts")
    lo, hi = a.min(), a.max()
    if lo < 0:
        raise InputError(source, field_name, f"negative counts (minimum {lo})")
    if a.dtype.kind == "f" and a.dtype.itemsize >= 4:  # integers (64-bit too) stay far below
        over = float(hi) > FLOAT32_MAX
        if not over and a.ndim and float(hi) * a.shape[-1] > FLOAT32_MAX:  # can a total overflow?
            over = float(a.sum(axis=-1, dtype=np.float64).max()) > FLOAT32_MAX
        if over:
            raise InputError(
                source,
                field_name,
                f"counts up to {float(hi):.3g} (dtype {a.dtype}) are beyond float32's range "
                f"(0 to {FLOAT32_MAX:.3g}, counts and each spectrum's total), in which mingraph stores "
                "and computes them: check the units (counts, not a scaled intensity)",
            )


def validate_field(s: Field) -> None:
    """Check shapes, dtypes and ranges of a sample; raise InputError naming the field."""
    src = s.name
    if s.bse.ndim != 2:
        raise InputError(src, "bse", f"expected a 2-D image, got shape {s.bse.shape}")
    if s.bse.size == 0:
        raise InputError(src, "bse", "empty image (0 pixels)")
    if not np.issubdtype(s.bse.dtype, np.floating):
        raise InputError(src, "bse", f"expected float values in [0, 1], got dtype {s.bse.dtype}")
    if not np.isfinite(s.bse).all():
        raise InputError(src, "bse", "NaN or infinite values")
    if s.valid.shape != s.bse.shape or s.valid.dtype != np.bool_:
        raise InputError(
            src, "valid", f"expected a bool mask of shape {s.bse.shape}, got {s.valid.dtype} {s.valid.shape}"
        )
    if s.labels is not None:
        if s.labels.shape != s.bse.shape:
            raise InputError(
                src, "labels", f"shape {s.labels.shape} differs from the BSE image {s.bse.shape}"
            )
        if not np.issubdtype(s.labels.dtype, np.integer):
            raise InputError(src, "labels", f"expected integer class ids, got dtype {s.labels.dtype}")
        if s.labels.size and (s.labels.max() >= len(s.class_names) or s.labels.min() < -1):
            raise InputError(src, "labels", f"class ids must lie in [-1, {len(s.class_names) - 1}]")
    if s.eds_mask is not None and s.eds_mask.shape != s.bse.shape:
        raise InputError(
            src, "eds_mask", f"shape {s.eds_mask.shape} differs from the BSE image {s.bse.shape}"
        )
    if not (s.pixel_size_um > 0) or not np.isfinite(s.pixel_size_um):
        raise InputError(src, "pixel_size_um", f"expected a positive pixel size, got {s.pixel_size_um}")


def bse_to_u16(bse: np.ndarray) -> np.ndarray:
    """BSE in [0, 1] as little-endian uint16 counts of 1/65535 (the storage form of datasets and
    shards); values outside [0, 1] are clipped (BSE is validated on entry, see ``validate_field``)."""
    a = np.clip(np.asarray(bse, dtype=np.float32), 0.0, 1.0)  # float32: no float64 copy of the image
    a *= np.float32(65535.0)
    return np.rint(a, out=a).astype("<u2")


def bse_from_u16(u16: np.ndarray) -> np.ndarray:
    """Inverse of :func:`bse_to_u16`: float32 BSE in [0, 1] (quantised to 1/65535)."""
    return np.asarray(u16).astype(np.float32) / np.float32(65535.0)
