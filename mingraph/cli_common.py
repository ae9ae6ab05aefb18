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
