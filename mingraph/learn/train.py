"""``mingraph train``: fit the GAT on shards or online draws, validate each epoch, checkpoint, resume.

A run folder holds ``config.json``, ``metrics.jsonl`` (one line per epoch), ``last.pt`` and
``best.pt``.  Checkpoints are self-contained model bundles (GAT weights, the encoder, class
names and graph settings), so ``evaluate`` and ``predict`` need nothing else.  The data order
and online EDS draws depend only on (seed, epoch), so ``--resume`` gives the same result as an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mingraph.acquire.fields import NoSpectra
from mingraph.common.errors import InputError
from mingraph.common.files import load_artifact, save_artifact, write_text
from mingraph.common.metrics import confusion, scores
from mingraph.common.outputs import output_folder
from mingraph.graphs.structure import StructuredGraph, batch_graphs, size_groups
from mingraph.learn import distributed as ddp
from mingraph.learn.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, make_bundle
from mingraph.learn.distributed import pick_device  # noqa: F401  (the trainers' device rule, kept importable here)
from mingraph.learn.model import GATModel, to_tensors
from mingraph.spectra.window import EMBED_DIM

DEFAULT_CONFIG: dict = {
    "epochs": 120,  # the paper's
    "batch_size": 16,  # graphs per batch, the paper's
    "lr": 0.01,  # Adam, the paper's
    "backend": "structured",
    "device": "auto",
    "seed": 0,
    "online_fraction": [0.0, 0.7],  # EDS fraction drawn uniformly per tile and epoch (paper)
    "val_fraction": 0.01,  # online validation: fixed draws at 1 %
    "val_max_graphs": 256,
    "max_train_graphs": None,  # cap per epoch (reduced protocols)
    "eds_edges": "delaunay",  # or "knn" (the ablation)
    "k": 6,
    "lift": 1.0,
    "hidden_channels": 56,
    "heads": 4,
    "encoder": None,  # path of the encoder artifact (needed online and for shards of raw spectra)
}


class _Source:
    """Where training graphs come from: shards, or online draws on a raw dataset."""

    def __init__(self, cfg: dict, shards: str | None, online: str | None, encoder):
        self.cfg, self.encoder = cfg, encoder
        if (shards is None) == (online is None):
            raise InputError("train", "input", "give either SHARDS or --online DATASET")
        if shards is not None:
            from mingraph.graphs.shards import open_shards

            self.train_idx = open_shards(shards, split="train")
            self.val_idx = open_shards(shards, split="val")
            if len(self.train_idx) == 0:
                raise InputError(shards, "shards", "no training graphs (split 'train') in these shards")
            job = self.train_idx.shards[0].job
            first = self.train_idx.shards[0]
            if first._arr("labels", 0, "i1") is None:
                raise InputError(
                    first.path, "labels", "these shards hold no phase labels: nothing to train on"
                )
            features = self.train_idx.point_features  # one for the folder (open_shards checks)
            if features["classifier"] == "physics":  # class probabilities: no encoder made them
                if encoder is not None:
                    raise InputError(
                        shards,
                        "--encoder",
                        "these shards hold the physics classifier's class probabilities, not embeddings: "
                        "drop --encoder",
                    )
                self.encoder = None
            else:
                self.encoder = self._shard_encoder(Path(shards), job["encoder_digest"], encoder)
            self.feature_width = int(features["feature_width"])
            if "point_classifier" in job:  # built with --classifier: the model file records it
                keep = ("classifier", "class_names", "feature_width", "minerals", "beam_kev", "label_columns")
                cfg["point_features"] = {k: features.get(k) for k in keep}
            self.class_names = None
            self.dataset_path = None
            self.n_train = len(self.train_idx)
            cfg["lift"] = float(job["lift"])
            cfg["convention"] = job.get("convention", "paper")  # recorded in the model file
        else:
            from mingraph.acquire.dataset import open_dataset

            if encoder is None:
                raise InputError(
                    "train", "--encoder", "online training needs a spectral encoder (--encoder FILE)"
                )
            self.ds = open_dataset(online)
            self.feature_width = EMBED_DIM  # the encoder's embeddings
            self.class_names = self.ds.class_names
            self.dataset_path = str(self.ds.path)
            self.train_tiles = self.ds.indices("train")
            self.val_tiles = self.ds.indices("val")
            if not self.train_tiles:
                raise InputError(online, "split", "no training tiles")
            probe = self.ds.field(self.train_tiles[0])
            if probe.labels is None:
                raise InputError(online, "labels", "this dataset holds no phase labels: nothing to train on")
            if isinstance(probe.eds, NoSpectra):
                raise InputError(online, "spectra", "this dataset holds no EDS spectra to draw from")
            self.n_train = len(self.train_tiles)
        self._val_cache: list[StructuredGraph] | None = None

    @staticmethod
    def _shard_encoder(folder: Path, digest: str | None, given):
        """The encoder that embedded the shards (their copy, or the one given if it is the same)."""
        from mingraph.spectra.encoder import load_encoder

        if digest is None:  # raw spectra: any encoder embeds them, but one is needed
            if given is None:
                raise InputError(
                    folder, "encoder", "these shards hold raw spectra: give --encoder FILE to embed them"
                )
            return given
        enc = (
            given
            if given is not None
            else (load_encoder(folder / "encoder.pt") if (folder / "encoder.pt").is_file() else None)
        )
        if enc is None:
            raise InputError(
                folder,
                "encoder.pt",
                "missing: the encoder that made these embeddings must stay beside the shards (or pass --encoder)",
            )
        if enc.digest != digest:
            raise InputError(
                folder,
                "encoder",
                f"the encoder given (digest {enc.digest}) is not the one that made these shards ({digest})",
            )
        return enc

    def _shard_graph(self, index, k: int) -> StructuredGraph:
        s, i = index.entries[k]
        sh = index.shards[s]
        spectra = sh.spectra(i)
        edges = {"eds_edges": self.cfg["eds_edges"], "k": self.cfg["k"]}
        if spectra is None:
            return sh.graph(i, **edges)
        if self.encoder is None:
            raise InputError(sh.path, "embedding", "shards hold raw spectra: give --encoder FILE")
        return sh.graph(i, eds_feat=self.encoder.embed(spectra), **edges)

    def epoch(self, epoch: int, dist: ddp.Dist = ddp.SINGLE) -> Iterator[list[StructuredGraph]]:
        """Batches of one epoch, in an order fixed by (seed, epoch); graphs of equal size per batch.
        Under torchrun, this rank's share of the order (mingraph.learn.distributed.share)."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg["seed"], epoch, 1])
        n = self.n_train
        order = rng.permutation(n)
        if cfg["max_train_graphs"]:
            order = order[: int(cfg["max_train_graphs"])]
        fr = rng.uniform(*cfg["online_fraction"], size=n) if not hasattr(self, "train_idx") else None
        order = ddp.share(order, dist)
        if hasattr(self, "train_idx"):

            def make(k: int) -> StructuredGraph:
                return self._shard_graph(self.train_idx, int(k))
        else:
            from mingraph.graphs.build import field_graph

            def make(k):
                t = self.train_tiles[int(k)]
                return field_graph(
                    self.ds.field(t),
                    t,
                    float(fr[k]),
                    epoch,
                    "random",
                    cfg["seed"],
                    cfg["lift"],
                    self.encoder,
                    cfg["eds_edges"],
                    cfg["k"],
                )[0]

        bs = cfg["batch_size"]
        pending: dict[tuple[int, int], list[StructuredGraph]] = {}
        for k in order:
            g = make(k)
            key = (g.height, g.width)
            pending.setdefault(key, []).append(g)
            if len(pending[key]) == bs:
                yield pending.pop(key)
        yield from pending.values()

    def validation(self) -> list[StructuredGraph]:
        """Fixed validation graphs (built once)."""
        if self._val_cache is None:
            cfg = self.cfg
            if hasattr(self, "val_idx"):
                ks = range(min(len(self.val_idx), cfg["val_max_graphs"]))
                self._val_cache = [self._shard_graph(self.val_idx, k) for k in ks]
            else:
                from mingraph.graphs.build import field_graph

                tiles = self.val_tiles[: cfg["val_max_graphs"]]
                self._val_cache = [
                    field_graph(
                        self.ds.field(t),
                        t,
                        cfg["val_fraction"],
                        0,
                        "random",
                        cfg["seed"] + 1_000_003,
                        cfg["lift"],
                        self.encoder,
                        cfg["eds_edges"],
                        cfg["k"],
                    )[0]
                    for t in tiles
                ]
        return self._val_cache


