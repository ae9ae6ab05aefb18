"""Helpers shared by the command-line modules: the error contract and option parsing."""

from __future__ import annotations

import errno
import functools
import sys
from pathlib import Path

import click

from mingraph.common.errors import InputError
from mingraph.common.outputs import protect

OUTPUT_OPTIONS = ("out", "docs")  # the commands' output paths; every other path is an input
_CAUSES = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "name too long",
    errno.EEXIST: "already exists (another run wrote it meanwhile)",
    errno.ENOTEMPTY: "not empty (another run wrote it meanwhile)",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "is a folder",
    errno.EBUSY: "busy (a mount point or in use)",
    errno.EXDEV: "on another file system than its temporary",
    errno.EIO: "input/output error",
}


def os_error_line(e: OSError) -> str:
    """One line for an operating-system error: the path, then the cause in plain words.

    Examples
    --------
    >>> import errno, os
    >>> os_error_line(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out/a.tif"))
    '/data/out/a.tif: no space left on device'
    """
    cause = _CAUSES.get(e.errno, (e.strerror or str(e)).lower())
    path = e.filename if e.filename is not None else "(file system)"
    if e.filename2 is not None:
        path = f"{path} -> {e.filename2}"
    return f"{path}: {cause}"


def _inputs(kwargs: dict) -> list:
    paths = []
    for name, v in kwargs.items():
        if name in OUTPUT_OPTIONS:
            continue
        for p in v if isinstance(v, list | tuple) else [v]:
            if isinstance(p, Path):
                paths.append(p)
    return paths


def _error_line(text: str) -> None:
    """Print ``error: TEXT`` on a line of its own (after closing any progress bar left open by
    the failure, so the line never continues a bar) and exit with status 2."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    click.echo(f"error: {text}", err=True)
    sys.exit(2)


def user_errors(fn):
    """Turn InputError and operating-system errors into one line and exit status 2 (no traceback).

    Every path option of the command except its outputs (:data:`OUTPUT_OPTIONS`) is an input
    that no output may replace (:func:`mingraph.common.outputs.protect`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with protect(_inputs(kwargs)):
                return fn(*args, **kwargs)
        except InputError as e:
            _error_line(str(e))
        except OSError as e:
            _error_line(os_error_line(e))

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
    --fraction, --pattern, --seed, --block, --device, --classifier and --beam-kev (they arrive as
    keyword arguments)."""
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
    return with_options(f, opts + CLASSIFIER_OPTIONS)


CLASSIFIER_OPTIONS = [
    click.option(
        "--classifier",
        type=click.Choice(["physics", "encoder", "onnx"]),
        help="Point classifier: physics (no training; any --minerals list), the model's encoder, or "
        "the authors' ONNX encoder of a converted model. Default: physics for measured spectra, "
        "encoder for simulated ones.",
    ),
    click.option(
        "--beam-kev",
        type=click.FloatRange(1, 30),
        help="Beam energy in kV for the physics classifier (default: what the spectrum file states).",
    ),
]
"""--classifier and --beam-kev: the point classifier of every command that classifies measured
spectra (``predict``, ``predict-sample``, ``acquire``; ``build-graphs`` takes --beam-kev, and a
--classifier of its own whose default keeps its shards as before the option)."""


def classifier_options(f):
    """``f`` with :data:`CLASSIFIER_OPTIONS` (they arrive as keyword arguments)."""
    return with_options(f, CLASSIFIER_OPTIONS)


def with_options(f, opts: list):
    """``f`` decorated by click options, the first of ``opts`` shown first in --help."""
    for o in reversed(opts):
        f = o(f)
    return f
