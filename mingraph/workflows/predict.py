"""``mingraph predict``: one measured field of any size -> phase map, confidence, mineralogy, report.

Fields larger than one block are cut into overlapping blocks; each block's graph holds the pixels
and EDS points of the block plus a margin four EDS spacings wide, and only the block's centre is
kept.  The GAT's 3 layers reach 3 pixels along the grid and 3 hops through EDS nodes, so a kept
pixel's neighbourhood matches the whole-field graph's except where the block's Delaunay hull or
a Voronoi cell cut by the window differ; tests/test_default_model.py checks that this moves the
F1 along the seams by less than one point.  Memory is bounded by the block size, whatever the
field size.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mingraph.acquire.fields import Field
from mingraph.common.errors import InputError
from mingraph.common.outputs import atomic_folder, check_new_output
from mingraph.learn.bundle import Bundle, point_classes, point_features, point_probability
from mingraph.learn.tiling import block_probabilities
from mingraph.spectra.mineral_groups import name_by_group
from mingraph.spectra.point_classifier import unclassified_beyond

DEFAULT_BLOCK = 1024


@dataclass
class Prediction:
    """Per-pixel classes (-1 = not valid) and the softmax probability of the chosen class."""

    labels: np.ndarray  # (H, W) int16
    confidence: np.ndarray  # (H, W) float32, 0 where not valid
    eds_rc: np.ndarray
    seconds: float
    eds_classes: np.ndarray | None = None  # (N,) the encoder's class of each EDS point, if it has one
    eds_probability: np.ndarray | None = None  # (N,) the point classifier's probability of that class
    group_weights: np.ndarray | None = None  # (G, C) what the pixels named by each mineral group hold


def check_points(eds_rc: np.ndarray, shape: tuple[int, int], source: str) -> np.ndarray:
    """EDS positions as int32 (n, 2), refusing points outside the image or non-integer positions."""
    rc = np.asarray(eds_rc)
    if rc.size == 0:
        return np.zeros((0, 2), np.int32)
    if rc.ndim != 2 or rc.shape[1] != 2:
        raise InputError(source, "EDS points", f"expected (n, 2) row/column positions, got shape {rc.shape}")
    if not np.all(np.isfinite(rc)) or not np.array_equal(rc, np.round(rc)):
        raise InputError(source, "EDS points", "positions must be whole pixel indices")
    rc = rc.astype(np.int64)
    bad = (rc[:, 0] < 0) | (rc[:, 0] >= shape[0]) | (rc[:, 1] < 0) | (rc[:, 1] >= shape[1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            source,
            "EDS points",
            f"{int(bad.sum())} point(s) outside the {shape[0]}x{shape[1]} image, e.g. #{i} at {tuple(rc[i])}",
        )
    return rc.astype(np.int32)


@torch.no_grad()
def predict_field(
    bundle: Bundle,
    bse: np.ndarray,
    valid: np.ndarray,
    eds_rc: np.ndarray,
    embeddings: np.ndarray,
    block: int = DEFAULT_BLOCK,
    progress: bool = True,
) -> Prediction:
    """Classify every pixel of a field from its BSE image and its EDS points' features
    (:func:`mingraph.learn.bundle.point_features`), block by block with overlapping margins
    (:func:`mingraph.learn.tiling.block_probabilities`)."""
    t0 = time.perf_counter()
    h, w = bse.shape
    model, cfg = bundle.model, bundle.config
    n_cls = len(bundle.class_names)
    extra = int(bool(getattr(bundle.encoder, "unknown_column", False)))  # the physics' unknown column
    if model.mixes_point_classes:  # any classes: the model only mixes them
        if embeddings.ndim != 2 or embeddings.shape != (eds_rc.shape[0], n_cls + extra):
            raise InputError(
                "model",
                "EDS features",
                f"expected {n_cls + extra} class probabilities per EDS point, got {embeddings.shape[1:]}",
            )
    elif embeddings.shape != (eds_rc.shape[0], model.eds_dim):
        raise InputError(
            "model",
            "EDS features",
            f"the model expects {model.eds_dim} values per EDS point, the encoder gives {embeddings.shape[1:]}",
        )
    if cfg.get("convention", "paper") == "authors":  # their builder takes a mask: one point a pixel
        from mingraph.graphs.conventions import authors_order

        try:
            authors_order(eds_rc)
        except ValueError as e:
            raise InputError(
                "EDS points", "rc", f"{e} (this model was trained on the authors' graphs)"
            ) from None
    labels = np.full((h, w), -1, np.int16)
    conf = np.zeros((h, w), np.float32)
    groups = getattr(bundle.encoder, "groups", [])  # the physics library's groups: classes after its minerals
    n_min = n_cls - len(groups)
    weights = np.zeros((len(groups), n_min))
    settings = dict(cfg, unknown_column=bool(extra))  # the physics' unknown never enters a palette
    for sl, p in block_probabilities(model, settings, bse, valid, eds_rc, embeddings, block, progress):
        if p is not None:
            cls, c, wg = name_by_group(p.cpu().numpy(), groups, n_min)
            labels[sl], conf[sl] = cls, c
            weights += wg
    labels = unclassified_beyond(labels, n_cls)  # unknown: no mineral of the list fits
    labels[~valid] = -1
    conf[~valid] = 0.0
    return Prediction(
        labels,
        conf,
        eds_rc,
        time.perf_counter() - t0,
        point_classes(bundle, embeddings),
        point_probability(bundle, embeddings),
        weights,
    )


def measure_points(
    sample: Field,
    bundle: Bundle,
    fraction: float = 0.01,
    pattern: str = "random",
    seed: int = 0,
    chunk: int = 16384,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw EDS points on a sample, read and embed their spectra: (positions, embeddings)."""
    from mingraph.acquire.sampling import sample_points

    if bundle.encoder is None:
        raise InputError("model", "encoder", "this model file holds no spectral encoder")
    rc = sample_points(sample.valid, fraction, pattern, np.random.default_rng(seed), sample.eds_mask)
    if rc.shape[0] == 0 and pattern == "mask":
        raise InputError(sample.name, "eds_mask", "the sampling mask selects no valid pixel")
    if hasattr(bundle.encoder, "calibrate"):  # the physics: the instrument from the points' sum first
        total = np.zeros(3000, np.float64)
        for i in range(0, rc.shape[0], chunk):
            total += np.asarray(sample.eds.spectra(rc[i : i + chunk, 0], rc[i : i + chunk, 1])).sum(
                0, dtype=np.float64
            )
        bundle.encoder.calibrate(total)
    # read and embed in chunks: a 10 000² field at 1 % has a million spectra (12 GB as float32)
    emb = [
        point_features(bundle, sample.eds.spectra(rc[i : i + chunk, 0], rc[i : i + chunk, 1]))
        for i in range(0, rc.shape[0], chunk)
    ]
    if emb:
        return rc, np.concatenate(emb)
    if hasattr(bundle.encoder, "class_probabilities"):
        return rc, bundle.encoder.class_probabilities(np.zeros((0, 3000), np.float32))
    return rc, np.zeros((0, bundle.model.eds_dim), np.float32)


