"""What ``mingraph view`` shows, read from a run folder without napari: layers of plain (or Dask)
arrays with their scale in µm, the legend's colours and names, the EDS points and their properties.

A ``predict`` output gives its field; a ``predict-sample`` output its stitched mosaic at full
resolution, read lazily field by field (:mod:`mingraph.view.mosaic`).  Layers, bottom to top:
``BSE``, ``phase map`` (labels: pixel value = class id, the legend's colours), ``confidence``
(hidden), ``unclassified`` (1: unknown, no mineral of the list fits; 2: below the run's
``min_confidence``) and ``EDS points`` (coloured by class).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

UNKNOWN, LOW_CONFIDENCE = 1, 2
UNCLASSIFIED_COLOURS = {UNKNOWN: (1.0, 1.0, 1.0, 1.0), LOW_CONFIDENCE: (0.0, 0.0, 0.0, 0.55)}
UNCLASSIFIED_NAMES = {UNKNOWN: "unknown", LOW_CONFIDENCE: "low confidence"}
UNKNOWN_POINT = (1.0, 1.0, 1.0, 1.0)


@dataclass
class Layer:
    """One layer: ``kind`` image, labels or points; ``data`` (H, W) array (NumPy or Dask) or, for
    points, (n, 2) row, col in pixels; ``scale`` µm per pixel (row, col)."""

    kind: str
    name: str
    data: Any
    scale: tuple[float, float]
    colours: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)  # labels
    names: dict[int, str] = field(default_factory=dict)  # labels: value -> name
    background: int = 0  # labels: the value shown transparent (phase map: not classified)
    properties: dict[str, np.ndarray] = field(default_factory=dict)  # points
    point_colours: np.ndarray | None = None  # points: (n, 4) RGBA
    colormap: str = "gray"
    contrast: tuple[float, float] | None = None
    visible: bool = True
    opacity: float = 1.0


@dataclass
class Scene:
    """A run's layers; ``points`` reads a point's spectrum (:mod:`mingraph.view.spectra`)."""

    run: Path
    kind: str  # "predict" or "sample"
    pixel_size_um: float
    layers: list[Layer]
    points: Any = None

    def layer(self, name: str) -> Layer:
        return next(la for la in self.layers if la.name == name)


def hex_rgba(colour: str) -> tuple[float, float, float, float]:
    """'#rrggbb' -> RGBA in 0..1."""
    c = colour.lstrip("#")
    return (int(c[0:2], 16) / 255, int(c[2:4], 16) / 255, int(c[4:6], 16) / 255, 1.0)


def legend_of(folder: Path) -> tuple[dict[int, str], dict[int, tuple], int]:
    """(names by class id, RGBA colours by class id, the not-classified pixel value) of legend.json."""
    d = json.loads((folder / "legend.json").read_text())
    names = {int(c["id"]): str(c["name"]) for c in d["classes"]}
    colours = {int(c["id"]): hex_rgba(c["colour"]) for c in d["classes"]}
    return names, colours, int(d["not_classified"])


def palette_legend(tif: Path, names: list[str]) -> tuple[dict[int, str], dict[int, tuple], int]:
    """The legend of a palette phase_map.tif (colours from its ColorMap tag) named by ``names``."""
    import tifffile

    from mingraph.analyse.mineralogy.phasemap import not_classified_value

    with tifffile.TiffFile(tif) as t:
        cmap = np.asarray(t.pages[0].colormap, np.float64) / 65535.0
    n = len(names)
    colours = {k: (*(float(v) for v in cmap[:, k]), 1.0) for k in range(n)}
    return dict(enumerate(names)), colours, not_classified_value(n)


def min_confidence_of(folder: Path) -> float:
    """The run's ``min_confidence`` (mineralogy/mineralogy.json; 0.5 when it is not recorded)."""
    p = folder / "mineralogy" / "mineralogy.json"
    if p.is_file():
        return float(json.loads(p.read_text()).get("min_confidence", 0.5))
    return 0.5


def unclassified_map(phase, confidence, none: int, min_confidence: float):
    """(H, W) uint8: :data:`UNKNOWN` where the specimen has no class, :data:`LOW_CONFIDENCE` where
    the class's confidence is below ``min_confidence``, 0 elsewhere (off the specimen too: its
    confidence is 0).  Works on NumPy and Dask arrays alike."""
    specimen = confidence > 0
    unknown = (phase == none) & specimen
    low = (phase != none) & specimen & (confidence < min_confidence)
    return unknown.astype(np.uint8) * UNKNOWN + low.astype(np.uint8) * LOW_CONFIDENCE


def point_layer(
    table: dict[str, np.ndarray], names: dict[int, str], colours: dict[int, tuple], px: float
) -> Layer:
    """The EDS points layer of a points table (columns of points.csv), coloured by class."""
    cls = table["class_id"].astype(np.int64)
    rgba = np.array([colours.get(int(c), UNKNOWN_POINT) for c in cls], np.float32).reshape(-1, 4)
    props = {"mineral": np.array([names.get(int(c), "unknown") for c in cls], dtype=object)}
    props["probability"] = table["probability"].astype(np.float32)
    if "fit_z" in table:
        props["fit_z"] = table["fit_z"].astype(np.float32)
    rc = np.stack([table["row"], table["col"]], 1).astype(np.float64).reshape(-1, 2)
    return Layer("points", "EDS points", rc, (px, px), properties=props, point_colours=rgba)


def read_points_table(path: Path) -> dict[str, np.ndarray]:
    """points.csv as columns (numbers as arrays; ``mineral`` as text)."""
    import pandas as pd

    from mingraph.common.escapes import csv_uncell

    df = pd.read_csv(path, keep_default_na=False, dtype={"mineral": str})
    out = {c: df[c].to_numpy() for c in df.columns}
    out["mineral"] = np.array([csv_uncell(m) for m in out["mineral"]], dtype=object)
    return out


def field_scene(folder: Path) -> Scene:
    """The scene of one predict output."""
    import tifffile

    from mingraph.view.spectra import PointSpectraReader

    names, colours, none = legend_of(folder)
    px = float(json.loads((folder / "legend.json").read_text())["pixel_size_um"])
    phase = tifffile.imread(folder / "phase_map.tif")
    conf = tifffile.imread(folder / "confidence.tif")
    layers = []
    if (folder / "bse.tif").is_file():
        layers.append(
            Layer("image", "BSE", tifffile.imread(folder / "bse.tif"), (px, px), contrast=(0, 65535))
        )
    layers += field_layers(phase, conf, names, colours, none, px, min_confidence_of(folder))
    points = None
    if (folder / "points.csv").is_file():
        table = read_points_table(folder / "points.csv")
        layers.append(point_layer(table, names, colours, px))
        points = PointSpectraReader.of_predict(folder, table)
    return Scene(folder, "predict", px, layers, points)


def field_layers(phase, conf, names, colours, none: int, px: float, min_confidence: float) -> list[Layer]:
    """The phase map, confidence and unclassified layers of (H, W) phase ids and confidence."""
    return [
        Layer(
            "labels", "phase map", phase, (px, px), colours=dict(colours), names=dict(names), background=none
        ),
        Layer("image", "confidence", conf, (px, px), colormap="viridis", contrast=(0.0, 1.0), visible=False),
        Layer(
            "labels",
            "unclassified",
            unclassified_map(phase, conf, none, min_confidence),
            (px, px),
            colours=dict(UNCLASSIFIED_COLOURS),
            names=dict(UNCLASSIFIED_NAMES),
        ),
    ]
