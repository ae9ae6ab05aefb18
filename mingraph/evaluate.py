"""``mingraph evaluate``: scores per EDS fraction on fixed draws, for the GAT and its baselines.

Every method sees the same test tiles and, at each fraction, the same EDS points (draws seeded
by ``seed``, tile and fraction).  Scores are over valid, labelled pixels: precision, recall and
F1, support-weighted (the paper's Table 1) and macro.  Outputs: ``metrics.json``,
``metrics.csv``, a confusion matrix per method and fraction (CSV and PNG), example overlays.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .errors import InputError
from .files import write_csv, write_text
from .graphs import batch_graphs
from .metrics import confusion, scores
from .precompute import DEFAULT_FRACTIONS, sample_graph
from .train import Bundle, load_bundle

EVAL_SEED = 20_240_601


def resolve_model(run_or_file: str | os.PathLike) -> Path:
    """A run folder's best.pt, or the model file itself."""
    p = Path(run_or_file)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise InputError(p, "run", "no best.pt or last.pt in this run folder")
    return p


@torch.no_grad()
def predict_graphs(bundle: Bundle, graphs: list, batch: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    """(class map, max softmax probability) of each graph, batching graphs of equal size."""
    out: list = [None] * len(graphs)
    backend = bundle.config.get("backend", "structured")
    device = next(bundle.model.parameters()).device
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, g in enumerate(graphs):
        by_size.setdefault((g.height, g.width), []).append(i)
    for ids in by_size.values():
        for k in range(0, len(ids), batch):
            chunk = ids[k : k + batch]
            pix, _ = bundle.model(batch_graphs([graphs[i] for i in chunk]), backend=backend)
            prob = torch.softmax(pix.to(device), -1)
            conf, cls = prob.max(-1)
            for j, i in enumerate(chunk):
                out[i] = (cls[j].cpu().numpy(), conf[j].cpu().numpy())
    return out


def evaluate(
    model: str | os.PathLike,
    dataset: str | os.PathLike,
    out: str | os.PathLike | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    split: str = "test",
    seed: int = EVAL_SEED,
    unet: str | os.PathLike | None = None,
    knn_model: str | os.PathLike | None = None,
    max_tiles: int | None = None,
    n_overlays: int = 4,
    progress: bool = True,
) -> dict:
    """Evaluate a trained model (and baselines) on one split; writes the outputs under ``out``."""
    from tqdm import tqdm

    from .baselines import load_unet, nearest_eds_labels, predict_unet
    from .dataset import open_dataset
    from .encoder import classify
    from .plots import save_confusion_png, save_overlay_png

    model_path = resolve_model(model)
    bundle = load_bundle(model_path)
    ds = open_dataset(dataset)
    names = ds.class_names
    if bundle.class_names != names:
        raise InputError(model_path, "class_names", f"model has {len(bundle.class_names)} classes that differ from the dataset's {len(names)}")
    out = Path(out) if out is not None else (Path(model) if Path(model).is_dir() else model_path.parent) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    tiles = ds.indices(split)[:max_tiles] if max_tiles else ds.indices(split)
    if not tiles:
        raise InputError(ds.path, "split", f"no tiles in split {split!r}")
    knn = load_bundle(resolve_model(knn_model)) if knn_model else None
    unet_net = load_unet(unet)[0] if unet else None
    can_nearest = bundle.encoder is not None and bundle.encoder.kind == "cnn" and bundle.encoder.n_classes == len(names)
    C = len(names)
    cms: dict[tuple[str, float], np.ndarray] = {}
    samples = {t: ds.sample(t) for t in tiles}
    truth = {t: np.where(s.valid, s.labels if s.labels is not None else -1, -1) for t, s in samples.items()}
    unet_pred = {t: predict_unet(unet_net, s.bse) for t, s in samples.items()} if unet_net is not None else {}
    overlay_paths = []
    cfg = bundle.config
    for f in fractions:
        graphs, spectra = [], []
        for t in tqdm(tiles, desc=f"evaluate {f:g}", unit="tile", disable=not progress):
            g, sp = sample_graph(samples[t], t, f, 0, "random", seed, cfg.get("lift", 1.0), bundle.encoder, cfg.get("eds_edges", "delaunay"), cfg.get("k", 6))
            graphs.append(g)
            spectra.append(sp)
        preds = {"GAT": predict_graphs(bundle, graphs)}
        if knn is not None:
            kcfg = knn.config
            kg = [sample_graph(samples[t], t, f, 0, "random", seed, kcfg.get("lift", 1.0), knn.encoder, "knn", kcfg.get("k", 6))[0] for t in tiles]
            preds["GAT (kNN graph)"] = predict_graphs(knn, kg)
        results: dict[str, list[np.ndarray]] = {m: [p[0] for p in v] for m, v in preds.items()}
        if can_nearest:
            results["nearest EDS"] = [nearest_eds_labels(g, classify(bundle.encoder, sp)) if g.n_eds else np.zeros((g.height, g.width), np.int64) for g, sp in zip(graphs, spectra)]
        if unet_pred:
            results["UNet (BSE only)"] = [unet_pred[t] for t in tiles]
        for m, maps in results.items():
            cm = np.zeros((C, C), np.int64)
            for t, p in zip(tiles, maps):
                cm += confusion(truth[t], np.clip(p, 0, C - 1), C)
            cms[(m, f)] = cm
        for j, t in enumerate(tiles[:n_overlays]):
            panels = {"truth": truth[t]} | {m: np.where(samples[t].valid, maps[j], -1) for m, maps in results.items()}
            overlay_paths.append(save_overlay_png(out / "overlays" / f"{samples[t].name}-{f:g}.png", samples[t].bse, panels, names, graphs[j].eds_rc, title=f"{samples[t].name}, EDS {100 * f:g} %"))
    rows = []
    for (m, f), cm in cms.items():
        s = scores(cm)
        rows.append({"method": m, "fraction": f, **{k: s[k] for k in ("precision_weighted", "recall_weighted", "f1_weighted", "precision_macro", "recall_macro", "f1_macro", "accuracy", "support")}})
        tag = f"{m.split(' ')[0].lower()}{'-knn' if 'kNN' in m else ''}-{f:g}"
        write_csv(out / f"confusion-{tag}.csv", [[""] + names] + [[names[i]] + cm[i].tolist() for i in range(C)])
        if m == "GAT":
            save_confusion_png(out / f"confusion-{tag}.png", cm, names, title=f"{m}, EDS {100 * f:g} % (recall per true class)")
    result = {"model": str(model_path), "dataset": str(ds.path), "split": split, "tiles": len(tiles), "seed": seed, "fractions": list(fractions), "results": rows}
    write_csv(out / "metrics.csv", [list(rows[0])] + [[r[k] for k in rows[0]] for r in rows])
    write_text(out / "metrics.json", json.dumps(result, indent=2))
    result["overlays"] = [str(p) for p in overlay_paths]
    result["out"] = str(out)
    return result