def batch_loss(
    model: GATModel, graphs: list[StructuredGraph], backend: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy over labelled valid pixels and EDS nodes; also returns pixel logits and labels."""
    b = to_tensors(batch_graphs(graphs), device)
    pix, eds = model(b, backend=backend)
    logits = torch.cat([pix.reshape(-1, pix.shape[-1]), eds])
    target = (
        torch.cat([b.labels.reshape(-1), b.eds_labels]) if b.eds_labels is not None else b.labels.reshape(-1)
    )
    if (target >= 0).sum() == 0:
        return logits.sum() * 0.0, pix, b.labels
    return F.cross_entropy(logits, target, ignore_index=-1), pix, b.labels


@torch.no_grad()
def validate(
    model: GATModel, graphs: list[StructuredGraph], cfg: dict, device: torch.device, n_classes: int
) -> dict:
    """Loss and pixel scores over the validation graphs."""
    model.eval()
    cm = np.zeros((n_classes, n_classes), np.int64)
    losses = []
    for i in range(0, len(graphs), cfg["batch_size"]):
        chunk = graphs[i : i + cfg["batch_size"]]
        for same in ([chunk[i] for i in ids] for ids in size_groups(chunk)):
            loss, pix, lab = batch_loss(model, same, cfg["backend"], device)
            losses.append(float(loss) * len(same))
            cm += confusion(lab.cpu().numpy(), pix.argmax(-1).cpu().numpy(), n_classes)
    s = scores(cm)
    return {
        "val_loss": sum(losses) / max(len(graphs), 1),
        "val_f1_weighted": s["f1_weighted"],
        "val_f1_macro": s["f1_macro"],
        "val_accuracy": s["accuracy"],
    }


def load_config(path: str | os.PathLike | None, overrides: dict | None = None) -> dict:
    """DEFAULT_CONFIG updated from a JSON file and overrides; unknown keys are refused."""
    cfg = dict(DEFAULT_CONFIG)
    if path is not None:
        p = Path(path)
        from mingraph.common.textfiles import read_json_input

        user = read_json_input(p, "config")
        if not isinstance(user, dict):
            raise InputError(p, "config", "expected a JSON object {key: value, ...}")
        unknown = set(user) - set(DEFAULT_CONFIG)
        if unknown:
            raise InputError(p, "config", f"unknown keys {sorted(unknown)}; known: {sorted(DEFAULT_CONFIG)}")
        cfg.update(user)
    cfg.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if cfg["backend"] not in ("structured", "sparse", "dgl"):
        raise InputError("config", "backend", f"expected structured, sparse or dgl, got {cfg['backend']!r}")
    if cfg["eds_edges"] not in ("delaunay", "knn"):
        raise InputError("config", "eds_edges", f"expected delaunay or knn, got {cfg['eds_edges']!r}")
    return cfg


def train(
    run: str | os.PathLike,
    shards: str | os.PathLike | None = None,
    online: str | os.PathLike | None = None,
    config: str | os.PathLike | dict | None = None,
    resume: bool = False,
    progress: bool = True,
    **overrides,
) -> dict:
    """Train (or resume) a run; returns the last epoch's metrics."""
    from tqdm import tqdm

    from mingraph.spectra.encoder import encoder_from_blob, load_encoder

    run = Path(run)
    ckpt_path = run / "last.pt"
    if resume:
        ignored = [
            name
            for name, v in (("SHARDS", shards), ("--online", online), ("--config", config))
            if v is not None
        ]
        ignored += [f"--{k}" for k, v in overrides.items() if v is not None and k != "epochs"]
        if ignored:
            raise InputError(
                run,
                "--resume",
                f"a resumed run keeps its own settings; drop {', '.join(ignored)} (only --epochs may change)",
            )
        if not ckpt_path.is_file():
            raise InputError(run, "--resume", "no last.pt to resume from")
        state = load_artifact(ckpt_path, BUNDLE_FORMAT, BUNDLE_VERSION, "checkpoint")
        cfg = dict(state["config"])
        cfg.update({k: v for k, v in overrides.items() if k == "epochs" and v is not None})
        encoder = (
            None if state.get("encoder") is None else encoder_from_blob(state["encoder"])
        )  # the run's own, not the file's
    else:
        if ckpt_path.exists():
            raise InputError(
                run,
                "--out",
                "this run folder holds a checkpoint (use --resume to continue it, or another --out)",
            )
        cfg = load_config(None, config) if isinstance(config, dict) else load_config(config)
        cfg.update({k: v for k, v in overrides.items() if v is not None})
        cfg["source"] = {
            "shards": None if shards is None else str(Path(shards).resolve()),
            "online": None if online is None else str(Path(online).resolve()),
        }
        if cfg.get("encoder"):
            cfg["encoder"] = str(Path(cfg["encoder"]).resolve())
        encoder = load_encoder(cfg["encoder"]) if cfg.get("encoder") else None
        state = None
    src_cfg = cfg["source"]
    source = _Source(cfg, src_cfg["shards"], src_cfg["online"], encoder)
    encoder = source.encoder
    dist, device = ddp.setup(cfg["device"])
    if cfg.setdefault("world_size", dist.world) != dist.world:
        raise InputError(
            run, "world_size", f"this run trained on {cfg['world_size']} processes; resume on as many"
        )
    class_names = source.class_names or _shard_class_names(source)
    if not source.validation():
        warnings.warn(
            f"{run}: no validation graphs (no 'val' split): best.pt will follow last.pt", stacklevel=2
        )
    torch.manual_seed(cfg["seed"])
    model = GATModel(  # BSE and the EDS features: 1 + 64 embeddings, or 1 + the physics' classes + unknown
        in_channels=1 + source.feature_width,
        hidden_channels=cfg["hidden_channels"],
        num_classes=len(class_names),
        heads=cfg["heads"],
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    start, best = 0, -1.0
    if state is not None:
        model.load_state_dict(state["model_state"])
        opt.load_state_dict(state["optim_state"])
        start, best = int(state["epoch"]) + 1, float(state["best_score"])
    net = ddp.wrap(model, dist, device)  # DistributedDataParallel under torchrun
    progress = progress and dist.main
    run = output_folder(run, "train")
    if dist.main:
        write_text(run / "config.json", json.dumps(cfg, indent=2))
    log_path = run / "metrics.jsonl"
    history = [json.loads(x) for x in log_path.read_text().splitlines()] if log_path.exists() else []
    history = [h for h in history if h["epoch"] < start]  # drop epochs after the checkpoint
    last: dict = history[-1] if history else {}
    for epoch in range(start, cfg["epochs"]):
        model.train()
        t0, seen, total = time.perf_counter(), 0, 0.0
        bar = tqdm(
            source.epoch(epoch, dist),
            desc=f"epoch {epoch + 1}/{cfg['epochs']}",
            unit="batch",
            disable=not progress,
            leave=False,
        )
        with ddp.joined(net):
            for graphs in bar:
                loss, _, _ = batch_loss(net, graphs, cfg["backend"], device)
                opt.zero_grad()
                loss.backward()
                opt.step()
                seen += len(graphs)
                total += float(loss.detach()) * len(graphs)
                bar.set_postfix(
                    loss=f"{float(loss.detach()):.3f}", gps=f"{seen / (time.perf_counter() - t0):.1f}"
                )
        secs = time.perf_counter() - t0
        seen, total = (
            int(v) if i == 0 else v for i, v in enumerate(ddp.all_sum([seen, total], dist, device))
        )
        if not dist.main:  # rank 0 validates and writes
            continue
        last = {
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "graphs": seen,
            "graphs_per_s": seen / secs,
            "seconds": secs,
        }
        last.update(validate(model, source.validation(), cfg, device, len(class_names)))
        history.append(last)
        write_text(log_path, "".join(json.dumps(r) + "\n" for r in history))
        improved = last["val_f1_weighted"] > best or not source.validation()
        best = max(best, last["val_f1_weighted"])
        bundle = make_bundle(model, encoder, class_names, cfg, {"epoch": epoch, "metrics": last})
        ckpt = bundle | {"optim_state": opt.state_dict(), "epoch": epoch, "best_score": best}
        if improved:
            save_artifact(bundle, run / "best.pt")
        save_artifact(ckpt, ckpt_path)
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}: loss {last['train_loss']:.4f}  val F1 {last['val_f1_weighted']:.4f}  {last['graphs_per_s']:.1f} graphs/s"
            )
    # the DDP wrapper (and the last graph through it) hold the process group: free them first
    net = loss = None
    ddp.teardown(dist)
    return last


def _shard_class_names(source: _Source) -> list[str]:
    """Class names of the dataset the shards were built from (recorded in each shard's job)."""
    return list(source.train_idx.shards[0].job["class_names"])
