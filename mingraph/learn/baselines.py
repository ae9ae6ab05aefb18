"""The BSE-only UNet the GAT must beat (the paper's baseline): the network, its training, its file.

The other baselines need no network of their own: nearest-EDS labelling is
:func:`mingraph_kernels.nearest.nearest_eds_labels`, the classical ones are in
:mod:`mingraph.learn.classical`, and the kNN-graph GAT (the paper's Fig. 10 ablation) is the GAT
trained with ``eds_edges = "knn"``; :mod:`mingraph.analyse.methods` scores them all as methods.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mingraph.common.errors import InputError
from mingraph.common.files import load_artifact, save_artifact
from mingraph.learn.class_weights import frequency_weights

UNET_FORMAT = "mingraph-unet"
UNET_VERSION = 1


def _block(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(a, b, 3, padding=1),
        nn.BatchNorm2d(b),
        nn.ReLU(inplace=True),
        nn.Conv2d(b, b, 3, padding=1),
        nn.BatchNorm2d(b),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A compact UNet (Ronneberger et al. 2015): BSE (1 channel) -> class logits, any image size."""

    def __init__(self, n_classes: int, base: int = 16, depth: int = 3):
        super().__init__()
        chans = [base * 2**i for i in range(depth + 1)]
        self.config = {"n_classes": n_classes, "base": base, "depth": depth}
        self.down = nn.ModuleList(
            [_block(1, chans[0])] + [_block(chans[i], chans[i + 1]) for i in range(depth)]
        )
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))]
        )
        self.merge = nn.ModuleList([_block(2 * chans[i], chans[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], n_classes, 1)
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2**self.depth
        x = F.pad(x, (0, (-w) % m, 0, (-h) % m), mode="reflect" if min(h, w) > 1 else "replicate")
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], 1))
        return self.head(x)[..., :h, :w]


def _class_weights(y: torch.Tensor, n: int, kind: str) -> torch.Tensor | None:
    """Per-class loss weights from the training labels: ``none``, ``sqrt-inverse`` or ``inverse`` frequency.

    Weights are normalised to a support-weighted mean of 1 and capped at 50× the smallest, so that a
    class seen on a handful of pixels cannot dominate the loss (the usual median-frequency
    balancing of Eigen & Fergus 2015, softened by the square root).
    """
    if kind == "none":
        return None
    counts = torch.bincount(y[y >= 0], minlength=n).numpy()
    return frequency_weights(counts, 0.5 if kind == "sqrt-inverse" else 1.0, cap=50.0)


