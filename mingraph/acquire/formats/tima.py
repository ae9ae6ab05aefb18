"""TESCAN TIMA field folders: ``bse.png``, ``xray.map`` (or ``xray.map.gz``), ``pixelmask.png``,
and the job's ``profile.xml`` in the field folder's parent (or its ``configuration/`` folder).

The "Tescan X-ray map" binary format, as the public reader of Juránek et al. (GDLS,
github.com/RomanJuranek/graph-segmentation, ``tima/xray.py``, MIT) reads it; this is our own
implementation of that description:

- the 16 bytes ``Tescan X-ray map``;
- a text header of 80-byte records, the key in bytes 0-8 and the value from byte 10, up to a
  record whose key is ``END``; ``WIDTH``, ``HEIGHT`` and ``NCHANNELS`` are required;
- NCHANNELS bytes: the bit depth of each channel's plane, one of 0 (all zero, no data), 1, 2, 4,
  8 or 16;
- for each channel of non-zero depth, HEIGHT rows of ``ceil(WIDTH * depth / 8)`` bytes.  Pixels
  are packed in a byte most-significant bit first at depth 1, lowest bits first at depths 2 and
  4 (pixel 0 in bits 0-1, resp. 0-3), one byte at depth 8, two bytes little-endian at depth 16.

In "Dots" mode (a ``pixelmask.png`` beside it) the map has HEIGHT 1 and one column per measured
pixel, in row-major order of the mask (the order ``np.nonzero`` gives); in high-resolution mode
(no mask) it holds every pixel.  TIMA writes 3000 channels of 10 eV from 0 eV, mingraph's grid;
a map of another channel count is refused, since the header gives no calibration to rebin by.
No real xray.map is public: the bit orders follow the GDLS reader and are tested on maps written
to this description.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mingraph.acquire.fields import N_CHANNELS, bse_to_u16
from mingraph.acquire.formats.images import read_bse, read_mask
from mingraph.acquire.limits import check_allocation
from mingraph.common.errors import InputError

MAGIC = b"Tescan X-ray map"
RECORD = 80
DEPTHS = (0, 1, 2, 4, 8, 16)
BLOCK = 64
"""Channels decoded at a time: each block of channels is written into the (pixels, channels)
spectra as a band of columns, rather than one strided column a channel."""


def _read_header(fh, path) -> dict[str, str]:
    if fh.read(len(MAGIC)) != MAGIC:
        raise InputError(
            path, "magic", f"expected a file starting with {MAGIC.decode()!r}: not a TIMA X-ray map"
        )
    head: dict[str, str] = {}
    for _ in range(10_000):
        rec = fh.read(RECORD)
        if len(rec) < RECORD:
            raise InputError(path, "header", "ends before its END record")
        try:
            key, value = rec[:9].decode("ascii").strip(), rec[10:].decode("ascii").strip()
        except UnicodeDecodeError:
            raise InputError(path, "header", "a header record is not ASCII text") from None
        if key == "END":
            return head
        head[key] = value
    raise InputError(path, "header", "no END record in the first 10000 records")


def _decode(plane: np.ndarray, depth: int, width: int) -> np.ndarray:
    """(rows, ceil(width * depth / 8)) bytes -> (rows, width) values."""
    if depth == 16:
        return plane.view("<u2")[:, :width]
    if depth == 8:
        return plane[:, :width]
    if depth == 1:
        return np.unpackbits(plane, axis=1, bitorder="big")[:, :width]
    # 2 or 4 bits: pixel k of a byte in bits k*depth and up (lowest first), taken by shifts
    shifts = np.arange(0, 8, depth, dtype=np.uint8)
    values = (plane[:, :, None] >> shifts) & np.uint8((1 << depth) - 1)
    return values.reshape(plane.shape[0], -1)[:, :width]


def read_xray_map(path: str | Path) -> np.ndarray:
    """A TIMA X-ray map as counts (HEIGHT * WIDTH, NCHANNELS), pixels in row-major order.

    dtype uint8 when every channel has at most 8 bits, else uint16.  Raises InputError naming the
    file and what is wrong (magic, header keys, bit depths, a file cut short).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "not found")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            head = _read_header(fh, path)
            try:
                n, h, w = (int(head[k]) for k in ("NCHANNELS", "HEIGHT", "WIDTH"))
            except KeyError as e:
                raise InputError(
                    path, f"header {e.args[0]}", "missing (NCHANNELS, HEIGHT and WIDTH are needed)"
                ) from None
            except ValueError:
                raise InputError(
                    path, "header", f"NCHANNELS, HEIGHT, WIDTH must be integers, got {head}"
                ) from None
            if min(n, h, w) < 1:
                raise InputError(path, "header", f"expected positive sizes, got {n} channels of {h}x{w}")
            depth = np.frombuffer(fh.read(n), np.int8)
            if depth.size != n:
                raise InputError(path, "bit depths", f"file ends after {depth.size} of {n} channel depths")
            bad = sorted(set(depth.tolist()) - set(DEPTHS))
            if bad:
                raise InputError(path, "bit depths", f"got {bad}; the format has depths {DEPTHS}")
            dtype = np.dtype(np.uint16 if depth.max() > 8 else np.uint8)
            check_allocation(path, "header", f"a {h} x {w} map of {n} channels", h * w * n * dtype.itemsize)
            out = np.zeros((h * w, n), dtype)
            block = np.zeros((BLOCK, h * w), dtype)  # channels decoded into rows, then stored as columns
            for start in range(0, n, BLOCK):
                stop = min(start + BLOCK, n)
                block[: stop - start] = 0
                for ch in range(start, stop):
                    d = int(depth[ch])
                    if d == 0:
                        continue
                    row = (w * d + 7) // 8
                    buf = fh.read(h * row)
                    if len(buf) != h * row:
                        raise InputError(path, "data", f"file ends inside channel {ch} ({d}-bit): cut short?")
                    block[ch - start] = _decode(np.frombuffer(buf, np.uint8).reshape(h, row), d, w).ravel()
                out[:, start:stop] = block[: stop - start].T
            if fh.read(1):
                raise InputError(path, "data", "bytes left after the last channel: header and data disagree")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InputError(path, "file", f"unreadable ({type(e).__name__}: {e})") from None
    if n != N_CHANNELS:
        raise InputError(
            path,
            "NCHANNELS",
            f"{n} channels; TIMA maps of {N_CHANNELS} channels of 10 eV from 0 eV are expected",
        )
    return out


