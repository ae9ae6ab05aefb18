"""``mingraph train --arch fusion``: train the fusion model online on a dataset's fields.

Every choice is a field of the recipe (:mod:`mingraph.learn.recipe`: ``--recipe FILE``, options
and ``--set KEY=VALUE`` over it).  An epoch visits every training field ``draws`` times in an order
that depends only on (seed, epoch); each visit (an item) is a random crop (``crop`` px, at most the
smallest field), an EDS fraction log-uniform in ``fraction_range``, random point positions (on
point-spectra fields, a random subset of the measured points) and, for simulated fields, Poisson
noise of its own (the simulator's ``draw``); the spectral encoder's class probabilities are the
EDS evidence.  With ``noise = "fresh"`` every item is new each epoch (its generator seeded by
(seed, epoch, position)); with ``"fixed"`` a field's ``draws`` items are the same every epoch
(seeded by (seed, field, visit)).  AdamW with a one-cycle (or constant) learning-rate schedule,
one step per batch of ``batch_size`` items; loss: negative log-likelihood over valid labelled
pixels, optionally class-balanced (weights ∝ frequency^−β).  After each epoch the model is scored
on fixed draws of the validation fields at ``val_fractions``; ``best.pt`` keeps the epoch with the
highest mean of weighted and macro F1 over them.  Outputs in the run folder: ``config.json``,
``metrics.jsonl`` (one line per epoch), ``best.pt``, ``last.pt`` and ``resume.pt`` (optimiser and
schedule state); a recipe's simulated ``fields`` are built into ``fields/``.  A run interrupted
after any epoch and continued with ``resume=True`` (``--resume``) ends with the same weights as
one never interrupted.  The model files record the resolved recipe, the code version and the
training fields' seeds (``meta``: ``recipe``, ``code``, ``data``).

Under torchrun (:mod:`mingraph.learn.distributed`) each rank takes a disjoint share of the
epoch's items (positions rank, rank + W, ...) and forms its batches from it; every rank takes the
same number of steps (``len(items) // (W × batch_size)`` an epoch), DistributedDataParallel averages
their gradients, and rank 0 validates and writes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
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
from mingraph.graphs.candidates import build_candidate_graph, field_scale
from mingraph.learn import distributed as ddp
from mingraph.learn import recipe as rcp
from mingraph.learn.bundle import default_model_path, make_bundle
from mingraph.learn.class_weights import frequency_weights
from mingraph.learn.fusion_model import FusionModel, batch_inputs, predict_fusion
from mingraph.learn.training_evidence import PointEvidence, encoder_evidence, instrument_of, physics_evidence
from mingraph.learn.training_inputs import augment_bse, model_mask
from mingraph.spectra.encoder import class_probabilities, encoder_from_blob, load_encoder

FUSION_CONFIG: dict = rcp.DEFAULTS
"""The fusion trainer's settings and their defaults (:data:`mingraph.learn.recipe.DEFAULTS`)."""


def spectra_at(
    field, rc: np.ndarray, draw: int, counts: float = 1.0, rng: np.random.Generator | None = None
) -> np.ndarray:
    """(n, channels) float32 spectra at ``rc`` (n, 2); a simulated field gives fresh Poisson noise
    for each ``draw``.  ``counts`` scales the counts a spectrum holds: a simulated field's dwell
    time × ``counts``; measured spectra (``counts`` < 1 only) are thinned, each count kept with
    probability ``counts`` (binomial, drawn from ``rng``), which is exactly a shorter dwell.

    Examples
    --------
    >>> from mingraph.acquire.simulate import simulate_tile
    >>> f, rc = simulate_tile(1, 16).field(), np.array([[3, 4], [8, 9]])
    >>> full, half = spectra_at(f, rc, 1), spectra_at(f, rc, 1, counts=0.5)
    >>> full.shape, bool(0.4 < half.sum() / full.sum() < 0.6)
    ((2, 3000), True)
    """
    from mingraph.acquire.simulate.eds import SimulatedEds

    eds = field.eds
    if isinstance(eds, SimulatedEds) and (draw or counts != 1.0):
        params = dict(eds.params, dwell_ms=eds.params["dwell_ms"] * counts)
        return SimulatedEds(eds.labels, eds.seed, params, draw=draw).spectra(rc[:, 0], rc[:, 1])
    out = eds.spectra(rc[:, 0], rc[:, 1])
    if counts < 1.0:
        rng = rng if rng is not None else np.random.default_rng(0)
        out = rng.binomial(np.rint(out).astype(np.int64), counts).astype(np.float32)
    return out


