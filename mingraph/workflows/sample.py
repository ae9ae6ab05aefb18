"""``mingraph predict-sample``: every field of a sample predicted on Dask, then the sample's results.

Layout of OUT::

    run.json                 the settings of the run (a resumed run must have the same)
    fields/<name>/           one folder per field, written atomically (temporary name, then renamed):
        phase_map.tif, confidence.tif, field.json, field.npz (the field's owned figures and thumbnails),
        bse.tif (uint16, µm scale), points.csv, points.npz (what `mingraph view` shows and the
        store's BSE: analyse/view_files.py)
    sample/                  the sample's results, rewritten whole at the end of each run:
        mineralogy/ (modal, grains with their field and edge flag, particles, association, liberation ...),
        overview_phases.png, overview_bse.png, fields.csv, summary.json, report.md, report.html
    sample.ome.zarr/         the stitched BSE, confidence and phase map as an OME-Zarr pyramid (NGFF 0.4,
                             mingraph/analyse/sample_zarr.py): this process writes each field into it as
                             the field finishes, under the name .sample.ome.zarr.partial until whole

A field whose folder exists is finished and is never predicted again: a killed run, run again,
predicts only the fields it lacks; a task that Dask re-runs after losing its worker finds its
folder and returns it.  Per-field EDS draws are seeded by (seed, field index), so the fields'
results do not depend on the number of workers or their order.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mingraph.acquire.sample import FieldSpec, Sample, open_sample, owned_mask
from mingraph.acquire.simulate.eds import measured_spectra
from mingraph.common.engine import check_scheduler
from mingraph.common.errors import InputError
from mingraph.common.files import file_digest, write_text
from mingraph.common.output_paths import clean_stale, inside, safe_name
from mingraph.common.outputs import atomic_folder, output_folder, protect

_CACHE: dict[str, Any] = {}  # per worker process: the model and open datasets


def field_seed(seed: int, index: int) -> int:
    """The EDS-draw seed of field ``index``: independent of workers and order."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _cached(key: str, make: Callable[[], Any]) -> Any:
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def load_field(spec: FieldSpec, bundle, cfg: dict):
    """(Field in the model's classes, EDS positions (n, 2) int32, embeddings (n, d) float32) of one field."""
    from mingraph.acquire.fields import Field
    from mingraph.acquire.formats.points import spectra_at_points
    from mingraph.learn.bundle import point_features
    from mingraph.workflows.predict import (
        check_points,
        labels_in_model_classes,
        measure_points,
        measured_field,
    )

    px = cfg["pixel_size_um"]
    if spec.kind == "dataset":
        from mingraph.acquire.dataset import open_dataset

        ds = _cached(f"dataset:{spec.source}", lambda: open_dataset(spec.source))
        sample = ds.field(ds.find(spec.tile))
        bundle = field_classifier(bundle, cfg, measured_spectra(sample)[1], spec.source)
        rc, emb = measure_points(
            sample, bundle, cfg["fraction"], cfg["pattern"], field_seed(cfg["seed"], spec.index)
        )
        sample, _ = labels_in_model_classes(sample, bundle)
    elif spec.kind == "tima":
        from mingraph.acquire.formats.tima import read_tima_field

        d = read_tima_field(spec.source)
        valid = d["valid"]
        if spec.valid is not None:  # a manifest's specimen mask wins over the profile's BSE window
            from mingraph.acquire.formats.images import read_mask

            valid = read_mask(spec.valid, d["bse"].shape, "valid")
        bundle = field_classifier(bundle, cfg, None, spec.source)
        rc = check_points(d["rc"], d["bse"].shape, spec.source)
        eds = spectra_at_points(rc, d["spectra"], d["bse"].shape, spec.source)
        sample = Field(d["bse"], valid, None, bundle.class_names, px, eds)
        emb = point_features(bundle, d["spectra"])
    else:
        bundle = field_classifier(bundle, cfg, None, spec.source)
        sample, rc, emb = measured_field(spec.source, spec.points, spec.valid, px, bundle)
    if sample.shape != tuple(spec.shape):
        raise InputError(
            spec.source,
            f"field {spec.name}",
            f"image is {sample.shape}, the sample was laid out with {spec.shape}",
        )
    return sample, rc, emb, bundle


