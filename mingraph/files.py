"""Writing and reading files safely: atomic writes and versioned torch artifacts.

Every file or folder mingraph writes appears whole under its final name or not at all: it is
written under a temporary name in the same folder and renamed (``os.replace`` is atomic on one
file system).  Torch artifacts (encoders, models, UNets) carry a format name and version that
readers check, and are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mingraph.errors import InputError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(out: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; it replaces ``out`` if the block succeeds.

    An existing ``out`` is refused unless ``overwrite``.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(out, "output", "already exists (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        old = None
        if out.exists():  # moved aside first: the old folder stays whole until the new is in place
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_csv(path: str | os.PathLike, rows: list[list[Any]]) -> Path:
    """Write a table (header row first) as CSV, atomically.

    Text cells that a spreadsheet would take for a formula (starting with ``=``, ``+``, ``-``,
    ``@``, tab or a line break; a mineral or field name from a user's file) get a leading ``'``
    (:func:`mingraph.escapes.csv_cell`); numbers, and text that is a number, are written as
    they are. mingraph's own readers take the ``'`` off again.
    """
    from mingraph.escapes import csv_cell

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([csv_cell(c) for c in r] for r in rows)
    return write_text(path, buf.getvalue())


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100, **kwargs: Any) -> Path:
    """Render a matplotlib figure to PNG atomically and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **kwargs)
    plt.close(fig)
    return write_bytes(path, buf.getvalue())


def save_artifact(obj: dict, path: str | os.PathLike) -> Path:
    """``torch.save`` a dictionary atomically."""
    import torch

    with atomic_file(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_artifact(path: str | os.PathLike, fmt: str, version: int, what: str) -> dict:
    """Load a torch artifact, checking that it exists, is readable and has this format and version."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, what, "file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(path, what, f"unreadable ({type(e).__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise InputError(path, "format", f"not a {fmt} file")
    if obj.get("version") != version:
        raise InputError(path, "version", f"expected {version}, got {obj.get('version')}")
    return obj
