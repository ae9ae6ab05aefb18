"""Spectral encoders: a raw 3000-channel EDS spectrum -> 64 values (the GAT's EDS node features).

The paper uses a 1-D CNN on channels 20–1555 (0.2–15.56 keV) trained to classify spectra; its
authors released it as ONNX, run here as kind ``onnx`` (``onnx_encoder.py``: raw counts in, its
own standardisation).  For other data we train our own (``fit_cnn``), with PCA (``fit_pca``) as
a fast alternative.  Both share one count normalisation: spectra are scaled to unit total counts (so
dwell time does not matter) and square-rooted (Poisson variance stabilisation).  An encoder is
saved as one artifact holding its kind, normalisation, channel window and weights.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mingraph.acquire.fields import N_CHANNELS, check_counts
from mingraph.common.errors import InputError
from mingraph.common.files import load_artifact, save_artifact
from mingraph.spectra.onnx_runtime import onnx_embed
from mingraph.spectra.window import CH_HI, CH_LO, EMBED_DIM

ARTIFACT_FORMAT = "mingraph-encoder"
ARTIFACT_VERSION = 1


def normalise_counts(spectra: np.ndarray | torch.Tensor, lo: int = CH_LO, hi: int = CH_HI) -> torch.Tensor:
    """Window to channels [lo, hi), scale each spectrum to unit total, then sqrt (float32 tensor).

    Counts as read (uint8/uint16 from a TIMA map, float32) are windowed before they are made
    float32, so only the window's channels are copied."""
    if not torch.is_tensor(spectra):
        a = np.asarray(spectra)
        spectra = np.array(a.reshape(-1, a.shape[-1])[:, lo:hi], dtype=np.float32, order="C")
        x = torch.from_numpy(spectra)
    else:
        x = torch.as_tensor(spectra, dtype=torch.float32)
        x = x.reshape(-1, x.shape[-1])[:, lo:hi]
    total = x.sum(1, keepdim=True).clamp_min(1.0)
    return torch.sqrt(x / total * (hi - lo))


class SpectrumCNN(nn.Module):
    """1-D CNN: normalised spectrum window -> 64-value embedding (a linear head classifies in training).

    The window is first summed into 40 eV bins (the detector resolution is ~130 eV, so no peak is
    lost), then two convolution blocks and a linear projection: small enough to embed thousands
    of spectra a second on one CPU core, which build-graphs and online training need.
    """

    BIN = 4

    def __init__(self, n_in: int = CH_HI - CH_LO, dim: int = EMBED_DIM, n_classes: int = 0):
        super().__init__()
        self.features = nn.Sequential(
            nn.AvgPool1d(self.BIN),
            nn.Conv1d(1, 16, kernel_size=7, padding=3),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.MaxPool1d(4),
            nn.Conv1d(16, 32, kernel_size=5, padding=2),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.MaxPool1d(4),
        )
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, 1, n_in)).numel()
        self.project = nn.Sequential(nn.Flatten(), nn.Linear(n_flat, dim))
        self.head = nn.Linear(dim, n_classes) if n_classes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(x[:, None, :]))


@dataclass
class Encoder:
    """A fitted encoder: ``embed`` maps raw spectra (n, 3000) to float32 embeddings (n, 64)."""

    kind: str  # "pca" | "cnn" | "onnx" (spectra/onnx_encoder.py: raw counts in, no normalisation)
    state: dict
    n_classes: int = 0
    meta: dict = field(default_factory=dict)
    _net: object = field(default=None, repr=False)  # the CNN, or the onnxruntime session

    def embed(self, spectra: np.ndarray, batch: int = 4096) -> np.ndarray:
        """Embeddings of raw count spectra; refuses NaN or negative counts."""
        spectra = np.asarray(spectra)
        if spectra.ndim != 2 or spectra.shape[1] != N_CHANNELS:
            raise InputError("encoder", "spectra", f"expected shape (n, {N_CHANNELS}), got {spectra.shape}")
        check_counts(spectra, "encoder input", "spectra")
        if spectra.shape[0] == 0:
            return np.zeros((0, EMBED_DIM), np.float32)
        if self.kind == "onnx":
            return onnx_embed(self, spectra, batch)
        x = normalise_counts(spectra)
        if self.kind == "pca":
            z = (x - self.state["mean"]) @ self.state["components"].T / self.state["scale"]
            return z.numpy().astype(np.float32)
        net = self.network()
        with torch.no_grad():
            return (
                torch.cat([net(x[i : i + batch]) for i in range(0, x.shape[0], batch)])
                .numpy()
                .astype(np.float32)
            )

    def network(self) -> SpectrumCNN:
        if self._net is None:
            net = SpectrumCNN(n_classes=self.n_classes)
            net.load_state_dict(self.state)
            net.eval()
            self._net = net
        return self._net

    @property
    def digest(self) -> str:
        """A short content hash, recorded in shards so stale embeddings are detected."""
        buf = io.BytesIO()
        torch.save({"kind": self.kind, "state": self.state}, buf)
        return hashlib.sha256(buf.getvalue()).hexdigest()[:16]


