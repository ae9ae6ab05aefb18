"""Mineralogy tables written to disk: CSVs, the JSON summary and (optionally) the plots."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from mingraph.analyse.mineralogy.association import association_matrix, liberation
from mingraph.analyse.mineralogy.grains import grain_statistics
from mingraph.analyse.mineralogy.inputs import BACKGROUND, UNCLASSIFIED, _check_pixel_size
from mingraph.analyse.mineralogy.modal import modal_mineralogy
from mingraph.analyse.mineralogy_plots import association_plot, grain_size_plot, modal_plot
from mingraph.analyse.plots import hex_colour, phase_colours
from mingraph.files import write_csv, write_text


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return v


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    """Rows of dicts as CSV (``columns`` or the first row's keys), written atomically."""
    cols = columns if columns is not None else (list(rows[0]) if rows else [])
    return write_csv(path, [cols] + [[_csv_value(r.get(c)) for c in cols] for r in rows])


def write_mineralogy(
    out_dir: str | os.PathLike,
    labels: np.ndarray,
    valid: np.ndarray,
    class_names: Sequence[str],
    densities: Sequence[float] | np.ndarray | None,
    pixel_size_um: float,
    confidence: np.ndarray | None = None,
    *,
    min_confidence: float = 0.5,
    connectivity: int = 8,
    plots: bool = True,
) -> dict[str, Path]:
    """Write the mineralogy report files (CSVs, PNGs, JSON summary) atomically; return their paths by name.

    Names: modal_csv, grains_csv, grain_summary_csv, grain_size_distribution_csv, association_csv
    (row-normalised %), association_boundary_csv (um), liberation_csv, summary_json, and with
    ``plots`` modal_png, grain_size_png, association_png. Phase colours are
    ``mingraph.analyse.plots.phase_colours(len(class_names))``, as in the phase map.
    """
    where = "write_mineralogy"
    names = [str(c) for c in class_names]
    px = _check_pixel_size(where, pixel_size_um)
    modal = modal_mineralogy(labels, valid, names, densities, confidence, min_confidence)
    grains = grain_statistics(labels, valid, px, connectivity, class_names=names)
    assoc = association_matrix(labels, valid, len(names), px)
    lib = liberation(labels, valid, len(names), connectivity=connectivity)
    colours = phase_colours(len(names))
    labels_a = np.asarray(labels)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["modal_csv"] = _write_csv(out / "modal.csv", modal.rows)
    grain_cols = (
        list(grains.grains[0])
        if grains.grains
        else [
            "grain_id",
            "class_id",
            "phase",
            "area_px",
            "area_um2",
            "ecd_um",
            "perimeter_um",
            "centroid_row",
            "centroid_col",
            "row_min",
            "col_min",
            "row_max",
            "col_max",
            "touches_border",
        ]
    )
    paths["grains_csv"] = _write_csv(out / "grains.csv", grains.grains, grain_cols)
    paths["grain_summary_csv"] = _write_csv(out / "grain_summary.csv", grains.phases)
    dist_cols = [
        "class_id",
        "phase",
        "ecd_min_um",
        "ecd_max_um",
        "grains",
        "area_um2",
        "area_pct",
        "cum_area_pct_passing",
        "cum_number_pct_passing",
    ]
    paths["grain_size_distribution_csv"] = _write_csv(
        out / "grain_size_distribution.csv", grains.distribution, dist_cols
    )

    # association: the phases present, then unclassified / background where they occur
    m = len(names)
    present = [k for k in range(m) if modal.rows[k]["pixels"] + modal.rows[k]["low_confidence_pixels"] > 0]
    if modal.n_unclassified:
        present.append(m)
    if (~np.asarray(valid, dtype=bool)).any():
        present.append(m + 1)
    cat_names = names + [UNCLASSIFIED, BACKGROUND]
    sub_names = [cat_names[i] for i in present]
    pct = assoc.association_pct[np.ix_(present, present)]
    bnd = assoc.boundary_um[np.ix_(present, present)]
    paths["association_csv"] = _write_csv(
        out / "association.csv",
        [
            {"phase": sub_names[i], **{sub_names[j]: float(pct[i, j]) for j in range(len(present))}}
            for i in range(len(present))
        ],
        ["phase", *sub_names],
    )
    paths["association_boundary_csv"] = _write_csv(
        out / "association_boundary_um.csv",
        [
            {"phase": sub_names[i], **{sub_names[j]: float(bnd[i, j]) for j in range(len(present))}}
            for i in range(len(present))
        ],
        ["phase", *sub_names],
    )
    lib_rows = [
        {
            "class_id": r["class_id"],
            "phase": names[r["class_id"]],
            **{k: v for k, v in r.items() if k != "class_id"},
        }
        for r in lib
    ]
    paths["liberation_csv"] = _write_csv(out / "liberation.csv", lib_rows)

    if plots:
        paths["modal_png"] = modal_plot(out / "modal.png", modal, colours)
        paths["grain_size_png"] = grain_size_plot(out / "grain_size_distribution.png", grains, modal, colours)
        paths["association_png"] = association_plot(out / "association.png", sub_names, pct)

    h, w = labels_a.shape
    summary = {
        "field_px": [int(h), int(w)],
        "pixel_size_um": px,
        "field_um": [h * px, w * px],
        **modal.summary(),
        "n_grains": len(grains.grains),
        "n_particles": int(
            ndimage.label(
                np.asarray(valid, dtype=bool),
                structure=ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1),
            )[1]
        ),
        "total_boundary_um": assoc.total_boundary_um,
        "connectivity": connectivity,
        "phases": [
            {
                **{k: modal.rows[c][k] for k in ("class_id", "phase", "pixels", "area_pct", "mass_pct")},
                **{k: grains.phases[c][k] for k in ("grains", "d50_um", "ecd_median_um")},
                "liberated_pct": lib[c]["liberated_pct"],
                "colour": hex_colour(colours[c]),
            }
            for c in range(m)
            if modal.rows[c]["pixels"] > 0
        ],
        "files": {k: p.name for k, p in paths.items()},
    }
    paths["summary_json"] = out / "mineralogy.json"
    summary["files"]["summary_json"] = "mineralogy.json"
    write_text(paths["summary_json"], json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return paths