def measurable(field) -> np.ndarray | None:
    """(H, W) bool of the pixels that have a spectrum, or None when the source answers any pixel.

    Point-spectra fields (point analyses, TIMA dots: ``PointSpectra``) train on their measured
    points only: each step draws a random subset of them (nothing is invented where no spectrum
    was measured).
    """
    mask = getattr(field.eds, "measured_mask", None)
    return None if mask is None else np.asarray(mask, bool)


def draw_points(
    valid: np.ndarray,
    measured: np.ndarray | None,
    fraction: float,
    rng: np.random.Generator,
    pattern: str = "random",
):
    """(n, 2) EDS positions on ``valid`` pixels at ``fraction``: ``pattern`` (random, or grid: TIMA's
    dots) anywhere, or (point-spectra fields) a random subset of the ``measured`` pixels, all of
    them when fewer are measured."""
    if measured is None:
        return sample_points(valid, fraction, pattern, rng) if valid.any() else np.zeros((0, 2), np.int64)
    pool = np.flatnonzero(valid & measured)
    n = min(n_points(int(valid.sum()), fraction), pool.size)
    pick = np.sort(rng.choice(pool, size=n, replace=False)) if n else pool[:0]
    return np.stack(np.unravel_index(pick, valid.shape), axis=1).astype(np.int64)


def _crop(field, size: int, rng: np.random.Generator):
    h, w = field.shape
    ch, cw = min(size, h), min(size, w)
    r0, c0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return (slice(r0, r0 + ch), slice(c0, c0 + cw)), np.array([r0, c0])


def training_item(
    field,
    encoder,
    k: int,
    crop: int,
    fraction: float,
    rng: np.random.Generator,
    draw: int,
    options: dict | None = None,
    evidence: PointEvidence | None = None,
):
    """(graph, EDS class probabilities, labels) of one random crop with fresh EDS points.

    ``evidence`` (:mod:`mingraph.learn.training_evidence`): the classifier of the points'
    spectra, the labels in its columns; None: ``encoder``'s class probabilities, the labels as
    they are.

    ``options`` holds the recipe's ``points``, ``mask``, ``mask_window``, ``mask_rough_px``,
    ``bse_augment`` (:mod:`mingraph.learn.training_inputs`) and ``counts_range`` (a spectrum's
    counts × a factor log-uniform in it, :func:`spectra_at`); absent ones: random points, the
    exact mask, the BSE and the counts as they are.  The labels keep the exact mask."""
    opts = options or {}
    sl, origin = _crop(field, crop, rng)
    valid = field.valid[sl]
    measured = measurable(field)
    points = opts.get("points", "random")
    pattern = points if isinstance(points, str) else str(points[int(rng.integers(len(points)))])
    rc = draw_points(valid, None if measured is None else measured[sl], fraction, rng, pattern)
    counts = 1.0
    if opts.get("counts_range"):
        counts = float(np.exp(rng.uniform(*np.log(opts["counts_range"]))))
    spectra = spectra_at(field, rc + origin, draw, counts, rng)
    probs = class_probabilities(encoder, spectra) if evidence is None else evidence.probabilities(spectra)
    bse = augment_bse(field.bse[sl], opts.get("bse_augment"), rng)
    mask = valid
    if opts.get("mask", "exact") != "exact":
        mask = model_mask(
            valid,
            bse,
            rc,
            opts["mask"],
            rng,
            opts.get("mask_window", (0.05, 0.25)),
            opts.get("mask_rough_px", 3),
        )
    graph = build_candidate_graph(
        bse, mask, rc, k, field_scale(bse, mask, rc, opts.get("standardise", "valid"))
    )
    labels = np.where(valid, field.labels[sl], -1).astype(np.int64)
    return graph, probs, labels if evidence is None else evidence.labels(labels)


