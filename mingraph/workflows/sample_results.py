"""The sample-level results of ``predict-sample``: its fields' figures summed, the overview, the report,
and ``sample.ome.zarr``, the OME-Zarr pyramid that each field is written into as it finishes."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
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


ZARR = "sample.ome.zarr"


def _partial(out: Path) -> Path:
    return Path(out) / f".{ZARR}.partial"  # kept across runs until complete (not a .NAME.tmp-* temporary)


@contextmanager
def _naming_store(out: Path):
    """File-system errors of the store name ``out/sample.ome.zarr`` (zarr's name no file)."""
    from mingraph.common.output_paths import named_os_error

    try:
        yield
    except OSError as e:
        raise named_os_error(e, Path(out) / ZARR, _partial(out)) from None


def open_sample_zarr(out: Path, sample: Sample, class_names, colours):
    """The OME-Zarr store of ``out`` to write fields into (``mingraph.analyse.sample_zarr``), or None
    when ``out/sample.ome.zarr`` is whole already.

    It is written under a hidden name, ``.sample.ome.zarr.partial``, and renamed into place by
    :func:`finish_sample_zarr`; a killed run's partial store is reopened (its written fields kept)
    when its layout is this sample's, else made again.  A ``sample.ome.zarr`` that mingraph did not
    write is refused (InputError), never replaced."""
    from mingraph.analyse.sample_zarr import layout

    want = layout(sample.shape_px, sample.pixel_size_um, class_names, [f.name for f in sample.fields])
    final, partial = Path(out) / ZARR, _partial(out)
    with _naming_store(out):
        return _open_store(final, partial, want, sample, class_names, colours)


def _open_store(final: Path, partial: Path, want: dict, sample: Sample, class_names, colours):
    import shutil

    import zarr

    from mingraph.analyse.sample_zarr import create_store
    from mingraph.common.outputs import check_replaceable, write_marker

    def meta(path: Path) -> dict:
        try:
            return dict(zarr.open_group(str(path), mode="r").attrs.get("mingraph", {}))
        except (OSError, ValueError, KeyError, zarr.errors.GroupNotFoundError):
            return {}

    if os.path.lexists(final):
        check_replaceable(final, ZARR)
        m = meta(final)
        if m.get("layout") == want and len(m.get("written", [])) == len(sample.fields):
            return None
    if os.path.lexists(partial):
        check_replaceable(partial, ZARR)
        if meta(partial).get("layout") == want:
            return zarr.open_group(str(partial), mode="r+")
        shutil.rmtree(partial)
    root = create_store(partial, sample.shape_px, sample.pixel_size_um, class_names, colours, want["fields"])
    write_marker(partial, "sample-ome-zarr")
    return root


def write_field_to_zarr(root, out: Path, field, fields, n_classes: int) -> None:
    """Write field ``field`` (a FieldSpec) from ``out/fields/<name>/`` into ``root``, then record it."""
    import tifffile

    from mingraph.acquire.fields import bse_from_u16
    from mingraph.acquire.sample import owned_mask
    from mingraph.analyse.mineralogy.phasemap import not_classified_value
    from mingraph.analyse.sample_zarr import mark_written, write_field_region

    d = Path(out) / "fields" / field.name
    if not (d / "bse.tif").is_file():
        raise InputError(d, "bse.tif", "missing: predicted by an older mingraph (pass --overwrite)")
    ids = tifffile.imread(d / "phase_map.tif")
    none = ids == not_classified_value(n_classes)
    labels = ids.astype(np.int16)
    labels[none] = -1
    del ids, none
    bse = bse_from_u16(tifffile.imread(d / "bse.tif"))
    conf = tifffile.imread(d / "confidence.tif")
    with _naming_store(out):
        write_field_region(root, field.origin_px, labels, bse, conf, owned_mask(fields, field.index))
        mark_written(root, field.name)


def finish_sample_zarr(out: Path, root) -> Path:
    """Rename the whole store into place as ``out/sample.ome.zarr`` (replacing an older one that
    mingraph wrote); return its path."""
    import shutil

    from mingraph.analyse.sample_zarr import fields_written

    final, partial = Path(out) / ZARR, _partial(out)
    missing = set(root.attrs["mingraph"]["layout"]["fields"]) - set(fields_written(root))
    if missing:
        raise InputError(partial, "fields", f"{len(missing)} fields not written (run predict-sample again)")
    old = Path(out) / f".{ZARR}.old"  # a previous store, moved aside until the new one is in place
    with _naming_store(out):
        if os.path.lexists(final):
            if os.path.lexists(old):
                shutil.rmtree(old)
            os.replace(final, old)
        os.replace(partial, final)
        if os.path.lexists(old):
            shutil.rmtree(old)
    return final
