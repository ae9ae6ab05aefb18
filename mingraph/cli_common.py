"""Helpers shared by the command-line modules: the error contract and option parsing."""

from __future__ import annotations

import functools
import sys

import click

from mingraph.errors import InputError


def user_errors(fn):
    """Turn InputError into a one-line message and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return wrapper


def parse_fractions(value: str) -> list[float]:
    try:
        out = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated fractions, got {value!r}") from None
    if not out or any(not 0 <= f <= 1 for f in out):
        raise click.BadParameter(f"fractions must lie in [0, 1], got {value!r}")
    return out


def predict_options(f):
    """The options of commands that predict fields (``predict``, ``predict-sample``): --model,
    --fraction, --pattern, --seed, --block and --device (they arrive as keyword arguments)."""
    from pathlib import Path

    opts = [
        click.option(
            "--model",
            type=click.Path(path_type=Path),
            help="Model file or run folder (default: the shipped model).",
        ),
        click.option(
            "--fraction",
            type=click.FloatRange(0, 1),
            default=0.01,
            show_default=True,
            help="EDS fraction to sample (random/grid patterns).",
        ),
        click.option(
            "--pattern", type=click.Choice(["random", "grid", "mask"]), default="random", show_default=True
        ),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option(
            "--block",
            type=click.IntRange(min=16),
            default=1024,
            show_default=True,
            help="Block size for large fields.",
        ),
        click.option(
            "--device",
            default="auto",
            show_default=True,
            help="Where the model runs: cpu, cuda, cuda:N, or auto (CUDA when present).",
        ),
    ]
    return with_options(f, opts)


def with_options(f, opts: list):
    """``f`` decorated by click options, the first of ``opts`` shown first in --help."""
    for o in reversed(opts):
        f = o(f)
    return f