def score_fields(
    model: FusionModel,
    fields: list,
    encoder,
    fraction: float,
    seed: int,
    n_classes: int,
    evidence: PointEvidence | None = None,
) -> np.ndarray:
    """Pooled confusion (with an unclassified column) of the model on fixed draws of ``fields``,
    in the scored columns of ``evidence`` (as :func:`training_item`; None: ``encoder``'s
    ``n_classes`` classes), a pixel given the physics' unknown unclassified."""
    ev = evidence if evidence is not None else encoder_evidence(encoder, n_classes)
    n = ev.scored
    cm = np.zeros((n, n + 1), np.int64)
    for t, f in enumerate(fields):
        rc = draw_points(
            f.valid, measurable(f), fraction, np.random.default_rng([seed, t, int(fraction * 1e6)])
        )
        graph = model.graph(f.bse, f.valid, rc)
        pred, _ = predict_fusion(model, graph, ev.probabilities(spectra_at(f, rc, 0)), ev.palette_skip)
        truth = ev.labels(np.where(f.valid, f.labels, -1))
        cm += confusion(truth, np.where(pred < n, pred, -1), n, unclassified=True)
    return cm


def fusion_from_recipe(cfg: dict, n_classes: int) -> FusionModel:
    """The untrained fusion model a recipe describes.

    Parameters
    ----------
    cfg : dict
        Resolved recipe keys (:func:`mingraph.learn.recipe.resolve`; a resumed run's settings
        over :data:`~mingraph.learn.recipe.DEFAULTS`): ``channels``, ``heads``, ``head_dim``,
        ``k``, ``palette``, ``mask_input``, ``standardise``.
    n_classes : int
        The training classes.

    Returns
    -------
    FusionModel

    Examples
    --------
    >>> m = fusion_from_recipe(rcp.DEFAULTS | {"palette": 16, "mask_input": False, "standardise": "points"}, 50)
    >>> m.palette_dim, m.mask_input, m.standardise
    (16, False, 'points')
    """
    return FusionModel(
        n_classes,
        cfg["channels"],
        cfg["heads"],
        cfg["head_dim"],
        cfg["k"],
        palette=cfg["palette"],
        mask_input=cfg["mask_input"],
        standardise=cfg["standardise"],
    )


def load_training_encoder(spec: str | os.PathLike):
    """The encoder a recipe names: ``"shipped"`` (the shipped model's CNN encoder) or a file.

    Raises
    ------
    InputError
        No such file, or not an encoder file (``"shipped"``: no shipped model installed).
    """
    from mingraph.common.files import load_artifact

    if str(spec) == "shipped":
        p = default_model_path()
        if not p.is_file():
            raise InputError(
                p, "encoder", "the recipe names the shipped encoder, but no shipped model is installed"
            )
        return encoder_from_blob(load_artifact(p, "mingraph-model", 1, "model")["encoder"])
    return load_encoder(spec)


def _evidence(cfg: dict, enc, ds, dataset: Path, train_ids: list, fields: list) -> PointEvidence:
    """The recipe's point evidence (:mod:`mingraph.learn.training_evidence`) on these fields."""
    if cfg["classifier"] == "encoder":
        return encoder_evidence(enc, len(ds.class_names))
    from mingraph.acquire.simulate.eds import SimulatedEds

    simulated = isinstance(fields[0].eds, SimulatedEds)
    start = instrument_of(ds.eds_params(train_ids[0]), simulated, dataset)
    summed = None
    if not simulated:  # measured fields: one calibration, on their first fields' measured points
        summed = 0
        for f in fields[:8]:
            m = measurable(f)
            r, c = np.nonzero(f.valid if m is None else m & f.valid)
            summed = summed + f.eds.spectra(r[:4000], c[:4000]).sum(0)
    return physics_evidence(ds.class_names, start, dataset, summed)


def epoch_plan(n_fields: int, cfg: dict, epoch: int) -> list[tuple[int, int, list[int]]]:
    """An epoch's items in order: (field index, EDS noise draw, generator seed) for each of the
    ``n_fields × draws`` visits, in an order that depends only on (seed, epoch).

    ``noise = "fresh"``: draw ``epoch × draws + visit + 1`` and seed (seed, epoch, entry), new
    every epoch; ``"fixed"``: draw ``visit + 1`` and seed (seed, field, visit), the same every epoch.

    Examples
    --------
    >>> plan = epoch_plan(3, {"draws": 2, "seed": 0, "noise": "fixed"}, 0)
    >>> sorted((f, d) for f, d, _ in plan)
    [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)]
    """
    draws, seed = int(cfg["draws"]), int(cfg["seed"])
    order = np.random.default_rng([seed, epoch]).permutation(n_fields * draws)
    out = []
    for e in order.tolist():
        f, v = divmod(e, draws)
        if cfg["noise"] == "fixed":
            out.append((f, v + 1, [seed, 1_000_000_007, f, v]))
        else:
            out.append((f, epoch * draws + v + 1, [seed, epoch, e]))
    return out


