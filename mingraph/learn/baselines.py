"""Baselines the GAT must beat: a UNet on BSE alone (the paper's) and nearest-EDS labelling.

Nearest-EDS labelling is what a user can do without any fusion: classify each measured spectrum
and give every pixel the class of its nearest EDS point (a Voronoi map).  The kNN-graph GAT
(the paper's Fig. 10 ablation) is the GAT trained with ``eds_edges = "knn"``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mingraph.errors import InputError
from mingraph.files import load_artifact, save_artifact
from mingraph.graphs.structure import StructuredGraph

UNET_FORMAT = "mingraph-unet"
UNET_VERSION = 1


def nearest_eds_labels(graph: StructuredGraph, eds_classes: np.ndarray) -> np.ndarray:
    """Each pixel takes the class of its nearest EDS point; -1 everywhere when there is none."""
    if graph.n_eds == 0:
        return np.full((graph.height, graph.width), -1, np.int64)
    eds_classes = np.asarray(eds_classes, dtype=np.int64)
    if eds_classes.shape != (graph.n_eds,):
        raise ValueError(f"expected {graph.n_eds} EDS classes, got shape {eds_classes.shape}")
    return eds_classes[graph.nearest_eds]


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


def train_unet(
    dataset,
    out: str | os.PathLike,
    epochs: int = 20,
    batch: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    max_tiles: int | None = None,
    progress: bool = True,
) -> Path:
    """Train the BSE-only UNet on the training split (valid, labelled pixels) and save it."""
    from tqdm import tqdm

    from mingraph.acquire.dataset import open_dataset

    ds = open_dataset(dataset) if not hasattr(dataset, "field") else dataset
    idx = ds.indices("train")[:max_tiles] if max_tiles else ds.indices("train")
    tiles = [ds.field(i) for i in idx]
    tiles = [t for t in tiles if t.labels is not None]
    if not tiles:
        raise InputError(getattr(ds, "path", dataset), "labels", "no labelled training tiles for the UNet")
    shapes = {t.shape for t in tiles}
    if len(shapes) != 1:
        raise InputError(
            getattr(ds, "path", dataset),
            "tiles",
            f"the UNet baseline trains on equal-size tiles, got {sorted(shapes)}",
        )
    x = torch.as_tensor(np.stack([t.bse for t in tiles]))[:, None]
    y = torch.as_tensor(np.stack([np.where(t.valid, t.labels, -1) for t in tiles]).astype(np.int64))
    torch.manual_seed(seed)
    net = UNet(len(ds.class_names))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(epochs), desc="unet", unit="epoch", disable=not progress):
        net.train()
        perm = torch.randperm(len(tiles), generator=gen)
        for i in range(0, len(tiles), batch):
            b = perm[i : i + batch]
            xb, yb = x[b], y[b]
            if torch.rand((), generator=gen) < 0.5:  # flips: the texture has no preferred direction
                xb, yb = xb.flip(-1), yb.flip(-1)
            loss = F.cross_entropy(net(xb), yb, ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return save_artifact(
        {
            "format": UNET_FORMAT,
            "version": UNET_VERSION,
            "config": net.config,
            "state": net.state_dict(),
            "class_names": ds.class_names,
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
