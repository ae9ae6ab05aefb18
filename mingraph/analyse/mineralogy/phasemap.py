"""phase_map.tif that other programs open with colours and scale, and its legend (CSV and JSON).

The TIFF is an 8-bit palette image (16-bit beyond 255 classes): pixel value = class id, and
``NOT_CLASSIFIED`` (255, or 65535) where no class is given (resin, holes, unclassified). It carries
a colour table (TIFF ColorMap, photometric "palette"), the pixel size as XResolution/YResolution in
pixels per µm, and ImageJ metadata (``unit=micron``, the same LUT), so Fiji/ImageJ shows the phase
colours and a calibrated scale; tifffile and GIS tools read the palette and resolution tags.
Beyond 255 classes the map is 16-bit, still with palette and resolution, without ImageJ metadata
(ImageJ takes 8-bit lookup tables only).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mingraph.analyse.mineralogy.validate import check_pixel_size
from mingraph.common.errors import InputError
from mingraph.common.files import atomic_file, write_csv, write_text


def not_classified_value(n_classes: int) -> int:
    """The pixel value of unclassified / non-specimen pixels: 255 (uint8) or 65535 (uint16 beyond 255 classes)."""
    return 255 if n_classes <= 255 else 65535


def write_phase_map(
    path: str | os.PathLike, labels: np.ndarray, colours: np.ndarray, pixel_size_um: float
) -> Path:
    """Write ``labels`` (H, W) int class ids (-1 = none) as a palette TIFF with scale (atomically).

    ``colours`` (n_classes, 3) RGB in 0..1; ``pixel_size_um`` µm. Raises InputError for ids outside
    [-1, n_classes - 1], more than 65534 classes or a bad pixel size.
    """
    import tifffile

    px = check_pixel_size("phase_map.tif", pixel_size_um)
    cols = np.asarray(colours, dtype=np.float64).reshape(-1, 3)
    n = cols.shape[0]
    if n > 65534:
        raise InputError("phase_map.tif", "classes", f"at most 65534 classes fit a palette TIFF, got {n}")
    lab = np.asarray(labels)
    if lab.ndim != 2 or (lab.size and (lab.min() < -1 or lab.max() >= n)):
        raise InputError("phase_map.tif", "labels", f"expected a 2-D map of ids in [-1, {n - 1}]")
    none = not_classified_value(n)
    dtype = np.uint8 if none == 255 else np.uint16
    img = np.where(lab < 0, none, lab).astype(dtype)
    size = 256 if dtype == np.uint8 else 65536
    cmap = np.zeros((3, size), np.uint16)
    cmap[:, :n] = np.round(cols.T * 65535).astype(np.uint16)
    imagej = dtype == np.uint8  # ImageJ takes 8-bit LUTs only
    meta = {"unit": "micron", "LUTs": [(cmap >> 8).astype(np.uint8)]} if imagej else {}
    with atomic_file(path) as tmp:
        tifffile.imwrite(
            tmp,
            img,
            photometric="palette",
            colormap=cmap,
            resolution=(1.0 / px, 1.0 / px),
            resolutionunit="NONE",
            imagej=imagej,
            metadata=meta or None,
            compression="zlib",
        )
    return Path(path)


def write_legend(
    out_dir: str | os.PathLike,
    names: Sequence[str],
    colours: np.ndarray,
    pixel_size_um: float,
    densities: np.ndarray | None = None,
    formulas: Sequence[str | None] | None = None,
) -> tuple[Path, Path]:
    """legend.json and legend.csv beside phase_map.tif: pixel value, name, colour, density, formula."""
    from mingraph.analyse.plots import hex_colour

    out = Path(out_dir)
    n = len(names)
    rows = []
    for k, name in enumerate(names):
        d = None if densities is None or not np.isfinite(densities[k]) else float(densities[k])
        rows.append(
            {
                "id": k,
                "name": str(name),
                "colour": hex_colour(colours[k]),
                "density_g_cm3": d,
                "formula": None if formulas is None else formulas[k],
            }
        )
    legend = {
        "not_classified": not_classified_value(n),
        "pixel_size_um": float(pixel_size_um),
        "classes": rows,
    }
    j = write_text(out / "legend.json", json.dumps(legend, indent=2) + "\n")
    header = ["id", "name", "colour", "density_g_cm3", "formula"]
    c = write_csv(
        out / "legend.csv",
        [header]
        + [[r[h] if r[h] is not None else "" for h in header] for r in rows]
        + [[legend["not_classified"], "not classified", "#000000", "", ""]],
    )
    return j, c
