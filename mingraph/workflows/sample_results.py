"""The sample-level results of ``predict-sample``: its fields' figures summed, the overview, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mingraph.acquire.sample import Sample
from mingraph.common.errors import InputError
from mingraph.common.outputs import atomic_folder


def read_field_figures(out: Path, sample: Sample) -> tuple[list[dict], list[dict]]:
    """(figures, infos) of every field of ``sample`` from ``out/fields``, in field order."""
    figs, infos = [], []
    for f in sample.fields:
        d = Path(out) / "fields" / f.name
        if not (d / "field.json").is_file():
            raise InputError(
                d, "field.json", "missing: the field was not predicted (run predict-sample again)"
            )
        with np.load(d / "field.npz") as z:
            figs.append({k: z[k] for k in z.files})
        infos.append(json.loads((d / "field.json").read_text()))
    return figs, infos


def _target_ids(targets, names, shown) -> list[int] | None:
    if not targets:
        return None
    low = {n.lower(): i for i, n in enumerate(shown)} | {n.lower(): i for i, n in enumerate(names)}
    missing = [t for t in targets if t.lower() not in low]
    if missing:
        raise InputError("--target", "target", f"{missing[0]!r} is not a class of the model")
    return [low[t.lower()] for t in targets]


def write_sample_results(
    out: Path, sample: Sample, bundle, minerals, cfg: dict, *, assay=None, targets=None
) -> Path:
    """Write ``out/sample/`` (atomically, replacing an earlier one); return its report.md path."""
    from mingraph.analyse.mineralogy.fields import combine_fields
    from mingraph.analyse.mineralogy.tables import write_mineralogy_tables
    from mingraph.analyse.mosaic import stitch, write_overview
    from mingraph.analyse.report import write_report
    from mingraph.common.files import write_csv
    from mingraph.common.metrics import scores

    figs, infos = read_field_figures(out, sample)
    names = list(bundle.class_names)
    px = sample.pixel_size_um
    modal, res, assoc = combine_fields(
        figs,
        minerals,
        px,
        min_confidence=cfg["min_confidence"],
        targets=_target_ids(targets, names, list(minerals.names)),
        seed=cfg["seed"],
    )
    # the field of each grain by name, in the grains table
    res.grains.grains["field"] = np.asarray([f.name for f in sample.fields], dtype=object)[
        res.grains.grains["field"]
    ]
    metrics = None
    if all("confusion" in f for f in figs):
        s = scores(sum(f["confusion"] for f in figs))
        metrics = {k: s[k] for k in ("f1_weighted", "f1_macro", "accuracy", "support")}
    lab, bse = stitch(figs, [f.origin_px for f in sample.fields], sample.shape_px, cfg["step"])
    with atomic_folder(Path(out) / "sample", overwrite=True, kind="sample-results") as tmp:
        extra = {"fields": len(sample.fields), "sample": str(sample.path), "positioned": sample.positioned}
        mineralogy = write_mineralogy_tables(
            tmp / "mineralogy",
            modal,
            res,
            assoc,
            px,
            sample.shape_px,
            assay=assay,
            has_background=bool(modal.n_pixels > modal.n_valid),
            extra=extra,
        )
        images = write_overview(tmp, lab, bse, minerals.colours)
        rows = [
            [
                "field",
                "origin_row_px",
                "origin_col_px",
                "height_px",
                "width_px",
                "owned_px",
                "eds_points",
                "seconds",
            ]
        ]
        for i in infos:
            rows.append(
                [i["name"], *i["origin_px"], *i["shape_px"], i["owned_px"], i["eds_points"], i["seconds"]]
            )
        write_csv(tmp / "fields.csv", rows)
        summary = {
            "input": f"{sample.path} ({sample.kind}, {len(sample.fields)} fields"
            + ("" if sample.positioned else ", laid on a grid: no stage positions")
            + ")",
            "model": cfg["model"] or "default",
            "field_px": list(sample.shape_px),
            "pixel_size_um": px,
            "eds_points": int(sum(i["eds_points"] for i in infos)),
            "runtime_s": round(float(sum(i["seconds"] for i in infos)), 2),
            "overview_step_px": cfg["step"],
        }
        (tmp / "summary.json").write_text(json.dumps({"summary": summary, "metrics": metrics}, indent=2))
        report = write_report(
            tmp,
            images,
            mineralogy,
            summary,
            metrics,
            title=f"mingraph sample report: {Path(sample.path).name}",
        )
    return Path(out) / "sample" / Path(report).name