def _resumed_settings(run: Path, dataset, encoder, overrides: dict) -> tuple[dict, dict]:
    """Settings (with ``dataset`` and ``encoder``) and saved training state of a run to continue."""
    if not (run / "resume.pt").is_file() or not (run / "config.json").is_file():
        raise InputError(run, "--resume", "no resume.pt and config.json of a fusion run to continue")
    cfg = json.loads((run / "config.json").read_text())
    changed = [k for k, v in overrides.items() if v is not None and cfg.get(k) != v]
    if changed or (dataset is not None and Path(dataset).resolve() != Path(cfg["dataset"])):
        what = ", ".join(changed) or "the dataset"
        raise InputError(run, "--resume", f"a resumed run keeps its own settings; {what} differ")
    if encoder is not None and _encoder_name(encoder) != cfg["encoder"]:
        raise InputError(run, "--resume", "a resumed run keeps its own encoder")
    state = torch.load(run / "resume.pt", map_location="cpu", weights_only=True)
    return cfg, state


def _encoder_name(encoder) -> str:
    return "shipped" if str(encoder) == "shipped" else str(Path(encoder).resolve())


def _data_record(ds, dataset: Path, fields: list, val: list, cfg: dict) -> dict:
    """What the model file records of its data: the recipe's fields, or the dataset's own seeds."""
    seeds = [getattr(f.eds, "seed", None) for f in fields]
    return {
        "dataset": dataset.name,
        "fields": cfg["fields"],
        "dataset_seed": ds.info.get("seed"),
        "train_fields": len(fields),
        "val_fields": len(val),
        "train_field_seeds": seeds if all(s is not None for s in seeds) else None,
        "val_field_seeds": [getattr(f.eds, "seed", None) for f in val],
        "seed": cfg["seed"],
    }