def states_beam(s: Sample) -> bool:
    """True when every field of a dataset sample recorded its beam energy at import (a hypermap's
    file states it): the physics classifier is then the default, as for ``predict``."""
    if s.kind != "dataset" or not s.fields:
        return False
    from mingraph.acquire.dataset import open_dataset

    for f in s.fields:
        ds = _cached(f"dataset:{f.source}", lambda src=f.source: open_dataset(src))
        if ds.eds_params(ds.find(f.tile)).get("instrument", {}).get("beam_kev") is None:
            return False
    return True


def field_classifier(bundle, cfg: dict, params: dict | None, source: object):
    """The model with the run's point classifier for one field: with the physics, a classifier of
    its own, calibrated to this field's points (its beam from ``--beam-kev`` or the field's file)."""
    if cfg.get("classifier", "encoder") != "physics":
        return bundle
    from mingraph.learn.bundle import with_classifier
    from mingraph.spectra.point_classifier import instrument_from

    start = instrument_from(params, cfg.get("beam_kev"), source)
    return with_classifier(bundle, "physics", start, cfg.get("library_file"))


def run_field(spec: FieldSpec, cfg: dict, fields: list[FieldSpec]) -> dict:
    """Predict one field and write ``fields/<name>/`` atomically; a finished folder is returned as is."""
    import tifffile

    from mingraph.analyse.mineralogy.fields import field_figures
    from mingraph.analyse.mineralogy.phasemap import write_phase_map
    from mingraph.analyse.mosaic import thumbnail
    from mingraph.analyse.view_files import write_view_files
    from mingraph.common.metrics import confusion
    from mingraph.learn.bundle import load_model
    from mingraph.workflows.predict import predict_field

    folder = inside(cfg["out"], "fields", safe_name(spec.name, spec.source, "field name"))
    if (folder / "field.json").is_file():
        return json.loads((folder / "field.json").read_text())
    from mingraph.learn.distributed import pick_device

    device = pick_device(cfg.get("device", "cpu"))  # on the worker: "auto" means this worker's GPU
    bundle = _cached(f"model:{cfg['model']}:{device}", lambda: load_model(cfg["model"], device=device))
    cpu0 = time.process_time()
    sample, rc, emb, bundle = load_field(spec, bundle, cfg)
    pred = predict_field(bundle, sample.bse, sample.valid, rc, emb, block=cfg["block"], progress=False)
    own = owned_mask(fields, spec.index)
    n = len(bundle.class_names)
    figs = field_figures(
        pred.labels,
        sample.valid,
        pred.confidence,
        own,
        sample.pixel_size_um,
        n,
        min_confidence=cfg["min_confidence"],
    )
    figs.update(thumbnail(pred.labels, sample.bse, own, cfg["step"]))
    if sample.labels is not None:
        truth = np.where(sample.valid & own, sample.labels, -1)
        figs["confusion"] = confusion(truth, pred.labels, n, unclassified=True)
    info = {
        "index": spec.index,
        "name": spec.name,
        "origin_px": list(spec.origin_px),
        "shape_px": list(spec.shape),
        "eds_points": int(rc.shape[0]),
        "owned_px": int(own.sum()),
        "seconds": round(pred.seconds, 3),
        "cpu_s": round(time.process_time() - cpu0, 3),  # CPU time of the field's work (all threads)
    }
    with atomic_folder(folder, overwrite=True, kind="field") as tmp:
        write_phase_map(tmp / "phase_map.tif", pred.labels, cfg["minerals"].colours, sample.pixel_size_um)
        tifffile.imwrite(tmp / "confidence.tif", pred.confidence, compression="zlib")
        np.savez_compressed(tmp / "field.npz", **figs)
        write_view_files(tmp, sample, pred, list(cfg["minerals"].names), bundle.encoder)
        (tmp / "field.json").write_text(json.dumps(info, indent=2))
    return info


def _settings(sample: Sample, model: str, **kw) -> dict:
    return {
        "sample": str(Path(sample.path).resolve()),
        "model": model,
        "fields": [f.name for f in sample.fields],
        **kw,
    }


