"""Mineralogy tables written to disk: CSVs, the JSON summary and (optionally) the plots."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mingraph.analyse.mineralogy.association import AssociationResult, association_matrix
from mingraph.analyse.mineralogy.csv_tables import write_columns, write_rows
from mingraph.analyse.mineralogy.grains import GRAIN_COLUMNS
from mingraph.analyse.mineralogy.minerals import ClassMinerals, MineralEntry, class_minerals
from mingraph.analyse.mineralogy.modal import ModalResult, modal_mineralogy
from mingraph.analyse.mineralogy.process import SampleMineralogy, sample_mineralogy
from mingraph.analyse.mineralogy.process_tables import write_process_tables
from mingraph.analyse.mineralogy.validate import BACKGROUND, UNCLASSIFIED, check_pixel_size
from mingraph.analyse.mineralogy_plots import association_plot, grain_size_plot, modal_plot
from mingraph.analyse.plots import hex_colour
from mingraph.common.files import write_text

RULE = (
    "Pixels with no class or a confidence below the threshold are unclassified: they belong to their "
    "particle (its size) but to no phase's area, mass, grain, particle composition, liberation or locking; "
    "they are reported as a fraction of the specimen."
)


def _minerals_for(names: list[str], densities: Any, minerals: ClassMinerals | None) -> ClassMinerals:
    if minerals is not None:
        if list(minerals.names) != names:
            from mingraph.common.errors import InputError

            raise InputError("write_mineralogy", "minerals", "matched to other class names than the map's")
        return minerals
    if densities is None:
        return class_minerals(names, [], source="none")
    d = np.asarray(densities, dtype=np.float64).ravel()
    if d.shape[0] != len(names):
        from mingraph.common.errors import InputError

        raise InputError(
            "write_mineralogy", "densities", f"expected {len(names)} densities, got {d.shape[0]}"
        )
    entries = [MineralEntry(nm, None, float(x)) for nm, x in zip(names, d) if np.isfinite(x)]
    return class_minerals(names, entries, source="densities")


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
    minerals: ClassMinerals | None = None,
    assay: dict[str, float] | None = None,
    targets: Sequence[int] | None = None,
    split_touching: bool = True,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, Path]:
    """Write the mineralogy report files (CSVs, PNGs, JSON summary) atomically; return their paths by name.

    Names: modal_csv, grains_csv, grain_summary_csv, grain_size_distribution_csv, association_csv
    (row-normalised %), association_boundary_csv (um), particles_csv, assay_csv, deportment_csv,
    liberation_csv, liberation_yield_csv, locking_csv, grade_recovery_csv, summary_json; with ``plots``
    modal_png, grain_size_png, association_png, liberation_png, grade_recovery_png. ``minerals``
    (names, densities, formulas, colours) wins over ``densities``; ``assay`` (element -> wt %) is a
    chemical assay to compare with. The unsure-pixel rule (:data:`RULE`) applies to every table.
    """
    where = "write_mineralogy"
    names = [str(c) for c in class_names]
    px = check_pixel_size(where, pixel_size_um)
    cm = _minerals_for(names, densities, minerals)
    modal = modal_mineralogy(labels, valid, names, cm.densities, confidence, min_confidence)
    res = sample_mineralogy(
        labels,
        valid,
        px,
        cm,
        confidence=confidence,
        min_confidence=min_confidence,
        targets=targets,
        split_touching=split_touching,
        connectivity=connectivity,
        n_boot=n_boot,
        seed=seed,
    )
    valid_b = np.asarray(valid, dtype=bool)
    assoc = association_matrix(res.labels, valid_b, len(names), px)
    return write_mineralogy_tables(
        out_dir,
        modal,
        res,
        assoc,
        px,
        res.labels.shape,
        plots=plots,
        assay=assay,
        split_touching=split_touching,
        connectivity=connectivity,
        has_background=bool((~valid_b).any()),
    )


def write_mineralogy_tables(
    out_dir: str | os.PathLike,
    modal: ModalResult,
    res: SampleMineralogy,
    assoc: AssociationResult,
    pixel_size_um: float,
    field_px: tuple[int, int],
    *,
    plots: bool = True,
    assay: dict[str, float] | None = None,
    split_touching: bool = True,
    connectivity: int = 8,
    has_background: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """The files of :func:`write_mineralogy` from figures already computed (one field's, or a whole
    sample's: mingraph.analyse.mineralogy.fields); ``field_px`` (H, W) the area they cover, ``extra``
    more keys for the JSON summary."""
    names = list(res.names)
    cm = res.minerals
    px = float(pixel_size_um)
    grains = res.grains
    colours = cm.colours

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    rows = []
    for r in modal.rows:
        k = r["class_id"]
        rows.append(
            {
                **r,
                "area_ci_low": float(res.area_ci[0, k]),
                "area_ci_high": float(res.area_ci[1, k]),
                "mass_ci_low": float(res.mass_ci[0, k]) if r["mass_pct"] is not None else None,
                "mass_ci_high": float(res.mass_ci[1, k]) if r["mass_pct"] is not None else None,
                "formula": cm.formulas[k],
                "in_mineral_list": names[k] not in cm.missing,
            }
        )
    paths["modal_csv"] = write_rows(out / "modal.csv", rows)
    paths["grains_csv"] = write_columns(
        out / "grains.csv",
        {c: grains.grains[c] for c in (*GRAIN_COLUMNS, *sorted(set(grains.grains) - set(GRAIN_COLUMNS)))},
    )
    paths["grain_summary_csv"] = write_rows(out / "grain_summary.csv", grains.phases)
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
    paths["grain_size_distribution_csv"] = write_rows(
        out / "grain_size_distribution.csv", grains.distribution, dist_cols
    )

    # association: the phases present, then unclassified / background where they occur
    m = len(names)
    present = [k for k in range(m) if res.pixels[k] > 0]
    if res.n_unclassified + res.n_low_confidence:
        present.append(m)
    if has_background:
        present.append(m + 1)
    cat_names = names + [UNCLASSIFIED, BACKGROUND]
    sub_names = [cat_names[i] for i in present]
    pct = assoc.association_pct[np.ix_(present, present)]
    bnd = assoc.boundary_um[np.ix_(present, present)]
    for key, fname, mat in (
        ("association_csv", "association.csv", pct),
        ("association_boundary_csv", "association_boundary_um.csv", bnd),
    ):
        paths[key] = write_rows(
            out / fname,
            [
                {"phase": sub_names[i], **{sub_names[j]: float(mat[i, j]) for j in range(len(present))}}
                for i in range(len(present))
            ],
            ["phase", *sub_names],
        )
    paths.update(write_process_tables(out, res, assay))

    if plots:
        from mingraph.analyse.mineralogy_liberation_plots import grade_recovery_plot, liberation_plot

        paths["modal_png"] = modal_plot(out / "modal.png", modal, colours, res.area_ci, res.mass_ci)
        paths["grain_size_png"] = grain_size_plot(out / "grain_size_distribution.png", grains, modal, colours)
        paths["association_png"] = association_plot(out / "association.png", sub_names, pct)
        shown = _report_targets(res)
        if shown and res.particles.n >= 2:
            paths["liberation_png"] = liberation_plot(out / "liberation.png", res, shown)
            paths["grade_recovery_png"] = grade_recovery_plot(out / "grade_recovery.png", res, shown)

    h, w = field_px
    summary = {
        "field_px": [int(h), int(w)],
        "pixel_size_um": px,
        "field_um": [h * px, w * px],
        **modal.summary(),
        "rule": RULE,
        "n_grains": grains.n_grains,
        "n_particles": res.particles.n,
        "split_touching": split_touching,
        "total_boundary_um": assoc.total_boundary_um,
        "connectivity": connectivity,
        "bootstrap": {
            "unit": res.bootstrap_unit,
            "units": res.n_units,
            "replicates": res.n_boot,
            "level": 0.95,
        },
        "mineral_list": {
            "source": cm.source,
            "not_in_list": cm.missing,
            "no_density": cm.no_density,
            "no_formula": cm.no_formula,
        },
        "assay_covers_mass_pct": res.covered_mass_pct,
        "targets": [names[t] for t in _report_targets(res)],
        "phases": [
            {
                **{k: modal.rows[c][k] for k in ("class_id", "phase", "pixels", "area_pct", "mass_pct")},
                "area_ci": [float(res.area_ci[0, c]), float(res.area_ci[1, c])],
                **{k: grains.phases[c][k] for k in ("grains", "d50_um", "ecd_median_um")},
                "colour": hex_colour(colours[c]),
            }
            for c in range(m)
            if modal.rows[c]["pixels"] > 0
        ],
        "files": {k: p.name for k, p in paths.items()},
        **(extra or {}),
    }
    paths["summary_json"] = out / "mineralogy.json"
    summary["files"]["summary_json"] = "mineralogy.json"
    write_text(paths["summary_json"], json.dumps(summary, indent=2, allow_nan=False, default=_json) + "\n")
    return paths


def _json(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(type(v).__name__)


def _report_targets(res, most: int = 4) -> list[int]:
    """Targets shown in plots and the report: the first ``most`` of those computed, by mass (or area) %."""
    ids = [t.class_id for t in res.targets]
    key = np.where(np.isfinite(res.mass_pct), res.mass_pct, res.area_pct)
    if len(ids) > most:
        ids = sorted(ids, key=lambda k: -key[k])[:most]
    return ids