def train_fusion(
    run: str | os.PathLike,
    dataset: str | os.PathLike | None,
    encoder: str | os.PathLike | None,
    progress: bool = True,
    resume: bool = False,
    recipe: dict | None = None,
    **overrides,
) -> dict:
    """Train a fusion model (or continue one with ``resume``); returns the last epoch's metrics.

    ``recipe`` holds recipe keys (:func:`mingraph.learn.recipe.load_recipe`), ``overrides``
    recipe keys that win over it (None values are ignored); ``dataset``/``encoder`` win over the
    recipe's ``fields``/``encoder``.  With ``resume`` the run's saved settings, dataset and encoder
    are used (``dataset``/``encoder`` may be None; given ones must match).  Under torchrun each
    rank trains on its share (module docstring).  Raises InputError on bad input: unknown
    settings, a run folder that already holds a checkpoint (without ``resume``), no data or no
    encoder, a non-CNN encoder, unlabelled fields or fields without spectra, a resume on another
    number of processes.
    """

    unknown = set(overrides) - set(FUSION_CONFIG)
    if unknown:
        raise InputError(
            "train", "config", f"unknown fusion settings {sorted(unknown)}; known: {sorted(FUSION_CONFIG)}"
        )
    run = Path(run)
    state = None
    if resume:
        cfg, state = _resumed_settings(run, dataset, encoder, overrides)
        cfg = rcp.DEFAULTS | cfg  # a run from before a setting existed keeps its default
    else:
        cfg = rcp.resolve(recipe, overrides)
        if (run / "last.pt").exists():
            raise InputError(
                run, "--out", "this run folder holds a checkpoint (use --resume, or another --out)"
            )
        if encoder is not None:
            cfg["encoder"] = str(encoder)
        if (dataset is None and cfg["fields"] is None) or cfg["encoder"] is None:
            raise InputError(
                "train", "--arch fusion", "needs --online DATASET (or a recipe's fields) and --encoder"
            )
        cfg["encoder"] = _encoder_name(cfg["encoder"])
        cfg["dataset"] = None if dataset is None else str(Path(dataset).resolve())
        if dataset is not None:
            cfg["fields"] = None  # --online wins over a recipe's fields, and the record says so
    dist, device = ddp.setup(cfg["device"])
    if cfg.setdefault("world_size", dist.world) != dist.world:
        raise InputError(
            run, "world_size", f"this run trained on {cfg['world_size']} processes; resume on as many"
        )
    enc = load_training_encoder(cfg["encoder"])
    if enc.kind != "cnn" or enc.n_classes == 0:
        raise InputError(
            cfg["encoder"], "kind", "the fusion model needs a CNN encoder trained with class labels"
        )
    run = output_folder(run, "train")
    if cfg["dataset"] is None:  # the recipe's simulated fields, built once into the run folder
        if dist.main:
            rcp.simulate_fields(run / "fields", cfg["fields"], progress=progress)
        ddp.barrier(dist)
        cfg["dataset"] = str((run / "fields").resolve())
    dataset = Path(cfg["dataset"])
    ds = open_dataset(dataset)
    names = ds.class_names
    if enc.n_classes != len(names):
        raise InputError(
            cfg["encoder"], "n_classes", f"expected {len(names)} classes (the dataset's), got {enc.n_classes}"
        )
    train_ids = ds.indices("train")[: cfg["max_train_fields"] or None]
    if not train_ids:
        raise InputError(dataset, "split", "no training fields (split 'train')")
    fields = [ds.field(i) for i in train_ids]
    if fields[0].labels is None or isinstance(fields[0].eds, NoSpectra):
        raise InputError(dataset, "labels", "the fusion model trains on labelled fields with EDS spectra")
    val = [ds.field(i) for i in ds.indices("val")[: cfg["val_max_fields"]]]
    evidence = _evidence(cfg, enc, ds, dataset, train_ids, fields)
    crop = min([cfg["crop"]] + [min(f.shape) for f in fields])  # every item of a batch one size
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(cfg["seed"])
    model = fusion_from_recipe(cfg, len(names)).to(device)
    net = ddp.wrap(model, dist, device)  # DistributedDataParallel under torchrun
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    per_epoch = (len(fields) * cfg["draws"]) // (cfg["batch_size"] * dist.world)
    steps = cfg["epochs"] * max(1, per_epoch)
    if cfg["schedule"] == "one-cycle" and steps >= 10:  # a handful of steps (tests): constant
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, cfg["lr"], total_steps=steps, pct_start=max(cfg["warmup"], 3 / steps)
        )
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    weight = None
    if cfg["balanced"]:
        cnt = (
            sum(np.bincount(f.labels[f.valid & (f.labels >= 0)], minlength=len(names)) for f in fields) + 100
        )
        weight = frequency_weights(cnt, cfg["balanced"]).to(device)  # +100 pixels a class: no unseen class
    if dist.main:
        write_text(run / "config.json", json.dumps(cfg | {"arch": "fusion"}, indent=2))
    record = {
        "recipe": {k: cfg[k] for k in rcp.DEFAULTS} | {"encoder": _recorded_encoder(cfg["encoder"])},
        "code": rcp.code_version(),
        "data": _data_record(ds, dataset, fields, val, cfg),
        "point_evidence": evidence.record,
        "world_size": dist.world,
        "effective_crop": crop,
    }
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
    progress = progress and dist.main
    with _deterministic(cfg["deterministic"]):
        history = _epochs(
            _Session(
                run,
                cfg,
                dist,
                device,
                net,
                model,
                opt,
                sched,
                fields,
                val,
                enc,
                names,
                crop,
                weight,
                evidence,
                (lo, hi),
                per_epoch,
                record,
                progress,
            ),
            start,
            history,
            best,
        )
    net = None  # the DDP wrapper holds the process group: free it first
    ddp.teardown(dist)
    if not dist.main:
        return {"epoch": cfg["epochs"], "val_selection": float("nan")}
    return history[-1]


@dataclass
class _Session:
    """What the epochs of one :func:`train_fusion` call share."""

    run: Path
    cfg: dict
    dist: ddp.Dist
    device: torch.device
    net: torch.nn.Module
    model: FusionModel
    opt: torch.optim.Optimizer
    sched: object
    fields: list
    val: list
    enc: object
    names: list
    crop: int
    weight: torch.Tensor | None
    evidence: PointEvidence
    log_range: tuple[float, float]
    per_epoch: int
    record: dict
    progress: bool


