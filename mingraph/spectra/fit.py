"""Labelled point spectra drawn from a dataset's training split (for fitting encoders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mingraph.acquire.dataset import open_dataset
from mingraph.common.errors import InputError


def labelled_spectra(
    dataset, split: str = "train", points_per_tile: int = 200, seed: int = 0, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Spectra (n, 3000) and their pixel labels at random valid, labelled pixels of one split."""
    from tqdm import tqdm

    ds = open_dataset(dataset) if not hasattr(dataset, "field") else dataset
    xs, ys = [], []
    for i in tqdm(ds.indices(split), desc=f"spectra ({split})", unit="tile", disable=not progress):
        s = ds.field(i)
        if s.labels is None:
            continue
        keep = (s.labels >= 0) & s.valid
        measured = getattr(s.eds, "measured_mask", None)  # point spectra: only where measured
        if measured is not None:
            keep &= measured
        ok = np.flatnonzero(keep)
        if ok.size == 0:
            continue
        rng = np.random.default_rng([seed, i])
        pick = rng.choice(ok, size=min(points_per_tile, ok.size), replace=False)
        r, c = np.divmod(pick, s.shape[1])
        xs.append(s.eds.spectra(r, c))
        ys.append(s.labels[r, c])
    if not xs:
        if not ds.indices(split):
            counts = ", ".join(f"{k} {ds.splits.count(k)}" for k in ("train", "val", "test"))
            raise InputError(
                getattr(ds, "path", dataset),
                split,
                f"no field in the {split} split ({counts}): import fields with --split {split}, "
                "or more fields for the 80/10/10 split by field",
            )
        raise InputError(getattr(ds, "path", dataset), split, "no labelled pixels to draw spectra from")
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def fit_encoder_on_dataset(
    dataset, out, kind: str = "cnn", points_per_tile: int = 200, epochs: int = 8, seed: int = 0
) -> Path:
    """Fit a CNN or PCA encoder on the training split and save the artifact to ``out``."""
    from mingraph.spectra.encoder import fit_cnn, fit_pca, save_encoder

    ds = open_dataset(dataset)
    x, y = labelled_spectra(ds, "train", points_per_tile, seed)
    enc = fit_pca(x) if kind == "pca" else fit_cnn(x, y, len(ds.class_names), epochs=epochs, seed=seed)
    enc.meta.update(
        {"dataset": str(ds.path), "points_per_tile": points_per_tile, "class_names": ds.class_names}
    )
    return save_encoder(enc, out)
