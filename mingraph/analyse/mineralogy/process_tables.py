"""CSV tables of :func:`~mingraph.analyse.mineralogy.process.sample_mineralogy`: particles, assay,
deportment, liberation by class and size, cumulative yield, locking and grade–recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mingraph.analyse.mineralogy.assay import assay_rows
from mingraph.analyse.mineralogy.csv_tables import write_columns, write_rows
from mingraph.analyse.mineralogy.liberation import LIB_CLASSES, N_LIB
from mingraph.analyse.mineralogy.process import SampleMineralogy

LIBERATION_COLUMNS = [
    "phase",
    "basis",
    "size_min_um",
    "size_max_um",
    "size_class",
    "liberation_class",
    "particles",
    "target_px",
    "pct",
    "ci_low",
    "ci_high",
    "unknown_surface_px",
]
YIELD_COLUMNS = ["phase", "grade_min_pct", "yield_pct", "ci_low", "ci_high"]
LOCKING_COLUMNS = ["phase", "locking", "target_px", "pct", "ci_low", "ci_high"]
GRADE_RECOVERY_COLUMNS = ["phase", "recovery_pct", "grade_pct", "ci_low", "ci_high", "mass_pull_pct", "basis"]


def particle_columns(res: SampleMineralogy) -> dict[str, np.ndarray]:
    """One row per particle: size, classified share, main phase and its area % (of classified pixels)."""
    p = res.particles
    comp = p.composition_px.tocsr()
    main = np.asarray(comp.argmax(axis=1)).ravel()
    top = np.asarray(comp.max(axis=1).todense()).ravel()
    n_ph = np.diff(comp.indptr)
    names = np.asarray(res.names, dtype=object)
    has = p.classified_px > 0
    return {
        "particle_id": np.arange(1, p.n + 1),
        "area_px": p.area_px,
        "classified_px": p.classified_px.astype(np.int64),
        "ecd_um": p.ecd_um,
        "touches_border": p.touches_border,
        "phases": n_ph,
        "main_phase": np.where(has, names[main], ""),
        "main_phase_area_pct": np.where(has, 100.0 * top / np.maximum(p.classified_px, 1), np.nan),
    }


def liberation_rows(res: SampleMineralogy) -> list[dict[str, Any]]:
    """Long table: phase, basis, size class (or all), liberation class, particles, target pixels, %, interval."""
    edges = res.size_edges_um
    rows = []
    for t in res.targets:
        for basis, d, ci in (
            ("composition", t.by_composition, t.composition_ci),
            ("free_surface", t.by_surface, t.surface_ci),
        ):
            n_s = d["pct"].shape[0] - 1
            for s in range(n_s + 1):
                for c in range(N_LIB):
                    rows.append(
                        {
                            "phase": res.names[t.class_id],
                            "basis": basis,
                            "size_min_um": float(edges[s]) if s < n_s else None,
                            "size_max_um": float(edges[s + 1]) if s < n_s else None,
                            "size_class": f"{edges[s]:g}-{edges[s + 1]:g}" if s < n_s else "all",
                            "liberation_class": LIB_CLASSES[c],
                            "particles": int(d["particles"][s, c]),
                            "target_px": float(d["target_px"][s, c]),
                            "pct": float(d["pct"][s, c]),
                            "ci_low": float(ci[0, c]) if ci is not None and s == n_s else None,
                            "ci_high": float(ci[1, c]) if ci is not None and s == n_s else None,
                            "unknown_surface_px": float(d["unknown_px"][s])
                            if basis == "free_surface"
                            else None,
                        }
                    )
    return rows


def yield_rows(res: SampleMineralogy) -> list[dict[str, Any]]:
    """Cumulative liberation yield: % of the target in particles of grade >= x, x = 0..100 %."""
    rows = []
    for t in res.targets:
        for x in range(101):
            c = None if t.yield_ci is None or x % 10 else min(x // 10 + (1 if x else 0), N_LIB - 1)
            rows.append(
                {
                    "phase": res.names[t.class_id],
                    "grade_min_pct": float(x),
                    "yield_pct": float(t.yield_pct[x]),
                    "ci_low": float(t.yield_ci[0, c]) if c is not None else None,
                    "ci_high": float(t.yield_ci[1, c]) if c is not None else None,
                }
            )
    return rows


def locking_rows(res: SampleMineralogy) -> list[dict[str, Any]]:
    """Per target: % of it liberated, in binaries with each phase, ternaries and 4+ phase particles."""
    n = len(res.names)
    rows = []
    for t in res.targets:
        lk = t.locking
        vals = np.concatenate([lk["binary"], [lk["liberated"], lk["ternary"], lk["complex"]]])
        tot = vals.sum()
        cats = [f"binary with {nm}" for nm in res.names] + ["liberated", "ternary", "complex (4+ phases)"]
        for i, cat in enumerate(cats):
            if i < n and vals[i] == 0:
                continue
            rows.append(
                {
                    "phase": res.names[t.class_id],
                    "locking": cat,
                    "target_px": float(vals[i]),
                    "pct": 100.0 * vals[i] / tot if tot > 0 else 0.0,
                    "ci_low": float(t.locking_ci[0, i]) if t.locking_ci is not None else None,
                    "ci_high": float(t.locking_ci[1, i]) if t.locking_ci is not None else None,
                }
            )
    return rows


def grade_recovery_rows(res: SampleMineralogy) -> list[dict[str, Any]]:
    """Grade at recoveries 1..100 % (the grade of the concentrate of the richest particles reaching it)."""
    rows = []
    for t in res.targets:
        gr = t.grade_recovery
        rec, grade, pull, ci = gr["recovery_pct"], gr["grade_pct"], gr["mass_pull_pct"], gr.get("ci")
        for r in range(1, 101):
            i = min(int(np.searchsorted(rec, r - 1e-9)), len(rec) - 1)
            rows.append(
                {
                    "phase": res.names[t.class_id],
                    "recovery_pct": float(r),
                    "grade_pct": float(grade[i]),
                    "ci_low": None if ci is None else float(ci[0, r - 1]),
                    "ci_high": None if ci is None else float(ci[1, r - 1]),
                    "mass_pull_pct": float(pull[i]),
                    "basis": gr["basis"],
                }
            )
    return rows


def write_process_tables(out: Path, res: SampleMineralogy, assay: dict[str, float] | None) -> dict[str, Path]:
    """Write particles, assay, deportment, liberation, yield, locking and grade–recovery CSVs into ``out``."""
    paths = {"particles_csv": write_columns(out / "particles.csv", particle_columns(res))}
    cm = res.minerals
    paths["assay_csv"] = write_rows(
        out / "assay.csv",
        assay_rows(cm.elements, res.assay_wt_pct, res.assay_ci, assay),
        [
            "element",
            "calculated_wt_pct",
            "ci_low",
            "ci_high",
            "measured_wt_pct",
            "difference_wt_pct",
            "relative_difference_pct",
        ],
    )
    carriers = [k for k in range(len(res.names)) if res.pixels[k] > 0 and np.isfinite(res.mass_pct[k])]
    dep = res.deportment_pct
    paths["deportment_csv"] = write_rows(
        out / "deportment.csv",
        [
            {"element": el, **{res.names[k]: float(dep[k, j]) for k in carriers}}
            for j, el in enumerate(cm.elements)
            if res.assay_wt_pct[j] > 0
        ],
        ["element", *[res.names[k] for k in carriers]],
    )
    for key, fname, fn, cols in (
        ("liberation_csv", "liberation.csv", liberation_rows, LIBERATION_COLUMNS),
        ("liberation_yield_csv", "liberation_yield.csv", yield_rows, YIELD_COLUMNS),
        ("locking_csv", "locking.csv", locking_rows, LOCKING_COLUMNS),
        ("grade_recovery_csv", "grade_recovery.csv", grade_recovery_rows, GRADE_RECOVERY_COLUMNS),
    ):
        paths[key] = write_rows(out / fname, fn(res), cols)
    return paths
