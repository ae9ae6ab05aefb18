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
        recipe: Path | None = None,
        settings: dict | None = None,
    ) -> str:
        """Train (or resume) into ``run``; returns the one-line summary the command prints.

        ``recipe`` (a recipe file) and ``settings`` (recipe keys from options) are the fusion
        trainer's (:mod:`mingraph.learn.recipe`); the paper's refuses them."""


DEFAULT_EPOCHS = {"paper": 120, "fusion": 6}
"""``--epochs`` when none is given (and no recipe sets it), per architecture; tests/test_train_fusion.py
checks these against each trainer's own defaults."""


def train_paper(
    run, *, shards, online, config, encoder, epochs, resume, backend, device, recipe=None, settings=None
) -> str:
    """The paper's GAT on Arrow shards or online draws (:func:`mingraph.learn.train.train`)."""
    from mingraph.learn.train import train

    given = sorted(k for k, v in (settings or {}).items() if v is not None)
    if recipe is not None or given:
        what = "--recipe" if recipe is not None else ", ".join(f"--{k.replace('_', '-')}" for k in given)
        raise InputError(
            "train", "--arch paper", f"{what} are the fusion model's (--arch fusion); use --config"
        )

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


def train_fusion_model(
    run, *, shards, online, config, encoder, epochs, resume, backend, device, recipe=None, settings=None
) -> str:
    """The fusion model, online on a raw dataset or a recipe's fields
    (:func:`mingraph.learn.train_fusion.train_fusion`)."""
    from mingraph.learn.recipe import load_recipe
    from mingraph.learn.train_fusion import train_fusion

    if shards is not None or config or backend:
        raise InputError(
            "train",
            "--arch fusion",
            "takes --recipe, --online DATASET, --encoder, the recipe options and --resume "
            "(not SHARDS, --config or --backend)",
        )
    if resume and recipe is not None:
        raise InputError(recipe, "--recipe", "a resumed run keeps its own recipe; drop --recipe")
    rec = None if recipe is None else load_recipe(recipe)
    last = train_fusion(
        run, online, encoder, resume=resume, recipe=rec, epochs=epochs, device=device, **(settings or {})
    )
    return f"done: epoch {last['epoch']}, validation {last['val_selection']:.4f}; in {run}"


TRAINERS: dict[str, Trainer] = {"paper": train_paper, "fusion": train_fusion_model}
"""``arch`` -> its trainer (the same keys as :data:`mingraph.learn.registry.MODELS`)."""
