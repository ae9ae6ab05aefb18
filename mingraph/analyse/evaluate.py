"""``mingraph evaluate``: scores per EDS fraction on fixed draws, for the GAT and its baselines.

Every method sees the same test tiles and, at each fraction, the same EDS points (draws seeded
by ``seed``, tile and fraction).  On point-spectra fields (``pattern="mask"``) the points of a
fraction are a random subset of each field's measured points, so one acquisition at 10 % gives a
curve at 1 % and 5 % too; a fraction above what a field measured is refused before any work.
Each row's ``fraction`` is the real one, the points scored over the valid pixels of the scored
fields (``fraction_asked`` what was asked).  Scores are over valid, labelled pixels; an
unclassified pixel is a miss of its true class.  The classical baselines are tuned at each
fraction (:class:`mingraph.analyse.methods.TunedMethod`); an optimum still at the edge of what
was tried, and a baseline whose map is nearest-EDS's on nearly every pixel, are said so in
``notes``.  Three kinds, each labelled as what it is: pooled over all test
pixels, support-weighted (``*_weighted``) and macro (``*_macro``); and the paper's Table 1 figures,
the mean over tiles of each tile's support-weighted precision, recall and F1 (``tile_mean_*``).
Every method that gives a confidence (:meth:`~mingraph.analyse.methods.Method.predict_with_confidence`:
the fusion model's max q, nearest EDS's point probability) is also scored by its expected
calibration error (``ece``, 15 equal bins, :mod:`mingraph.common.calibration`) over the valid,
labelled pixels it labels: a pixel it leaves unclassified is not in its ECE but counted in
``ece_unclassified`` (``ece_pixels`` the pixels that are); None for a method without one.
Outputs: ``metrics.json`` (its ``reliability``: the pooled bins per method and fraction),
``metrics.csv``, a confusion matrix per method and fraction (CSV and PNG), a reliability diagram
per fraction (``reliability-<fraction>.png``), example overlays.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mingraph.analyse.methods import (
    CandidatePick,
    GeodesicNearestEDS,
    KnnGAT,
    MeasuredClassesCeiling,
    Method,
    ModelMethod,
    NearestEDS,
    SegmentVote,
    TunedMethod,
    UNetBSE,
    compared_models,
    tile_confusions,
)
from mingraph.analyse.shared_points import (
    FittingFields,
    SharedPoints,
    check_measured_fractions,
    point_class_lut,
)
from mingraph.common.calibration import bins_ece, pool_bins, reliability_bins
from mingraph.common.errors import InputError
from mingraph.common.files import write_csv, write_text
from mingraph.common.metrics import scores, tile_mean_scores
from mingraph.common.outputs import atomic_folder, check_new_output
from mingraph.graphs.build import DEFAULT_FRACTIONS
from mingraph.learn.bundle import load_bundle, point_features, point_probability, resolve_model
from mingraph.spectra.point_classifier import unclassified_beyond

EVAL_SEED = 20_240_601
COLLAPSE_AGREEMENT = 0.98
"""A baseline that gives nearest-EDS's class on at least this share of scored pixels is said to
collapse into nearest EDS."""


def evaluate(
    model: str | os.PathLike,
    dataset: str | os.PathLike,
    out: str | os.PathLike | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    split: str = "test",
    seed: int = EVAL_SEED,
    unet: str | os.PathLike | None = None,
    knn_model: str | os.PathLike | None = None,
    compare: Sequence[str | os.PathLike] | None = None,
    classical: dict | None = None,
    tune_on: str | os.PathLike | None = None,
    max_tiles: int | None = None,
    n_overlays: int = 4,
    progress: bool = True,
    batch: int = 16,
    pattern: str = "random",
    classifier: str = "encoder",
    beam_kev: float | None = None,
    minerals: str | os.PathLike | None = None,
) -> dict:
    """Evaluate a trained model (and baselines) on one split; writes the outputs under ``out``.

    ``pattern="mask"`` scores, at each fraction, on a random subset of the measured EDS points of
    each field (point-spectra datasets); InputError when a fraction is above what a field measured.
    ``compare``: models scored on the same points, their classes matched to this model's by name.
    ``classifier="physics"`` feeds the model (one that mixes its points' classes) and every
    baseline the physics classifier's classes over the library ``minerals`` (default: the
    shipped one; its instrument from ``beam_kev`` or the first field's file); the dataset's
    labels are matched to the library by name."""
    from tqdm import tqdm

    from mingraph.acquire.dataset import open_dataset
    from mingraph.analyse.plots import save_confusion_png, save_overlay_png, save_reliability_png

    model_path = resolve_model(model)
    out = (
        Path(out)
        if out is not None
        else (Path(model) if Path(model).is_dir() else model_path.parent) / "eval"
    )
    check_new_output(out, overwrite=True)  # before any work: an output mingraph may not replace is refused
    bundle = load_bundle(model_path)
    ds = open_dataset(dataset)
    if classifier != "encoder":
        from mingraph.learn.bundle import with_classifier
        from mingraph.spectra.point_classifier import instrument_from

        first = ds.indices(split)[:1]
        params = ds.eds_params(first[0]) if first else {}
        start = instrument_from(params, beam_kev, ds.path) if classifier == "physics" else None
        bundle = with_classifier(bundle, classifier, start, minerals)
    from mingraph.analyse.classmap import match_classes

    # scores are in the model's classes; the dataset's labels are matched to them by name
    match = match_classes(bundle.class_names, ds.class_names, ds.path)
    names = bundle.class_names
    C = len(names)
    if bundle.encoder is None:
        raise InputError(model_path, "encoder", "this model file holds no spectral encoder")
    tiles = ds.indices(split)[:max_tiles] if max_tiles else ds.indices(split)
    if not tiles:
        raise InputError(ds.path, "split", f"no tiles in split {split!r}")
    if pattern == "mask":  # before any work: a fraction above what was measured is refused
        check_measured_fractions(ds, tiles, fractions)
    knn = KnnGAT(knn_model, names) if knn_model else None
    unet_method = UNetBSE(unet, names) if unet else None
    # the EDS points' classes (the encoder's) in the model's ids by name, for the classical baselines
    lut = point_class_lut(bundle.encoder, names)
    can_nearest = lut is not None and bool((lut >= 0).any())
    main = ModelMethod(bundle)
    compared = compared_models(compare or (), main.name, names)
    classical = dict(classical or {})
    # the classical baselines are tuned on the validation split unless both values are given
    tune = not {"alpha", "segment_px"} <= set(classical)
    geodesic = GeodesicNearestEDS(C, classical.get("alpha"), tune)
    segment = SegmentVote(C, classical.get("segment_px"), tune)
    pick = CandidatePick(seed)  # fitted on training fields; else not reported
    point_methods = [geodesic, pick, segment] if can_nearest else []
    nearest = (
        NearestEDS(lambda sp: point_probability(bundle, point_features(bundle, sp))) if can_nearest else None
    )
    ceiling = MeasuredClassesCeiling() if can_nearest else None  # an oracle: what the points allow
    candidates = [main, *compared, *point_methods, knn, nearest, unet_method, ceiling]
    fitting = (
        FittingFields(open_dataset(tune_on) if tune_on else ds, bundle.encoder, seed, names, pattern)
        if can_nearest
        else None
    )
    methods: list[Method] = [m for m in candidates if m is not None]
    for m in methods:
        m.fit(fitting)
    methods = [m for m in methods if m.available]
    cfg = bundle.config
    graph = {
        "pattern": pattern,
        "lift": cfg.get("lift", 1.0),
        "encoder": bundle.encoder,
        "eds_edges": cfg.get("eds_edges", "delaunay"),
        "k": cfg.get("k", 6),
        "convention": cfg.get("convention", "paper"),
    }
    tile_cms: dict[tuple[str, float], list[np.ndarray]] = {}
    same_as_nearest: dict[tuple[str, float], list[int]] = {}  # (pixels as nearest EDS, pixels scored)
    reliability: dict[tuple[str, float], list[dict]] = {}  # a method's confidence: bins per field
    unanswered: dict[tuple[str, float], int] = {}  # labelled pixels it left unclassified (not in its ECE)
    measured: dict[float, list[int]] = {}  # fraction asked -> (points, valid pixels)
    overlay_paths = []
    with atomic_folder(out, overwrite=True, kind="evaluate") as tmp:
        # tiles are streamed in batches: memory does not grow with the split
        for f in fractions:
            bar = tqdm(total=len(tiles), desc=f"evaluate {f:g}", unit="tile", disable=not progress)
            for k in range(0, len(tiles), batch):
                chunk = tiles[k : k + batch]
                points = [
                    SharedPoints.draw(
                        ds.field(t), t, f, match, bundle.encoder, lut if can_nearest else None, seed, **graph
                    )
                    for t in chunk
                ]
                tally = measured.setdefault(f, [0, 0])
                tally[0] += sum(p.graph.n_eds for p in points)
                tally[1] += sum(int(p.field.valid.sum()) for p in points)
                results = {}
                for m in methods:  # the physics' unknown: unclassified
                    answered = m.predict_with_confidence(points)
                    results[m.name] = [unclassified_beyond(a, C) for a, _ in answered]
                    for p, pred, (_, conf) in zip(points, results[m.name], answered):
                        if conf is None:
                            continue
                        labelled = p.truth >= 0  # only labelled pixels the method labels: unknown left out
                        bins = reliability_bins(conf, pred == p.truth, mask=labelled & (pred >= 0))
                        reliability.setdefault((m.name, f), []).append(bins)
                        left = unanswered.get((m.name, f), 0)
                        unanswered[(m.name, f)] = left + int((labelled & (pred < 0)).sum())
                    tile_cms.setdefault((m.name, f), []).extend(tile_confusions(points, results[m.name], C))
                    if can_nearest:
                        agree = same_as_nearest.setdefault((m.name, f), [0, 0])
                        for p, pred in zip(points, results[m.name]):
                            scored = p.truth >= 0
                            agree[0] += int((pred[scored] == p.nearest[scored]).sum())
                            agree[1] += int(scored.sum())
                for j, p in enumerate(points):
                    if k + j < n_overlays:
                        smp = p.field
                        panels = {"truth": p.truth} | {
                            m: np.where(smp.valid, maps[j], -1) for m, maps in results.items()
                        }
                        overlay_paths.append(
                            save_overlay_png(
                                tmp / "overlays" / f"{smp.name}-{f:g}.png",
                                smp.bse,
                                panels,
                                names,
                                p.graph.eds_rc,
                                title=f"{smp.name}, EDS {100 * f:g} %",
                            )
                        )
                bar.update(len(chunk))
            bar.close()
        cms = {key: np.sum(per_tile, axis=0) for key, per_tile in tile_cms.items()}
        if cms[(main.name, fractions[0])].sum() == 0:
            raise InputError(
                ds.path, "labels", f"no labelled valid pixel in split {split!r}: nothing to score against"
            )
        tuned_methods = {t.name: t for t in (geodesic, segment) if t in methods}
        notes: list[str] = []
        rows = []
        calibration: dict[str, dict[float, dict]] = {}  # method -> fraction -> pooled reliability bins
        for (m, f), cm in cms.items():
            s = scores(cm)
            n_points, n_valid = measured[f]
            agree = same_as_nearest.get((m, f))
            tuned = tuned_methods.get(m)
            rel = pool_bins(reliability[(m, f)]) if (m, f) in reliability else None
            ece = bins_ece(rel) if rel is not None else float("nan")
            extra = {  # the same columns in every row (metrics.csv); None where they do not apply
                "parameter": tuned.parameter if tuned else None,
                "parameter_value": tuned.value(f) if tuned else None,
                "agreement_with_nearest_eds": agree[0] / max(agree[1], 1) if agree else None,
                "ece": ece if np.isfinite(ece) else None,
                "ece_pixels": int(rel["count"].sum()) if rel is not None else None,
                "ece_unclassified": unanswered[(m, f)] if rel is not None else None,
            }
            if rel is not None:
                calibration.setdefault(m, {})[f] = rel
            if agree and m in {t.name for t in point_methods}:
                if extra["agreement_with_nearest_eds"] >= COLLAPSE_AGREEMENT:
                    notes.append(
                        f"{m} at {100 * f:g} %: collapses into nearest EDS (nearest EDS's class on "
                        f"{100 * extra['agreement_with_nearest_eds']:.1f} % of scored pixels)"
                    )
            rows.append(
                {
                    "method": m,
                    "fraction": n_points / max(n_valid, 1),
                    "fraction_asked": f,
                    "points": n_points,
                    **extra,
                    **{
                        k: s[k]
                        for k in (
                            "precision_weighted",
                            "recall_weighted",
                            "f1_weighted",
                            "precision_macro",
                            "recall_macro",
                            "f1_macro",
                            "accuracy",
                            "support",
                        )
                    },
                    **tile_mean_scores(tile_cms[(m, f)]),
                }
            )
            tag = f"{m.split(' ')[0].lower()}{'-knn' if 'kNN' in m else ''}-{f:g}"
            write_csv(
                tmp / f"confusion-{tag}.csv",
                [["", *names, "unclassified"]] + [[names[i]] + cm[i].tolist() for i in range(C)],
            )
            if m == main.name:
                save_confusion_png(
                    tmp / f"confusion-{tag}.png",
                    cm[:, :C],
                    names,
                    title=f"{m}, EDS {100 * f:g} % (recall per true class)",
                )
        reliability_paths = [
            save_reliability_png(
                tmp / f"reliability-{f:g}.png",
                {m: per[f] for m, per in calibration.items() if f in per},
                title=f"reliability, EDS {100 * f:g} % (labelled pixels each method labels)",
            )
            for f in fractions
            if any(f in per for per in calibration.values())
        ]
        if can_nearest and tune:
            tuned = {t.parameter: t.reports for t in (geodesic, segment)}
            classical.setdefault("tuning", fitting.tuning(tuned))
        notes = tuning_notes((geodesic, segment)) + notes
        result = {
            "model": str(model_path),
            "dataset": str(ds.path),
            "split": split,
            "tiles": len(tiles),
            "seed": seed,
            "pattern": pattern,
            "fractions": list(fractions),
            "classical": {
                "alpha": {f: geodesic.value(f) for f in fractions},
                "segment_px": {f: segment.value(f) for f in fractions},
                "tuning": classical.get("tuning"),
            },
            "candidate_pick": "fitted on the training split"
            if pick.available
            else "not run: no labelled training fields (give --tune-on DATASET)",
            "results": rows,
            "reliability": {
                m: {f"{f:g}": bins_json(b) for f, b in per.items()} for m, per in calibration.items()
            },
            "classes_left_out": match.labels_only,
            "model_classes_not_in_labels": match.model_only,
            "compared_classes": {
                m.name: {
                    "not_in_model_unclassified": m.classes.labels_only,
                    "model_classes_never_predicted": m.classes.model_only,
                }
                for m in compared
                if not m.classes.identical
            },
            "notes": notes,
        }
        write_csv(tmp / "metrics.csv", [list(rows[0])] + [[r[k] for k in rows[0]] for r in rows])
        write_text(tmp / "metrics.json", json.dumps(result, indent=2))
    result["overlays"] = [str(out / Path(p).relative_to(tmp)) for p in overlay_paths]
    result["reliability_diagrams"] = [str(out / Path(p).relative_to(tmp)) for p in reliability_paths]
    result["out"] = str(out)
    return result


def bins_json(bins: dict) -> dict:
    """Pooled reliability bins as JSON: lists, None for an empty bin's means.

    Examples
    --------
    >>> bins_json(reliability_bins(np.array([0.9]), np.array([True]), n_bins=2))
    {'edges': [0.0, 0.5, 1.0], 'confidence': [None, 0.9], 'accuracy': [None, 1.0], 'count': [0, 1]}
    """
    clean = lambda a: [None if not np.isfinite(v) else float(v) for v in a]  # noqa: E731
    return {
        "edges": [float(e) for e in bins["edges"]],
        "confidence": clean(bins["confidence"]),
        "accuracy": clean(bins["accuracy"]),
        "count": [int(c) for c in bins["count"]],
    }


def tuning_notes(tuned: Sequence[TunedMethod]) -> list[str]:
    """One line per tuning whose best value is still at an edge of the values tried.

    Parameters
    ----------
    tuned : sequence of TunedMethod
        Tuned baselines; their ``reports`` (fraction -> :func:`~mingraph.analyse.methods.tune_parameter`).

    Returns
    -------
    list of str
        E.g. ``"BSE-segment vote at 1 %: the best segment_px (4) is the lower bound of segment_px"``.

    Examples
    --------
    >>> g = GeodesicNearestEDS(3)
    >>> g.reports[0.01] = {"best": 0.0, "edge": "lower", "at_bound": True, "scores": {0.0: 0.7, 3.0: 0.6}}
    >>> tuning_notes([g])
    ['geodesic nearest EDS at 1 %: the best alpha (0) is the lower bound of alpha']
    """
    out = []
    for t in tuned:
        for f, r in sorted(t.reports.items()):
            if r["edge"] is None:
                continue
            where = (
                f"the lower bound of {t.parameter}"
                if r["at_bound"]
                else f"still the {'largest' if r['edge'] == 'upper' else 'smallest'} value tried "
                f"({min(r['scores']):g}–{max(r['scores']):g}, extended {len(r.get('extended', []))} times)"
            )
            out.append(f"{t.name} at {100 * f:g} %: the best {t.parameter} ({r['best']:g}) is {where}")
    return out
