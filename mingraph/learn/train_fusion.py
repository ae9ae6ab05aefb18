"""``mingraph train --arch fusion``: train the fusion model online on a dataset's fields.

Recipe (chosen by measurement on 2 CPU cores, docs/results.md): every step draws, for each field
of a batch, a random crop (default 128 px), an EDS fraction log-uniform in [0.5 %, 5 %], random
point positions (on point-spectra fields, a random subset of the measured points) and, for
simulated fields, fresh Poisson noise (the simulator's ``draw`` = epoch
+ 1, so no spectrum is seen twice); the spectral encoder's class probabilities are the EDS
evidence.  AdamW with a one-cycle learning-rate schedule; loss: negative log-likelihood over
valid labelled pixels, optionally class-balanced (weights ∝ frequency^−β).  After each epoch the
model is scored on fixed draws of the validation fields at 1 % and 5 %; ``best.pt`` keeps the
epoch with the highest mean of weighted and macro F1 over both fractions.  Outputs in the run
folder: ``config.json``, ``metrics.jsonl`` (one line per epoch), ``best.pt``, ``last.pt`` and
``resume.pt`` (optimiser and schedule state).  Every random choice of an epoch depends only on
(seed, epoch), so a run interrupted after any epoch and continued with ``resume=True``
(``mingraph train --arch fusion --resume``) ends with the same weights as one never interrupted.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mingraph.acquire.dataset import open_dataset
from mingraph.acquire.fields import NoSpectra
from mingraph.acquire.sampling import n_points, sample_points
from mingraph.common.errors import InputError
from mingraph.common.files import save_artifact, write_text
from mingraph.common.metrics import confusion, scores
from mingraph.common.outputs import output_folder
from mingraph.graphs.candidates import build_candidate_graph
from mingraph.learn.bundle import make_bundle
from mingraph.learn.class_weights import frequency_weights
from mingraph.learn.distributed import world_size
from mingraph.learn.fusion_model import FusionModel, batch_inputs, predict_fusion
from mingraph.spectra.encoder import class_probabilities, load_encoder

FUSION_CONFIG: dict = {
    "epochs": 6,
    "batch_size": 4,
    "crop": 128,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "fraction_range": [0.005, 0.05],  # log-uniform per field and step
    "balanced": 0.0,  # class weights ∝ frequency^-balanced (0 = plain NLL)
    "val_fractions": [0.01, 0.05],
    "val_max_fields": 32,
    "max_train_fields": None,
    "seed": 0,
    "threads": None,
    "channels": 32,
    "heads": 4,
    "head_dim": 8,
    "k": 8,
}


def _spectra(field, rc: np.ndarray, draw: int) -> np.ndarray:
    """Spectra at ``rc``; a simulated field gives fresh Poisson noise for each ``draw``."""
    from mingraph.acquire.simulate.eds import SimulatedEds

    eds = field.eds
    if isinstance(eds, SimulatedEds) and draw:
        eds = SimulatedEds(eds.labels, eds.seed, eds.params, draw=draw)
    return eds.spectra(rc[:, 0], rc[:, 1])


def measurable(field) -> np.ndarray | None:
    """(H, W) bool of the pixels that have a spectrum, or None when the source answers any pixel.

    Point-spectra fields (point analyses, TIMA dots: ``PointSpectra``) train on their measured
    points only: each step draws a random subset of them (nothing is invented where no spectrum
    was measured).
    """
    mask = getattr(field.eds, "measured_mask", None)
    return None if mask is None else np.asarray(mask, bool)


def draw_points(valid: np.ndarray, measured: np.ndarray | None, fraction: float, rng: np.random.Generator):
    """(n, 2) EDS positions on ``valid`` pixels at ``fraction``: random anywhere, or (point-spectra
    fields) a random subset of the ``measured`` pixels, all of them when fewer are measured."""
    if measured is None:
        return sample_points(valid, fraction, "random", rng) if valid.any() else np.zeros((0, 2), np.int64)
    pool = np.flatnonzero(valid & measured)
    n = min(n_points(int(valid.sum()), fraction), pool.size)
    pick = np.sort(rng.choice(pool, size=n, replace=False)) if n else pool[:0]
    return np.stack(np.unravel_index(pick, valid.shape), axis=1).astype(np.int64)


def _crop(field, size: int, rng: np.random.Generator):
    h, w = field.shape
    ch, cw = min(size, h), min(size, w)
    r0, c0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return (slice(r0, r0 + ch), slice(c0, c0 + cw)), np.array([r0, c0])


def training_item(field, encoder, k: int, crop: int, fraction: float, rng: np.random.Generator, draw: int):
    """(graph, EDS class probabilities, labels) of one random crop with fresh EDS points."""
    sl, origin = _crop(field, crop, rng)
    valid = field.valid[sl]
    measured = measurable(field)
    rc = draw_points(valid, None if measured is None else measured[sl], fraction, rng)
    probs = class_probabilities(encoder, _spectra(field, rc + origin, draw))
    graph = build_candidate_graph(field.bse[sl], valid, rc, k)
    labels = np.where(valid, field.labels[sl], -1).astype(np.int64)
    return graph, probs, labels


def score_fields(
    model: FusionModel, fields: list, encoder, fraction: float, seed: int, n_classes: int
) -> np.ndarray:
    """Pooled confusion (with an unclassified column) of the model on fixed draws of ``fields``."""
    cm = np.zeros((n_classes, n_classes + 1), np.int64)
    for t, f in enumerate(fields):
        rc = draw_points(
            f.valid, measurable(f), fraction, np.random.default_rng([seed, t, int(fraction * 1e6)])
        )
        graph = build_candidate_graph(f.bse, f.valid, rc, model.k)
        pred, _ = predict_fusion(model, graph, class_probabilities(encoder, _spectra(f, rc, 0)))
        cm += confusion(np.where(f.valid, f.labels, -1), pred, n_classes, unclassified=True)
    return cm


def _resumed_settings(run: Path, dataset, encoder, overrides: dict) -> tuple[dict, str, str, dict]:
    """Settings, dataset, encoder and saved training state of a run to continue."""
    import torch

    if not (run / "resume.pt").is_file() or not (run / "config.json").is_file():
        raise InputError(run, "--resume", "no resume.pt and config.json of a fusion run to continue")
    cfg = json.loads((run / "config.json").read_text())
    changed = [k for k, v in overrides.items() if v is not None and cfg.get(k) != v]
    if changed or (dataset is not None and Path(dataset).resolve() != Path(cfg["dataset"])):
        what = ", ".join(changed) or "the dataset"
        raise InputError(run, "--resume", f"a resumed run keeps its own settings; {what} differ")
    if encoder is not None and Path(encoder).resolve() != Path(cfg["encoder"]):
        raise InputError(run, "--resume", "a resumed run keeps its own encoder")
    state = torch.load(run / "resume.pt", map_location="cpu", weights_only=True)
    return cfg, cfg["dataset"], cfg["encoder"], state


def train_fusion(
    run: str | os.PathLike,
    dataset: str | os.PathLike | None,
    encoder: str | os.PathLike | None,
    progress: bool = True,
    resume: bool = False,
    **overrides,
) -> dict:
    """Train a fusion model (or continue one with ``resume``); returns the last epoch's metrics.

    ``overrides`` are ``FUSION_CONFIG`` keys.  With ``resume`` the run's saved settings, dataset and
    encoder are used (``dataset``/``encoder`` may be None; given ones must match).  Raises
    InputError on bad input: unknown settings, a run folder that already holds a checkpoint
    (without ``resume``), a non-CNN encoder, unlabelled fields or fields without spectra.
    """
    from tqdm import tqdm

    cfg = dict(FUSION_CONFIG)
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise InputError(
            "train", "config", f"unknown fusion settings {sorted(unknown)}; known: {sorted(cfg)}"
        )
    run = Path(run)
    if world_size() > 1:  # its items share one generator: no per-rank share yet
        raise InputError(
            "torchrun", "WORLD_SIZE", "the fusion trainer runs on one process (torchrun: the GAT)"
        )
    state = None
    if resume:
        saved, dataset, encoder, state = _resumed_settings(run, dataset, encoder, overrides)
        cfg.update({k: saved[k] for k in cfg if k in saved})
    else:
        cfg.update({k: v for k, v in overrides.items() if v is not None})
        if (run / "last.pt").exists():
            raise InputError(
                run, "--out", "this run folder holds a checkpoint (use --resume, or another --out)"
            )
        if dataset is None or encoder is None:
            raise InputError("train", "--arch fusion", "needs --online DATASET and --encoder")
    enc = load_encoder(encoder)
    if enc.kind != "cnn" or enc.n_classes == 0:
        raise InputError(encoder, "kind", "the fusion model needs a CNN encoder trained with class labels")
    ds = open_dataset(dataset)
    names = ds.class_names
    if enc.n_classes != len(names):
        raise InputError(
            encoder, "n_classes", f"expected {len(names)} classes (the dataset's), got {enc.n_classes}"
        )
    train_ids = ds.indices("train")[: cfg["max_train_fields"] or None]
    if not train_ids:
        raise InputError(dataset, "split", "no training fields (split 'train')")
    fields = [ds.field(i) for i in train_ids]
    if fields[0].labels is None or isinstance(fields[0].eds, NoSpectra):
        raise InputError(dataset, "labels", "the fusion model trains on labelled fields with EDS spectra")
    val = [ds.field(i) for i in ds.indices("val")[: cfg["val_max_fields"]]]
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(cfg["seed"])
    model = FusionModel(len(names), cfg["channels"], cfg["heads"], cfg["head_dim"], cfg["k"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps = cfg["epochs"] * max(1, len(fields) // cfg["batch_size"])
    if steps >= 10:  # one-cycle schedule; a handful of steps (tests) keeps the rate constant
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, cfg["lr"], total_steps=steps, pct_start=max(0.1, 3 / steps)
        )
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    weight = None
    if cfg["balanced"]:
        cnt = (
            sum(np.bincount(f.labels[f.valid & (f.labels >= 0)], minlength=len(names)) for f in fields) + 100
        )
        weight = frequency_weights(cnt, cfg["balanced"])  # +100 pixels a class: no unseen class
    run = output_folder(run, "train")
    paths = {"dataset": str(Path(dataset).resolve()), "encoder": str(Path(encoder).resolve())}
    write_text(run / "config.json", json.dumps(cfg | paths | {"arch": "fusion"}, indent=2))
    lo, hi = np.log(cfg["fraction_range"][0]), np.log(cfg["fraction_range"][1])
    history, best, start = [], -1.0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["schedule"])
        history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][
            : state["epoch"]
        ]
        best, start = float(state["best"]), int(state["epoch"])
    for epoch in range(start, cfg["epochs"]):
        rng = np.random.default_rng([cfg["seed"], epoch])
        model.train()
        t0, losses = time.perf_counter(), []
        order = rng.permutation(len(fields))
        bar = tqdm(
            range(0, len(order) - cfg["batch_size"] + 1, cfg["batch_size"]),
            desc=f"epoch {epoch + 1}",
            disable=not progress,
        )
        for s in bar:
            items = [
                training_item(
                    fields[i], enc, cfg["k"], cfg["crop"], float(np.exp(rng.uniform(lo, hi))), rng, epoch + 1
                )
                for i in order[s : s + cfg["batch_size"]]
            ]
            for same in _same_size(items):
                logp, _ = model(*batch_inputs([g for g, _, _ in same], [p for _, p, _ in same]))
                lab = torch.as_tensor(np.stack([y for _, _, y in same]))
                loss = F.nll_loss(
                    logp.reshape(-1, len(names)), lab.reshape(-1), weight=weight, ignore_index=-1
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            sched.step()
        metrics = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)) if losses else None,
            "seconds": time.perf_counter() - t0,
        }
        if val:
            model.eval()
            for f in cfg["val_fractions"]:
                sc = scores(score_fields(model, val, enc, f, cfg["seed"] + 1_000_003, len(names)))
                metrics[f"val_f1_weighted_{f:g}"], metrics[f"val_f1_macro_{f:g}"] = (
                    sc["f1_weighted"],
                    sc["f1_macro"],
                )
        keys = [k for k in metrics if k.startswith("val_f1_")]
        select = float(np.mean([metrics[k] for k in keys])) if keys else float(epoch)
        metrics["val_selection"] = select
        history.append(metrics)
        write_text(run / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        bundle = make_bundle(
            model, enc, names, cfg | {"arch": "fusion"}, {"epoch": epoch, "metrics": metrics}
        )
        if select > best:
            best = select
            save_artifact(bundle, run / "best.pt")
        save_artifact(bundle, run / "last.pt")
        save_artifact(
            {
                "epoch": epoch + 1,
                "best": best,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "schedule": sched.state_dict(),
            },
            run / "resume.pt",
        )
        if progress:
            tqdm.write(json.dumps(metrics))
    return history[-1]


def _same_size(items: list) -> list[list]:
    groups: dict[tuple[int, int], list] = {}
    for it in items:
        groups.setdefault(it[0].shape, []).append(it)
    return list(groups.values())