def minerals_digest(minerals) -> str:
    """A digest of what a mineral list gives the classes (names, formulas, densities, colours).

    Two lists that colour or weigh any class differently have different digests, so a resumed
    run never mixes them (the list is a setting of the run).
    """
    h = hashlib.sha256()
    h.update(json.dumps([list(minerals.names), [f or "" for f in minerals.formulas]]).encode())
    h.update(np.ascontiguousarray(minerals.densities, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(minerals.colours, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def _prepare_out(out: Path, settings: dict, overwrite: bool, sample: Sample) -> Path:
    """Make, reopen (same settings) or replace (``overwrite``, only a folder mingraph wrote) OUT.

    The sample's own files are protected: OUT may not hold any of them."""
    for f in sample.fields:
        safe_name(f.name, sample.path, "field name")
    inputs = [sample.path] + [p for f in sample.fields for p in (f.source, f.points, f.valid)]
    with protect(inputs):
        out = output_folder(out, "predict-sample", overwrite=overwrite)
    run = out / "run.json"
    if run.is_file():
        try:
            old = json.loads(run.read_text())
        except json.JSONDecodeError:
            raise InputError(run, "json", "unreadable: pass --overwrite to start again") from None
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            raise InputError(
                run, diff[0], "differs from this run's settings: resume with the same, or --overwrite"
            )
    elif (out / "fields").exists():
        raise InputError(run, "run.json", "missing beside fields/: pass --overwrite to start again")
    (out / "fields").mkdir(exist_ok=True)
    for f in sample.fields:  # a field being written when a run was killed
        clean_stale(out / "fields" / f.name)
    if not run.is_file():
        write_text(run, json.dumps(settings, indent=2))
    return out


def predict_sample(
    sample: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    workers: int = 2,
    scheduler: str | None = None,
    fraction: float = 0.01,
    pattern: str = "random",
    seed: int = 0,
    block: int = 1024,
    device: str = "auto",
    overview_px: int = 2048,
    min_confidence: float = 0.5,
    minerals=None,
    assay: dict[str, float] | None = None,
    targets: list[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
    on_field: Callable[[int, dict], None] | None = None,
    classifier: str | None = None,
    beam_kev: float | None = None,
    library_file: str | os.PathLike | None = None,
) -> dict:
    """Predict every field of SAMPLE (a TIMA job, dataset or manifest) into OUT, then the sample's results.

    ``workers`` Dask worker processes of a LocalCluster (0: serially in this process), or the
    cluster at ``scheduler``; ``fraction``/``pattern`` draw EDS points on dataset fields (TIMA and
    manifest fields bring their measured points); ``device`` where each worker runs the model
    (cpu, cuda, cuda:N or auto: CUDA when the worker has it), checked here unless the fields go to
    a remote ``scheduler`` whose workers may have devices this machine lacks; not a setting of the
    run, so a run may resume on another device.
    ``on_field(i, info)`` is called as each field
    finishes.  ``classifier`` the point classifier (:data:`~mingraph.spectra.point_classifier.CLASSIFIERS`;
    default: ``physics`` where ``beam_kev`` is given, else the model's encoder, with a notice for
    measured fields);
    with ``physics`` every field is calibrated on its own points, its beam energy from ``beam_kev``
    or the field's file, its classes those of the mineral library ``library_file`` (default: the
    shipped one).  Returns {"out", "sample", "fields", "predicted", "skipped", "report", "zarr"}.  Raises
    InputError naming the file, field and expectation for bad input or a mismatched resume.
    """
    from mingraph.analyse.mineralogy.minerals import class_minerals
    from mingraph.analyse.mosaic import overview_step
    from mingraph.common.engine import run_tasks
    from mingraph.learn.bundle import default_model_path, load_model, resolve_model
    from mingraph.workflows.predict import library_densities
    from mingraph.workflows.sample_results import (
        finish_sample_zarr,
        open_sample_zarr,
        write_field_to_zarr,
        write_sample_results,
    )

    say = say or (lambda line: None)
    if scheduler is not None:  # before OUT is made: a wrong address is one line, nothing written
        scheduler = check_scheduler(scheduler)
    if scheduler is None:  # a local cluster has this machine's devices: refuse a missing one now
        from mingraph.learn.distributed import pick_device

        pick_device(device)
    s = open_sample(sample)
    out = Path(out)
    bundle = load_model(model)
    from mingraph.learn.bundle import physics_record, with_classifier

    if classifier is None and physics_record(bundle) is not None:  # a GAT trained on physics shards
        classifier = "physics"
    if classifier is None:  # the physics needs the beam energy, which point files do not state
        classifier = "physics" if beam_kev is not None or states_beam(s) else "encoder"
        if beam_kev is None and s.kind in ("tima", "manifest"):
            say(
                f"{s.path}: the model's encoder classifies the spectra; give --beam-kev for the "
                "physics classifier (no training, any mineral list, unknowns)"
            )
    if classifier == "physics":  # the classes are the library's, whatever the model was trained on
        from mingraph.spectra.calibrate import Instrument

        bundle = with_classifier(bundle, "physics", Instrument(beam_kev or 20.0), library_file)
        if minerals is None and hasattr(bundle.encoder, "library"):  # the library's classes
            from mingraph.analyse.mineralogy.minerals import classifier_entries

            minerals = class_minerals(
                bundle.class_names, classifier_entries(bundle.encoder.library, bundle.encoder.groups)
            )
    else:
        with_classifier(bundle, classifier)  # refuses onnx with another encoder now
    names = bundle.class_names
    if minerals is None:
        minerals = class_minerals(names)
        dens = library_densities(names)
        if dens is not None:
            minerals.densities = np.where(np.isfinite(dens), dens, minerals.densities)
    model_path = str(Path(model).resolve()) if model is not None else None
    settings = _settings(
        s,
        model_path or "default",
        fraction=fraction,
        pattern=pattern,
        seed=seed,
        block=block,
        min_confidence=min_confidence,
        overview_px=overview_px,
        classifier=classifier,
        beam_kev=beam_kev,
        minerals=minerals_digest(minerals),
        model_digest=file_digest(default_model_path() if model is None else resolve_model(model)),
        **({"specimen": "tima-bse-window"} if s.kind == "tima" else {}),  # TIMA fields: MinBse-MaxBse
    )
    out = _prepare_out(out, settings, overwrite, s)
    step = overview_step(s.shape_px, overview_px)
    cfg = dict(
        settings,
        out=str(out.resolve()),
        model=model_path,
        minerals=minerals,
        step=step,
        pixel_size_um=s.pixel_size_um,
        device=device,
        library_file=None if library_file is None else str(library_file),
    )
    done = [f for f in s.fields if (out / "fields" / f.name / "field.json").is_file()]
    todo = [f for f in s.fields if f not in done]
    say(
        f"{s.path}: {len(s.fields)} fields ({len(done)} already predicted), mosaic {s.shape_px[0]}x{s.shape_px[1]} px"
    )
    zroot = open_sample_zarr(out, s, names, minerals.colours)  # None: sample.ome.zarr is whole
    written = set() if zroot is None else set(zroot.attrs["mingraph"]["written"])

    def finished(spec: FieldSpec, info: dict) -> None:  # here, one field at a time: fields share chunks
        if zroot is not None and spec.name not in written:
            write_field_to_zarr(zroot, out, spec, s.fields, len(names))
        if on_field is not None:
            on_field(spec.index, info)

    for f in done:  # fields a killed run predicted but did not write into the store
        if zroot is not None and f.name not in written:
            write_field_to_zarr(zroot, out, f, s.fields, len(names))
    fn = functools.partial(run_field, cfg=cfg, fields=s.fields)
    run_tasks(
        fn,
        todo,
        workers=workers,
        scheduler=scheduler,
        desc="fields",
        unit="field",
        progress=progress,
        say=say,
        on_result=lambda i, r: finished(todo[i], r),
    )
    if zroot is not None:
        finish_sample_zarr(out, zroot)
    report = write_sample_results(out, s, bundle, minerals, cfg, assay=assay, targets=targets)
    return {
        "out": out,
        "sample": s,
        "fields": len(s.fields),
        "predicted": len(todo),
        "skipped": len(done),
        "report": report,
        "zarr": out / "sample.ome.zarr",
    }