def _augment(xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips and (square tiles) quarter turns: the texture has no preferred direction."""
    if torch.rand((), generator=gen) < 0.5:
        xb, yb = xb.flip(-1), yb.flip(-1)
    if torch.rand((), generator=gen) < 0.5:
        xb, yb = xb.flip(-2), yb.flip(-2)
    if xb.shape[-1] == xb.shape[-2]:
        k = int(torch.randint(4, (), generator=gen))
        xb, yb = xb.rot90(k, (-2, -1)), yb.rot90(k, (-2, -1))
    return xb, yb


def _stack(tiles) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.stack([t.bse for t in tiles]))[:, None]
    y = torch.as_tensor(np.stack([np.where(t.valid, t.labels, -1) for t in tiles]).astype(np.int64))
    return x, y


@torch.no_grad()
def _val_scores(net: UNet, x: torch.Tensor, y: torch.Tensor, n: int) -> tuple[float, float]:
    """Pooled support-weighted and macro F1 of the UNet on the validation tiles."""
    from mingraph.common.metrics import confusion, scores

    net.eval()
    cm = np.zeros((n, n), np.int64)
    for i in range(0, len(x), 16):
        pred = net(x[i : i + 16]).argmax(1).numpy()
        cm += confusion(y[i : i + 16].numpy(), pred, n)
    s = scores(cm)
    return float(s["f1_weighted"]), float(s["f1_macro"])


def _labelled_tiles(ds, split: str, max_tiles: int | None) -> list:
    idx = ds.indices(split)
    idx = idx[:max_tiles] if max_tiles else idx
    return [t for t in (ds.field(i) for i in idx) if t.labels is not None]


def train_unet(
    dataset,
    out: str | os.PathLike,
    epochs: int = 40,
    batch: int = 8,
    lr: float = 2e-3,
    seed: int = 0,
    max_tiles: int | None = None,
    progress: bool = True,
    class_weight: str = "sqrt-inverse",
    patience: int = 8,
    val_max_tiles: int | None = 64,
) -> Path:
    """Train the BSE-only UNet on the training split, keep the epoch best on the validation split.

    Loss: pixel cross-entropy over valid labelled pixels, weighted per class by ``class_weight``
    (``none``, ``sqrt-inverse`` (default) or ``inverse`` training frequency) so that minor phases
    are learnt rather than painted over by the majority classes.  AdamW with a cosine learning-rate
    schedule over ``epochs``; random flips and quarter turns.  After every epoch the pooled
    weighted and macro F1 on up to ``val_max_tiles`` validation tiles are measured; the saved model
    is the epoch with the best mean of the two, and training stops early after ``patience`` epochs
    without improvement (converged).  Without a validation split the last epoch is kept.  The
    per-epoch history is stored in the file (``history``).

    Raises InputError when the dataset has no labelled training tile or tiles of unequal size.
    """
    from tqdm import tqdm

    from mingraph.acquire.dataset import open_dataset

    if class_weight not in ("none", "sqrt-inverse", "inverse"):
        raise InputError(
            "train-unet", "class_weight", f"expected none, sqrt-inverse or inverse, got {class_weight!r}"
        )
    ds = open_dataset(dataset) if not hasattr(dataset, "field") else dataset
    where = getattr(ds, "path", dataset)
    tiles = _labelled_tiles(ds, "train", max_tiles)
    if not tiles:
        raise InputError(where, "labels", "no labelled training tiles for the UNet")
    val = _labelled_tiles(ds, "val", val_max_tiles)
    shapes = {t.shape for t in tiles + val}
    if len(shapes) != 1:
        raise InputError(
            where, "tiles", f"the UNet baseline trains on equal-size tiles, got {sorted(shapes)}"
        )
    n = len(ds.class_names)
    x, y = _stack(tiles)
    xv, yv = _stack(val) if val else (None, None)
    torch.manual_seed(seed)
    net = UNet(n)
    weight = _class_weights(y, n, class_weight)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * -(-len(tiles) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    best, best_state, since = -1.0, None, 0
    for epoch in tqdm(range(epochs), desc="unet", unit="epoch", disable=not progress):
        net.train()
        perm = torch.randperm(len(tiles), generator=gen)
        total = 0.0
        for i in range(0, len(tiles), batch):
            xb, yb = _augment(x[perm[i : i + batch]], y[perm[i : i + batch]], gen)
            loss = F.cross_entropy(net(xb), yb, weight=weight, ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(xb)
        rec = {"epoch": epoch + 1, "loss": total / len(tiles)}
        if xv is not None:
            rec["val_f1_weighted"], rec["val_f1_macro"] = _val_scores(net, xv, yv, n)
            score = (rec["val_f1_weighted"] + rec["val_f1_macro"]) / 2
        else:
            score = float(epoch)
        history.append(rec)
        if score > best:
            best, since = score, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            since += 1
            if since >= patience:
                break
    return save_artifact(
        {
            "format": UNET_FORMAT,
            "version": UNET_VERSION,
            "config": net.config,
            "state": best_state,
            "class_names": ds.class_names,
            "history": history,
            "train": {
                "class_weight": class_weight,
                "lr": lr,
                "batch": batch,
                "tiles": len(tiles),
                "val_tiles": len(val),
            },
        },
        out,
    )


def load_unet(path: str | os.PathLike) -> tuple[UNet, list[str]]:
    """Read a UNet saved by :func:`train_unet`."""
    obj = load_artifact(path, UNET_FORMAT, UNET_VERSION, "unet")
    net = UNet(**obj["config"])
    net.load_state_dict(obj["state"])
    return net.eval(), list(obj["class_names"])


@torch.no_grad()
def predict_unet(net: UNet, bse: np.ndarray) -> np.ndarray:
    """Class map of one BSE image."""
    return net(torch.as_tensor(bse, dtype=torch.float32)[None, None]).argmax(1)[0].numpy()
