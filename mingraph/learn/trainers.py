"""One entry point per architecture for ``mingraph train``: ``TRAINERS[arch](...)`` with one
signature, whatever the trainer underneath (:mod:`mingraph.learn.train` for the paper's GAT,
:mod:`mingraph.learn.train_fusion` for the fusion model)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from mingraph.common.errors import InputError


class Trainer(Protocol):
    def __call__(
        self,
        run: Path,
        *,
        shards: Path | None,
        online: Path | None,
        config: Path | None,
        encoder: Path | None,
        epochs: int | None,
        resume: bool,
        backend: str | None,
        device: str | None,
    ) -> str:
        """Train (or resume) into ``run``; returns the one-line summary the command prints."""


def train_paper(run, *, shards, online, config, encoder, epochs, resume, backend, device) -> str:
    """The paper's GAT on Arrow shards or online draws (:func:`mingraph.learn.train.train`)."""
    from mingraph.learn.train import train

    last = train(
        run,
        shards,
        online,
        config,
        resume,
        epochs=epochs,
        encoder=None if encoder is None else str(encoder),
        backend=backend,
        device=device,
    )
    return (
        f"done: epoch {last.get('epoch', -1) + 1}, val F1 {last.get('val_f1_weighted', float('nan')):.4f}; "
        f"checkpoints in {run}"
    )


def train_fusion_model(run, *, shards, online, config, encoder, epochs, resume, backend, device) -> str:
    """The fusion model, online on a raw dataset (:func:`mingraph.learn.train_fusion.train_fusion`)."""
    from mingraph.learn.train_fusion import train_fusion

    if shards is not None or config or backend or device:
        raise InputError(
            "train", "--arch fusion", "takes --online DATASET, --encoder, --epochs and --resume only"
        )
    last = train_fusion(run, online, encoder, resume=resume, epochs=epochs)
    return f"done: epoch {last['epoch']}, validation {last['val_selection']:.4f}; in {run}"


TRAINERS: dict[str, Trainer] = {"paper": train_paper, "fusion": train_fusion_model}
"""``arch`` -> its trainer (the same keys as :data:`mingraph.learn.registry.MODELS`)."""