@dataclass
class TimaProfile:
    """What a TIMA job profile says about how its fields were measured."""

    mode: str  # "Dots" (EDS on a grid and on bright phases) or a high-resolution mode
    pixel_spacing_um: float
    field_width_um: float | None = None
    dot_spacing_um: float | None = None
    bright_phase_bse: tuple[float, float] | None = None  # BSE % range measured extra
    bse_window: tuple[float, float] | None = None  # MinBse, MaxBse: BSE % range taken as specimen
    x_ray_count: int | None = None
    fields: dict = field(default_factory=dict)  # dirname -> (dx, dy) stage position


def read_profile(path: str | Path) -> TimaProfile:
    """Parse a TIMA ``profile.xml``: mode, pixel spacing (µm), field width, dots, field positions."""
    import xml.etree.ElementTree as ET

    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise InputError(path, "xml", f"unreadable ({e})") from None

    def num(tag: str, required: bool = False) -> float | None:
        el = root.find(f".//{tag}")
        if el is None or not (el.text or "").strip():
            if required:
                raise InputError(path, tag, "missing")
            return None
        try:
            return float(el.text.strip().replace(",", "."))
        except ValueError:
            raise InputError(path, tag, f"expected a number, got {el.text.strip()!r}") from None

    px = num("PixelSpacing", required=True)
    if not px or px <= 0:
        raise InputError(path, "PixelSpacing", f"expected a positive spacing in µm, got {px}")
    lo, hi = num("MinBseBrightPhase"), num("MaxBseBrightPhase")
    win = (num("MinBse"), num("MaxBse"))
    if win != (None, None):  # one end given: the other is the scale's end
        win = (0.0 if win[0] is None else win[0], 100.0 if win[1] is None else win[1])
        if not 0 <= win[0] < win[1] <= 100:
            raise InputError(
                path,
                "MinBse",
                f"expected 0 <= MinBse < MaxBse <= 100 (% of the BSE scale), got {win[0]:g}, {win[1]:g}",
            )
    fields = {}
    for f in root.iter("Field"):
        name = (f.findtext("dirname") or "").strip()
        if name:
            fields[name] = (float(f.findtext("dx") or "nan"), float(f.findtext("dy") or "nan"))
    count = num("XRayCount")
    return TimaProfile(
        mode=root.get("mode", ""),
        pixel_spacing_um=px,
        field_width_um=num("FieldWidth"),
        dot_spacing_um=num("DotSpacing"),
        bright_phase_bse=None if lo is None or hi is None else (lo, hi),
        bse_window=None if win == (None, None) else win,
        x_ray_count=None if count is None else int(count),
        fields=fields,
    )


