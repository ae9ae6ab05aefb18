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

from mingraph.analyse.evaluate_classical import fit_pick, point_class_lut, point_classes, tune_classical
from mingraph.common.errors import InputError
from mingraph.common.files import write_csv, write_text
from mingraph.common.metrics import confusion, scores, tile_mean_scores
from mingraph.common.outputs import atomic_folder, check_new_output
from mingraph.graphs.build import DEFAULT_FRACTIONS, field_graph
from mingraph.learn.bundle import Bundle, default_model_path, load_bundle, resolve_model
from mingraph.spectra.point_classifier import unclassified_beyond

EVAL_SEED = 20_240_601


def model_label(bundle: Bundle) -> str:
    """The name a model's scores carry (its class's ``label``: "fusion model", "GAT (paper)")."""
    return bundle.model.label


def model_maps(bundle: Bundle, fields: list, graphs: list, spectra: list) -> list[np.ndarray]:
    """Class maps of a model on fields whose EDS points (``graphs[i].eds_rc``) and measured
    ``spectra`` are given: every method is scored on the same points."""
    return bundle.model.field_maps(bundle.encoder, bundle.config, fields, graphs, spectra)


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
    from mingraph.learn.baselines import load_unet, nearest_eds_labels, predict_unet
    from mingraph.learn.candidate_pick import candidate_pick
    from mingraph.learn.classical import geodesic_nearest_eds, segment_vote

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
    knn = load_bundle(resolve_model(knn_model)) if knn_model else None
    if knn is not None and knn.class_names != names:
        raise InputError(knn_model, "class_names", "the kNN model's classes differ from the dataset's")
    unet_net = None
    if unet:
        unet_net, unet_names = load_unet(unet)
        if unet_names != names:
            raise InputError(unet, "class_names", "the UNet's classes differ from the dataset's")
    # the EDS points' classes (the encoder's) in the model's ids by name, for the classical baselines
    lut = point_class_lut(bundle.encoder, names)
    can_nearest = lut is not None and bool((lut >= 0).any())
    main = model_label(bundle)
    compare_bundles = {}
    for path in compare or ():
        other_path = resolve_model(path)
        other = load_bundle(other_path)
        if other.class_names != names:
            raise InputError(path, "class_names", "this model's classes differ from the dataset's")
        label = model_label(other)
        if other_path.resolve() == default_model_path().resolve():
            label = f"{label}, shipped ({other_path.name})"
        elif label == main or label in compare_bundles:  # two models of one kind: name them by file
            label = f"{label} ({Path(path).name})"
        compare_bundles[label] = other
    classical = dict(classical or {})
    if can_nearest and not {"alpha", "segment_px"} <= set(classical):
        tune_ds = open_dataset(tune_on) if tune_on else ds
        classical = tune_classical(tune_ds, bundle.encoder, seed, names, pattern=pattern) | classical
    alpha, segment_px = float(classical.get("alpha", 30.0)), float(classical.get("segment_px", 64.0))
    pick_model = (
        fit_pick(open_dataset(tune_on) if tune_on else ds, bundle.encoder, seed, names, pattern=pattern)
        if can_nearest
        else None
    )
    cfg = bundle.config
    tile_cms: dict[tuple[str, float], list[np.ndarray]] = {}
    unet_cache: dict[int, np.ndarray] = {}
    overlay_paths = []
    with atomic_folder(out, overwrite=True, kind="evaluate") as tmp:
        # tiles are streamed in batches: memory does not grow with the split
        for f in fractions:
            bar = tqdm(total=len(tiles), desc=f"evaluate {f:g}", unit="tile", disable=not progress)
            for k in range(0, len(tiles), batch):
                chunk = tiles[k : k + batch]
                samples = [ds.field(t) for t in chunk]
                truth = [
                    np.where(s.valid, match.to_model(s.labels), -1)
                    if s.labels is not None
                    else np.full(s.shape, -1)
                    for s in samples
                ]
                graphs, results = [], {}
                nearest, chunk_spectra = [], []
                for t, smp in zip(chunk, samples):
                    g, sp = field_graph(
                        smp,
                        t,
                        f,
                        0,
                        pattern,
                        seed,
                        cfg.get("lift", 1.0),
                        bundle.encoder,
                        cfg.get("eds_edges", "delaunay"),
                        cfg.get("k", 6),
                        convention=cfg.get("convention", "paper"),
                    )
                    graphs.append(g)
                    chunk_spectra.append(sp)
                    if can_nearest:  # no EDS point: every pixel unclassified, scored as wrong
                        nearest.append(
                            nearest_eds_labels(g, point_classes(bundle.encoder, sp, lut))
                            if g.n_eds
                            else np.full(smp.shape, -1)
                        )
                spectra = chunk_spectra
                results[main] = model_maps(bundle, samples, graphs, spectra)
                for label, other in compare_bundles.items():
                    results[label] = model_maps(other, samples, graphs, spectra)
                if can_nearest:
                    cls = [point_classes(bundle.encoder, sp, lut) for sp in spectra]
                    results[f"geodesic nearest EDS (alpha {alpha:g})"] = [
                        geodesic_nearest_eds(s.bse, s.valid, g.eds_rc, c, alpha)
                        for s, g, c in zip(samples, graphs, cls)
                    ]
                    if pick_model is not None:  # fitted on training fields; else not reported
                        results["learnt candidate pick"] = [
                            candidate_pick(pick_model, s.bse, s.valid, g.eds_rc, c)
                            for s, g, c in zip(samples, graphs, cls)
                        ]
                    results[f"BSE-segment vote ({segment_px:g} px)"] = [
                        segment_vote(s.bse, s.valid, g.eds_rc, c, nm, segment_px)
                        for s, g, c, nm in zip(samples, graphs, cls, nearest)
                    ]
                if knn is not None:
                    kcfg = knn.config
                    kg = [
                        field_graph(
                            smp,
                            t,
                            f,
                            0,
                            pattern,
                            seed,
                            kcfg.get("lift", 1.0),
                            knn.encoder,
                            "knn",
                            kcfg.get("k", 6),
                        )[0]
                        for t, smp in zip(chunk, samples)
                    ]
                    results["GAT (kNN graph)"] = [p[0] for p in knn.model.graph_maps(kg, knn.config)]
                if can_nearest:
                    results["nearest EDS"] = nearest
                if unet_net is not None:
                    results["UNet (BSE only)"] = [
                        unet_cache.setdefault(t, predict_unet(unet_net, smp.bse).astype(np.int16))
                        for t, smp in zip(chunk, samples)
                    ]
                for m, maps in results.items():
                    maps[:] = [unclassified_beyond(p, C) for p in maps]  # the physics' unknown
                    per_tile = tile_cms.setdefault((m, f), [])
                    for tr, p in zip(truth, maps):
                        # an unclassified pixel (-1) is a miss of its true class, no false positive
                        per_tile.append(confusion(tr, p, C, unclassified=True))
                for j, (t, smp) in enumerate(zip(chunk, samples)):
                    if k + j < n_overlays:
                        panels = {"truth": truth[j]} | {
                            m: np.where(smp.valid, maps[j], -1) for m, maps in results.items()
                        }
                        overlay_paths.append(
                            save_overlay_png(
                                tmp / "overlays" / f"{smp.name}-{f:g}.png",
                                smp.bse,
                                panels,
                                names,
                                graphs[j].eds_rc,
                                title=f"{smp.name}, EDS {100 * f:g} %",
                            )
                        )
                bar.update(len(chunk))
            bar.close()
        cms = {key: np.sum(per_tile, axis=0) for key, per_tile in tile_cms.items()}
        if cms[(main, fractions[0])].sum() == 0:
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
            if m == main:
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
            "classical": {"alpha": alpha, "segment_px": segment_px, "tuning": classical.get("tuning")},
            "candidate_pick": "fitted on the training split"
            if pick_model is not None
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