def _epochs(t: _Session, start: int, history: list, best: float) -> list:
    """The training loop of :func:`train_fusion`, from epoch ``start``; returns the history."""
    from tqdm import tqdm

    run, cfg, dist, device, net, model, opt = t.run, t.cfg, t.dist, t.device, t.net, t.model, t.opt
    sched, fields, val, enc, names, crop, weight = t.sched, t.fields, t.val, t.enc, t.names, t.crop, t.weight
    log_range, per_epoch, record, progress = t.log_range, t.per_epoch, t.record, t.progress
    ev = t.evidence

    lo, hi = log_range
    inputs = {
        k: cfg[k]
        for k in (
            "points",
            "mask",
            "mask_window",
            "mask_rough_px",
            "bse_augment",
            "counts_range",
            "standardise",
        )
    }
    for epoch in range(start, cfg["epochs"]):
        plan = epoch_plan(len(fields), cfg, epoch)
        mine = ddp.share(np.arange(len(plan)), dist)
        model.train()
        t0, losses = time.perf_counter(), []
        bar = tqdm(range(per_epoch), desc=f"epoch {epoch + 1}", disable=not progress)
        for b in bar:
            items = []
            for j in mine[b * cfg["batch_size"] : (b + 1) * cfg["batch_size"]]:
                f, draw, key = plan[j]
                rng = np.random.default_rng(key)
                frac = float(np.exp(rng.uniform(lo, hi)))
                items.append(training_item(fields[f], enc, cfg["k"], crop, frac, rng, draw, inputs, ev))
            batch = batch_inputs([g for g, _, _ in items], [p for _, p, _ in items], device)
            logp, _ = net(*batch, palette_skip=ev.palette_skip)
            lab = torch.as_tensor(np.stack([y for _, _, y in items]), device=device).reshape(-1)
            loss = _nll(logp.reshape(-1, ev.width), lab, weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        secs = time.perf_counter() - t0
        loss_sum, n_loss = ddp.all_sum([float(np.sum(losses)), float(len(losses))], dist, device)
        if not dist.main:  # rank 0 validates and writes
            continue
        metrics = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / n_loss if n_loss else None,
            "seconds": secs,
            "steps": len(losses),
        }
        if val:
            model.eval()
            for fr in cfg["val_fractions"]:
                sc = scores(score_fields(model, val, enc, fr, cfg["seed"] + 1_000_003, len(names), ev))
                metrics[f"val_f1_weighted_{fr:g}"], metrics[f"val_f1_macro_{fr:g}"] = (
                    sc["f1_weighted"],
                    sc["f1_macro"],
                )
        keys = [k for k in metrics if k.startswith("val_f1_")]
        select = float(np.mean([metrics[k] for k in keys])) if keys else float(epoch)
        metrics["val_selection"] = select
        history.append(metrics)
        write_text(run / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        bundle = make_bundle(
            model,
            enc,
            names,
            {k: v for k, v in cfg.items() if k != "dataset"} | {"arch": "fusion"},
            {"epoch": epoch, "metrics": metrics} | record,
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
    return history


def _deterministic(on: bool):
    """torch's deterministic algorithms while training, the caller's setting restored after: on
    CPU the first backward of each input shape in a process otherwise differs from later ones in
    the last bits (measured), so a run's weights would depend on what its process ran before."""
    import contextlib

    @contextlib.contextmanager
    def ctx():
        before, warn = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        torch.use_deterministic_algorithms(on, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(before, warn_only=warn)

    return ctx()


def _recorded_encoder(name: str) -> str:
    return name if name == "shipped" else Path(name).name


def _nll(logp: torch.Tensor, lab: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean (class-weighted) NLL over labelled pixels; 0 with a gradient when none is labelled."""
    total = F.nll_loss(logp, lab, weight=weight, ignore_index=-1, reduction="sum")
    keep = lab >= 0
    denom = keep.sum() if weight is None else weight[lab[keep]].sum()
    return total / denom.clamp_min(1e-12) if bool(keep.any()) else total * 0.0
