"""Writing and reading files safely: atomic writes and versioned torch artifacts.

Every file or folder mingraph writes appears whole under its final name or not at all: it is
written under a temporary name in the same folder and renamed (``os.replace`` is atomic on one
file system).  Folders, and what may be replaced, are :mod:`mingraph.common.outputs`'s.  Torch
artifacts (encoders, models, UNets) carry a format name and version that readers check, and are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mingraph.common.errors import InputError
from mingraph.common.output_paths import UMASK, clean_stale, named_os_error, temp_prefix


def _regular_target(path: Path) -> Path:
    """The file to replace for ``path``: a link is followed to its target, never replaced itself."""
    if path.is_symlink():
        target = path.resolve()
        if not target.is_file():
            raise InputError(path, "output", f"is a symbolic link to {target}, which is not a regular file")
        return target
    if os.path.lexists(path) and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a device, socket or pipe)"
        raise InputError(path, "output", f"exists and is {kind}; never replaced by a file")
    return path


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    A symbolic link is followed (its target is replaced, the link kept); a folder, device node,
    socket or pipe is never replaced.  Operating-system errors name ``path``.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_file(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("x")
    >>> (d / "a.txt").read_text()
    'x'
    """
    path = _regular_target(Path(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path, "tmp"), dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600 files; outputs get the usual permissions
    except OSError as e:
        raise named_os_error(e, path) from None
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise named_os_error(e, path, Path(tmp)) from None
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
    (:func:`mingraph.common.escapes.csv_cell`); numbers, and text that is a number, are written as
    they are. mingraph's own readers take the ``'`` off again.
    """
    from mingraph.common.escapes import csv_cell

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
    """``torch.save`` a dictionary atomically.

    The dictionary is serialised in memory first, so a full or read-only disk gives an
    ``OSError`` naming ``path`` (torch's own writer reports it as a ``RuntimeError``)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_bytes(path, buf.getvalue())


def check_artifact_output(path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Refuse, before any work, to write a model or encoder file over a file mingraph did not write.

    An existing ``path`` may be replaced only when it is a mingraph artifact (its ``format``
    starts with ``mingraph-``) and ``overwrite``; a link is followed to its target.

    Raises
    ------
    InputError
        ``path`` exists and is not a mingraph artifact, or is not a regular file.

    Examples
    --------
    >>> check_artifact_output("/nonexistent/model.pt").name
    'model.pt'
    """
    import torch

    path = _regular_target(Path(path))
    if path.is_file():
        try:
            old = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            ours = isinstance(old, dict) and str(old.get("format", "")).startswith("mingraph-")
        except Exception:
            ours = False
        if not ours:
            raise InputError(path, "output", "exists and was not written by mingraph; never replaced")
        if not overwrite:
            raise InputError(path, "output", "already exists")
    return path


def check_new_file(path: str | os.PathLike) -> Path:
    """Refuse, before any work, an output file name that exists in any form (file, folder, link,
    dangling link, device): for outputs whose ownership cannot be told (a picture), nothing is
    ever replaced.

    Raises
    ------
    InputError
        ``path`` exists.

    Examples
    --------
    >>> check_new_file("/nonexistent/spectrum.png").name
    'spectrum.png'
    """
    p = Path(path)
    if os.path.lexists(p):
        raise InputError(p, "output", "already exists; never replaced (give a new file name)")
    return p


def check_table_output(path: str | os.PathLike, producer: str, overwrite: bool = False) -> tuple[Path, Path]:
    """Refuse, before any work, to write a table (and its ``.json`` record) over files mingraph did not write.

    A table output is ``path`` plus its record ``path.with_suffix(".json")``.  An existing pair
    may be replaced only with ``overwrite`` and only when the record names ``producer`` and
    the table's bytes still have the digest the record holds (a table a person has edited since
    is theirs; a record whose table is gone may be replaced).  A link is followed to its target; folders and device nodes are never replaced.

    Parameters
    ----------
    path : path-like
        The table (``.csv``) to write.
    producer : str
        The command that writes it, e.g. ``"mingraph classify-spectra"``.
    overwrite : bool
        Whether a table this producer wrote may be replaced.

    Returns
    -------
    (Path, Path)
        The table and record paths to write (link targets resolved).

    Raises
    ------
    InputError
        Either file exists and is not this producer's unedited output, or ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> check_table_output(d / "t.csv", "mingraph classify-spectra")[1].name
    't.json'
    >>> _ = (d / "t.csv").write_text("a,b\\n")
    >>> check_table_output(d / "t.csv", "mingraph classify-spectra", overwrite=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mingraph.common.errors.InputError: ...t.csv: output: exists and was not written by mingraph classify-spectra; never replaced
    """
    table = _regular_target(Path(path))
    record = _regular_target(table.with_suffix(".json"))
    if table.suffix.lower() == ".json":
        raise InputError(path, "output", "expected a .csv table name (its .json record goes beside it)")
    if not (table.exists() or record.exists()):
        return table, record
    try:
        rec = json.loads(record.read_text(encoding="utf-8"))
        ours = rec.get("producer") == producer and (
            not table.exists() or rec.get("table_digest") == file_digest(table)
        )
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        culprit = table if table.exists() else record
        raise InputError(culprit, "output", f"exists and was not written by {producer}; never replaced")
    if not overwrite:
        raise InputError(table, "output", "already exists (give --overwrite to replace it)")
    return table, record


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


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (first 16 hex digits), read in 1 MiB blocks.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a"
    >>> _ = p.write_bytes(b"abc")
    >>> file_digest(p)
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
