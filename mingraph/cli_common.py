"""What every command shares: bad input as one line and exit status 2."""

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
