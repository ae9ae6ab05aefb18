"""``mingraph evaluate``: scores per EDS fraction on fixed draws, for the GAT and its baselines.

Every method sees the same test tiles and, at each fraction, the same EDS points (draws seeded
by ``seed``, tile and fraction).  Scores are over valid, labelled pixels; an unclassified pixel
is a miss of its true class.  Three kinds, each labelled as what it is: pooled over all test
pixels, support-weighted (``*_weighted``) and macro (``*_macro``); and the paper's Table 1 figures,
the mean over tiles of each tile's support-weighted precision, recall and F1 (``tile_mean_*``).  Outputs: ``metrics.json``,
``metrics.csv``, a confusion matrix per method and fraction (CSV and PNG), example overlays.
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
    Method,
    ModelMethod,
    NearestEDS,
    SegmentVote,
    UNetBSE,
    compared_models,
    tile_confusions,
)
from mingraph.analyse.shared_points import FittingFields, SharedPoints, point_class_lut
from mingraph.common.errors import InputError
from mingraph.common.files import write_csv, write_text
from mingraph.common.metrics import scores, tile_mean_scores
from mingraph.common.outputs import atomic_folder, check_new_output
from mingraph.graphs.build import DEFAULT_FRACTIONS
from mingraph.learn.bundle import load_bundle, resolve_model
from mingraph.spectra.point_classifier import unclassified_beyond

EVAL_SEED = 20_240_601


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

    ``pattern="mask"`` scores on the measured EDS points of each field (point-spectra datasets).
    ``classifier="physics"`` feeds the model (one that mixes its points' classes) and every
    baseline the physics classifier's classes over the library ``minerals`` (default: the
    shipped one; its instrument from ``beam_kev`` or the first field's file); the dataset's
    labels are matched to the library by name."""
    from tqdm import tqdm

    from mingraph.acquire.dataset import open_dataset
    from mingraph.analyse.plots import save_confusion_png, save_overlay_png

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
    knn = KnnGAT(knn_model, names, pattern, seed) if knn_model else None
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
    candidates = [main, *compared, *point_methods, knn, NearestEDS() if can_nearest else None, unet_method]
    fitting = (
        FittingFields(open_dataset(tune_on) if tune_on else ds, bundle.encoder, seed, names, pattern)
        if can_nearest
        else None
    )
    methods: list[Method] = [m for m in candidates if m is not None]
    for m in methods:
        m.fit(fitting)
    methods = [m for m in methods if m.available]
    if can_nearest and tune:
        tuned = {"alpha": geodesic.table, "segment_px": segment.table}
        classical.setdefault("tuning", fitting.tuning(tuned))
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
                results = {}
                for m in methods:  # the physics' unknown: unclassified
                    results[m.name] = [unclassified_beyond(p, C) for p in m.predict(points)]
                    tile_cms.setdefault((m.name, f), []).extend(tile_confusions(points, results[m.name], C))
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
        rows = []
        for (m, f), cm in cms.items():
            s = scores(cm)
            rows.append(
                {
                    "method": m,
                    "fraction": f,
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
        result = {
            "model": str(model_path),
            "dataset": str(ds.path),
            "split": split,
            "tiles": len(tiles),
            "seed": seed,
            "fractions": list(fractions),
            "classical": {
                "alpha": geodesic.value,
                "segment_px": segment.value,
                "tuning": classical.get("tuning"),
            },
            "candidate_pick": "fitted on the training split"
            if pick.available
            else "not run: no labelled training fields (give --tune-on DATASET)",
            "results": rows,
            "classes_left_out": match.labels_only,
            "model_classes_not_in_labels": match.model_only,
        }
        write_csv(tmp / "metrics.csv", [list(rows[0])] + [[r[k] for k in rows[0]] for r in rows])
        write_text(tmp / "metrics.json", json.dumps(result, indent=2))
    result["overlays"] = [str(out / Path(p).relative_to(tmp)) for p in overlay_paths]
    result["out"] = str(out)
    return result