def read_points(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Measured point spectra from an .npz: ``rc`` (n, 2) int row, col and ``spectra`` (n, channels).

    Returns (rc int64 (n, 2), spectra float32 (n, 3000)).  See :func:`mingraph.acquire.formats.read_points`.
    """
    from mingraph.acquire.formats import read_points as read

    return read(path)


def measured_field(
    bse: str | os.PathLike,
    points: str | os.PathLike,
    valid: str | os.PathLike | None,
    pixel_size_um: float,
    bundle: Bundle,
    labels: str | os.PathLike | None = None,
    classes: str | os.PathLike | None = None,
) -> tuple[Field, np.ndarray, np.ndarray]:
    """A measured field from files: (sample, EDS positions, embeddings of the measured spectra).

    ``labels`` (an id image) named by ``classes`` (default: the model's class list) are kept
    to score the prediction against (see :func:`labels_in_model_classes`)."""
    from mingraph.acquire.formats.images import read_bse, read_class_names, read_labels, read_mask
    from mingraph.acquire.formats.points import spectra_at_points

    img = read_bse(bse)
    vmask = read_mask(valid, img.shape, "valid") if valid is not None else np.ones(img.shape, bool)
    lab = read_labels(labels, img.shape) if labels is not None else None
    names = read_class_names(classes) if classes is not None else bundle.class_names
    if lab is not None and lab.size and lab.max() >= len(names):
        raise InputError(
            labels,
            "labels",
            f"phase id {int(lab.max())} has no name ({len(names)} names{'' if classes else ': give --classes'})",
        )
    rc, spectra = read_points(points)
    rc = check_points(rc, img.shape, str(points))
    if bundle.encoder is None:
        raise InputError("model", "encoder", "this model file holds no spectral encoder")
    eds = spectra_at_points(rc, spectra, img.shape, str(points))  # kept for the outputs' points.npz
    sample = Field(img, vmask, lab, names, pixel_size_um, eds, name=Path(bse).stem)
    return sample, rc, point_features(bundle, spectra)


def labels_in_model_classes(sample: Field, bundle: Bundle) -> tuple[Field, list[str]]:
    """The sample with its labels in the model's class ids, matched by name, and the lines that
    tell the user which classes did not match (labels of unmatched classes become unknown, -1)."""
    import dataclasses

    from mingraph.analyse.classmap import match_classes

    if sample.labels is None or list(sample.class_names) == list(bundle.class_names):
        return sample, []
    match = match_classes(bundle.class_names, list(sample.class_names), sample.name)
    mapped = match.to_model(sample.labels).astype(np.int32)
    out = dataclasses.replace(sample, labels=mapped, class_names=list(bundle.class_names))
    out.meta = dict(sample.meta, classes_left_out=match.labels_only)
    return out, match.lines()


def write_outputs(
    out: Path,
    sample: Field,
    pred: Prediction,
    bundle: Bundle,
    densities: np.ndarray | None,
    summary: dict,
    min_confidence: float = 0.5,
    *,
    minerals=None,
    assay: dict[str, float] | None = None,
    targets: list[str] | None = None,
) -> dict:
    """Phase map TIFF + legend, overlay and confidence PNGs, mineralogy CSV/PNGs, summary and report.

    ``minerals``: a :class:`~mingraph.analyse.mineralogy.minerals.ClassMinerals` (names, densities,
    formulas, colours); default: the shipped mineral list matched to the model's classes, with
    ``densities`` (g/cm³, NaN = unknown) taking precedence where given (ignored with ``minerals``). ``assay``: element -> wt %
    of a chemical assay to compare with; ``targets``: phase names whose liberation the report details.
    """
    import tifffile

    from mingraph.analyse.mineralogy import write_mineralogy
    from mingraph.analyse.mineralogy.minerals import class_minerals, classifier_entries
    from mingraph.analyse.mineralogy.phasemap import write_legend, write_phase_map
    from mingraph.analyse.plots import save_confidence_png, save_phase_overlay_png
    from mingraph.analyse.report import write_report
    from mingraph.analyse.view_files import write_view_files
    from mingraph.common.metrics import confusion, scores

    names = bundle.class_names
    cm = minerals if minerals is not None else class_minerals(names)
    groups = getattr(bundle.encoder, "groups", [])
    if groups and pred.group_weights is not None and pred.group_weights.any():  # what group pixels hold
        lib = bundle.encoder.library
        entries = classifier_entries(lib, groups, pred.group_weights)
        cm = class_minerals(names, entries, source=cm.source)
    if densities is not None and minerals is None:
        d = np.asarray(densities, dtype=np.float64)
        cm.densities = np.where(np.isfinite(d), d, cm.densities)
    shown = list(cm.names)
    target_ids = None
    if targets:
        low = {n.lower(): i for i, n in enumerate(shown)} | {n.lower(): i for i, n in enumerate(names)}
        missing = [t for t in targets if t.lower() not in low]
        if missing:
            raise InputError("--target", "target", f"{missing[0]!r} is not a class of the model")
        target_ids = [low[t.lower()] for t in targets]
    write_phase_map(out / "phase_map.tif", pred.labels, cm.colours, sample.pixel_size_um)
    tifffile.imwrite(out / "confidence.tif", pred.confidence, compression="zlib")
    write_legend(out, shown, cm.colours, sample.pixel_size_um, cm.densities, cm.formulas)
    images = {
        "phase_map": out / "phase_map.tif",
        "overlay": save_phase_overlay_png(
            out / "overlay.png", sample.bse, pred.labels, shown, pred.eds_rc, colours=cm.colours
        ),
        "confidence": save_confidence_png(out / "confidence.png", pred.confidence, sample.valid),
    }
    mineralogy = write_mineralogy(
        out / "mineralogy",
        pred.labels,
        sample.valid,
        shown,
        None,
        sample.pixel_size_um,
        confidence=pred.confidence,
        min_confidence=min_confidence,
        minerals=cm,
        assay=assay,
        targets=target_ids,
    )
    metrics = None
    if (
        sample.labels is not None
        and (sample.labels[sample.valid] >= 0).any()
        and list(sample.class_names) == list(names)
    ):
        s = scores(
            confusion(np.where(sample.valid, sample.labels, -1), pred.labels, len(names), unclassified=True)
        )
        metrics = {
            k: s[k]
            for k in (
                "f1_weighted",
                "precision_weighted",
                "recall_weighted",
                "f1_macro",
                "accuracy",
                "support",
            )
        }
        if pred.eds_classes is not None and len(pred.eds_rc):  # the baseline on the same points
            from mingraph_kernels.nearest import nearest_eds_labels

            near = nearest_eds_labels(*sample.shape, pred.eds_rc, pred.eds_classes)
            ns = scores(
                confusion(np.where(sample.valid, sample.labels, -1), near, len(names), unclassified=True)
            )
            metrics |= {"nearest_eds_f1_weighted": ns["f1_weighted"], "nearest_eds_f1_macro": ns["f1_macro"]}
    summary = dict(
        summary,
        eds_points=int(pred.eds_rc.shape[0]),
        runtime_s=round(pred.seconds, 2),
        field_px=list(sample.shape),
        pixel_size_um=sample.pixel_size_um,
    )
    (out / "summary.json").write_text(
        json.dumps({"summary": summary, "metrics": metrics}, indent=2, default=str)
    )
    if hasattr(bundle.encoder, "record"):  # the physics: its list and the fitted calibration
        (out / "point_classifier.json").write_text(json.dumps(bundle.encoder.record(), indent=1) + "\n")
    write_view_files(out, sample, pred, shown, bundle.encoder)  # what `mingraph view` shows
    report = write_report(out, images, mineralogy, summary, metrics)
    return {"report": report, "metrics": metrics, "summary": summary}


def run_predict(
    out: str | os.PathLike,
    sample: Field,
    bundle: Bundle,
    eds_rc: np.ndarray,
    embeddings: np.ndarray,
    summary: dict,
    overwrite: bool = False,
    block: int = DEFAULT_BLOCK,
    densities: np.ndarray | None = None,
    progress: bool = True,
    *,
    min_confidence: float = 0.5,
    minerals=None,
    assay: dict[str, float] | None = None,
    targets: list[str] | None = None,
) -> dict:
    """Predict a field and write every output into ``out`` atomically (a temporary folder renamed).

    ``min_confidence``, ``minerals``, ``assay`` and ``targets`` as in :func:`write_outputs`.
    """
    out = check_new_output(out, overwrite)
    eds_rc = check_points(eds_rc, sample.shape, summary.get("input", "input"))
    pred = predict_field(bundle, sample.bse, sample.valid, eds_rc, embeddings, block=block, progress=progress)
    with atomic_folder(out, overwrite, kind="predict") as tmp:
        res = write_outputs(
            tmp,
            sample,
            pred,
            bundle,
            densities,
            summary,
            min_confidence,
            minerals=minerals,
            assay=assay,
            targets=targets,
        )
    res["report"] = out / Path(res["report"]).name
    res["out"] = out
    return res


def library_densities(class_names: list[str]) -> np.ndarray | None:
    """Densities (g/cm³) when the classes are the simulator's mineral library, else None."""
    from mingraph.acquire.simulate.minerals import MINERALS

    if [m.name for m in MINERALS] != list(class_names):
        return None
    return np.array([m.density for m in MINERALS], dtype=np.float64)


def point_mineralogy(bundle: Bundle, options: dict) -> dict:
    """The mineralogy keyword arguments of :func:`run_predict` from the command's options; with the
    physics classifier, the classes' densities, colours and formulas come from its library (the
    ``--minerals`` list it classified with)."""
    from mingraph.analyse.mineralogy.run_options import mineralogy_kwargs

    library = getattr(bundle.encoder, "library", None)
    if library is None:
        return mineralogy_kwargs(bundle.class_names, **options)
    from mingraph.analyse.mineralogy.minerals import class_minerals, classifier_entries

    kw = mineralogy_kwargs(bundle.class_names, **{**options, "minerals": None})
    source = str(options.get("minerals") or "shipped library")
    entries = classifier_entries(library, getattr(bundle.encoder, "groups", []))
    return kw | {"minerals": class_minerals(bundle.class_names, entries, source=source)}