def fit_pca(spectra: np.ndarray, dim: int = EMBED_DIM) -> Encoder:
    """PCA of normalised spectra; components scaled to unit variance. Needs at least 2 spectra."""
    x = normalise_counts(spectra).double()
    if x.shape[0] < 2:
        raise InputError("fit-encoder", "spectra", f"PCA needs at least 2 spectra, got {x.shape[0]}")
    mean = x.mean(0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    k = min(dim, vt.shape[0])
    comps = torch.zeros(dim, x.shape[1], dtype=torch.float64)
    comps[:k] = vt[:k]
    scale = torch.ones(dim, dtype=torch.float64)
    scale[:k] = (s[:k] / np.sqrt(max(x.shape[0] - 1, 1))).clamp_min(1e-8)
    state = {"mean": mean.float(), "components": comps.float(), "scale": scale.float()}
    return Encoder("pca", state, meta={"n_fit": int(x.shape[0])})


def fit_cnn(
    spectra: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    epochs: int = 10,
    batch: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
) -> Encoder:
    """Train the CNN to classify labelled spectra; its 64-value penultimate layer is the embedding."""
    from tqdm import tqdm

    if epochs < 1:
        raise InputError("fit-encoder", "epochs", f"expected at least 1 epoch, got {epochs}")
    labels = np.asarray(labels, dtype=np.int64)
    keep = labels >= 0
    if keep.sum() < 2:
        raise InputError("fit-encoder", "labels", "need at least 2 labelled spectra")
    torch.manual_seed(seed)
    x = normalise_counts(np.asarray(spectra)[keep])
    y = torch.as_tensor(labels[keep])
    net = SpectrumCNN(n_classes=n_classes)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(range(epochs), desc="fit-encoder", unit="epoch", disable=not progress)
    for _ in bar:
        net.train()
        perm = torch.randperm(x.shape[0], generator=gen)
        total, correct = 0.0, 0
        for i in range(0, x.shape[0], batch):
            idx = perm[i : i + batch]
            if idx.numel() < 2:
                continue
            logits = net.head(net(x[idx]))
            loss = nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
            correct += int((logits.argmax(1) == y[idx]).sum())
        bar.set_postfix(loss=f"{total / x.shape[0]:.3f}", acc=f"{correct / x.shape[0]:.3f}")
    net.eval()
    enc = Encoder(
        "cnn",
        {k: v.detach().clone() for k, v in net.state_dict().items()},
        n_classes=n_classes,
        meta={"n_fit": int(x.shape[0]), "epochs": epochs, "train_acc": correct / x.shape[0]},
    )
    return enc


def class_probabilities(enc: Encoder, spectra: np.ndarray) -> np.ndarray:
    """(n, classes) float32 softmax of the CNN encoder's training head for (n, 3000) count spectra:
    the EDS evidence of each measured point (nearest-EDS baseline, fusion model)."""
    if enc.kind != "cnn" or enc.n_classes == 0:
        raise InputError("encoder", "kind", "classification needs a CNN encoder trained with class labels")
    if len(spectra) == 0:
        return np.zeros((0, enc.n_classes), np.float32)
    net = enc.network()
    with torch.no_grad():
        return torch.softmax(net.head(net(normalise_counts(spectra))), 1).numpy().astype(np.float32)


def classify(enc: Encoder, spectra: np.ndarray) -> np.ndarray:
    """(n,) int64 class of each spectrum: the argmax of :func:`class_probabilities`."""
    return class_probabilities(enc, spectra).argmax(1).astype(np.int64)


def encoder_blob(enc: Encoder) -> dict:
    """The encoder as a plain dictionary (saved alone, or inside a model file)."""
    return {
        "kind": enc.kind,
        "state": enc.state,
        "n_classes": enc.n_classes,
        "meta": enc.meta,
        "window": [CH_LO, CH_HI],
    }


def encoder_from_blob(blob: dict) -> Encoder:
    """Inverse of :func:`encoder_blob`; an encoder made for another channel window is refused
    (this version reads channels ``CH_LO:CH_HI`` only)."""
    window = list(blob.get("window", [CH_LO, CH_HI]))
    if window != [CH_LO, CH_HI]:
        raise InputError(
            "encoder", "window", f"expected channels [{CH_LO}, {CH_HI}], this encoder was made for {window}"
        )
    return Encoder(blob["kind"], blob["state"], n_classes=blob.get("n_classes", 0), meta=blob.get("meta", {}))


def save_encoder(enc: Encoder, path: str | os.PathLike) -> Path:
    """Write the encoder artifact atomically."""
    return save_artifact({"format": ARTIFACT_FORMAT, "version": ARTIFACT_VERSION, **encoder_blob(enc)}, path)


def load_encoder(path: str | os.PathLike) -> Encoder:
    """Read an encoder artifact, checking its format."""
    obj = load_artifact(path, ARTIFACT_FORMAT, ARTIFACT_VERSION, "encoder")
    if obj["kind"] not in ("pca", "cnn", "onnx"):
        raise InputError(path, "kind", f"expected pca, cnn or onnx, got {obj['kind']!r}")
    return encoder_from_blob(obj)