def specimen_mask(
    bse: np.ndarray, window: tuple[float, float], measured: np.ndarray | None = None
) -> np.ndarray:
    """The pixels a TIMA job takes as specimen: BSE within its ``[MinBse, MaxBse]`` window.

    ``bse`` (H, W) float in [0, 1] (a 16-bit image over 65535, :func:`mingraph.acquire.formats.images.read_bse`),
    compared as 16-bit grey levels so that float rounding cannot move a level across an end;
    ``window`` in % of that full scale, both ends included; ``measured`` (H, W) bool, the pixels
    where a "Dots" job measured EDS, which are specimen by the instrument's own choice and are kept
    even if rounding puts them just outside.  TIMA measures dots only inside the window: on the
    public field of Juránek et al. 2022 (MinBse 15) every one of its 31 766 dots has BSE of at least
    15.01 % and 0.5 % of the pixels (holes, cracks, resin) fall below.  Pixels outside are not
    classified (phase id -1, 255 in ``phase_map.tif``) and not counted in the mineralogy.
    Returns (H, W) bool.
    """
    levels = np.arange(65536, dtype=np.float64)  # 8-bit levels land on multiples of 257
    inside = (levels * 100.0 >= window[0] * 65535.0) & (levels * 100.0 <= window[1] * 65535.0)
    mask = inside[bse_to_u16(bse)]  # a lookup of the 16-bit level: no float64 copy of the image
    return mask | measured if measured is not None else mask


def find_profile(field_dir: Path) -> Path | None:
    """The job's profile.xml: in the field folder's parent, or its ``configuration/`` folder."""
    for p in (field_dir.parent / "profile.xml", field_dir.parent / "configuration" / "profile.xml"):
        if p.is_file():
            return p
    return None


def read_tima_field(field_dir: str | Path, say=None) -> dict:
    """A TIMA field folder as {bse, rc, spectra, valid, pixel_size_um, meta}.

    ``rc`` (n, 2) are the measured pixels (the mask's, row-major; every pixel without a mask) and
    ``spectra`` (n, 3000) their counts; ``valid`` (H, W) bool the specimen (:func:`specimen_mask`
    of the profile's MinBse/MaxBse; every pixel when the profile gives no window).  Raises
    InputError naming the file.
    """
    say = say or (lambda line: None)
    d = Path(field_dir)
    if not d.is_dir():
        raise InputError(d, "TIMA field", "not a folder (expected bse.png, xray.map[.gz], pixelmask.png)")
    bse = read_bse(d / "bse.png")
    xray = next((d / n for n in ("xray.map", "xray.map.gz") if (d / n).is_file()), None)
    if xray is None:
        raise InputError(d, "xray.map", "missing (expected xray.map or xray.map.gz)")
    spectra = read_xray_map(xray)
    mask_path = d / "pixelmask.png"
    mask = read_mask(mask_path, bse.shape, "pixelmask") if mask_path.is_file() else np.ones(bse.shape, bool)
    rc = np.argwhere(mask)
    if spectra.shape[0] != rc.shape[0]:
        what = (
            f"{int(mask.sum())} pixels of {mask_path.name}" if mask_path.is_file() else f"{mask.size} pixels"
        )
        raise InputError(xray, "spectra", f"{spectra.shape[0]} spectra for the {what}")
    prof_path = find_profile(d)
    profile = read_profile(prof_path) if prof_path is not None else None
    if profile is None:
        say(f"{d}: no profile.xml in {d.parent} (or its configuration/): pixel size unknown")
    meta = {"tima_field": str(d)}
    valid = np.ones(bse.shape, bool)
    if profile is not None:
        if profile.bse_window is not None:
            valid = specimen_mask(bse, profile.bse_window, mask if mask_path.is_file() else None)
            meta.update(
                bse_window_percent=list(profile.bse_window), specimen_fraction=round(float(valid.mean()), 6)
            )
        else:
            say(f"{prof_path}: no MinBse/MaxBse: every pixel of {d.name} is taken as specimen")
        meta.update(
            tima_mode=profile.mode,
            dot_spacing_um=profile.dot_spacing_um,
            field_width_um=profile.field_width_um,
            bright_phase_bse_percent=profile.bright_phase_bse,
            x_ray_count=profile.x_ray_count,
            stage_position=profile.fields.get(d.name),
        )
        if profile.field_width_um and not np.isclose(
            profile.field_width_um, bse.shape[1] * profile.pixel_spacing_um, rtol=0.01
        ):
            say(
                f"{prof_path}: field width {profile.field_width_um:g} µm differs from "
                f"{bse.shape[1]} px x {profile.pixel_spacing_um:g} µm"
            )
    return {
        "bse": bse,
        "rc": rc,
        "spectra": spectra,
        "valid": valid,
        "pixel_size_um": None if profile is None else profile.pixel_spacing_um,
        "meta": meta,
    }
