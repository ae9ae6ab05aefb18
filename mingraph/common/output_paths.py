"""Names and paths of outputs: safe folder names, paths kept inside an output, hidden temporaries.

A field's name from a manifest or a dataset becomes a folder name, so it must be one path
component (:func:`safe_name`), and every path built from it must stay inside the output
(:func:`inside`).  Temporaries are hidden, named after their output, this host and this process
(:func:`temp_prefix`), so that a later run can tell a killed run's leftovers from a live run's
(:func:`clean_stale`).  Operating-system errors name what the user asked for, not a temporary
(:func:`named_os_error`).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from mingraph.common.errors import InputError

UMASK = os.umask(0)
os.umask(UMASK)
FOLDER_MODE = 0o777 & ~UMASK  # what mkdir gives under this umask (mkdtemp would give 0700)
_NAME_MAX = 255  # bytes in one path component on ext4, xfs, btrfs, tmpfs (POSIX NAME_MAX)


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:32] or "host"


def _stem(name: str) -> str:
    """A short, safe form of ``name`` for temporary names (a long name must not overflow NAME_MAX)."""
    return name if len(name.encode()) <= 80 else f"{name[:40]}~{abs(hash(name)) % 10**8:08d}"


def temp_prefix(path: Path, what: str, pid: int | None = None) -> str:
    """The hidden temporary prefix for ``path``: ``.NAME.WHAT-HOST-PID-`` (this process by default).

    Examples
    --------
    >>> temp_prefix(Path("/data/out"), "tmp", pid=42).endswith("-42-")
    True
    """
    return f".{_stem(path.name)}.{what}-{_host()}-{os.getpid() if pid is None else pid}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(path: Path) -> None:
    """Remove the hidden temporaries that killed runs on this host left beside ``path``.

    A previous output moved aside by a killed replacement is put back when ``path`` is missing.
    """
    parent = path.parent
    if not parent.is_dir():
        return
    head = f".{_stem(path.name)}."
    for what in ("old", "tmp"):  # put back first, then drop half-written folders
        for p in parent.glob(f"{head}{what}-{_host()}-*"):
            try:
                pid = int(p.name[len(head) :].split("-")[2])
            except (IndexError, ValueError):
                continue
            if _pid_alive(pid):
                continue  # another run is writing it now
            if what == "old" and (p / path.name).exists() and not os.path.lexists(path):
                os.replace(p / path.name, path)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def safe_name(name: str, source: object, field: str = "name") -> str:
    """``name`` if it is usable as one folder name inside an output, else InputError.

    Parameters
    ----------
    name : str
        A field's name from a manifest, a dataset or ``import --name``.
    source, field : object, str
        What to name in the error (the file and its column).

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    InputError
        For an empty name, ``.`` or ``..``, a name holding ``/``, ``\\`` or a NUL, a name that
        starts with ``.`` (hidden; mingraph's temporaries are hidden), or one over 255 bytes.

    Examples
    --------
    >>> safe_name("field_001", "manifest.csv")
    'field_001'
    >>> safe_name("../../victim", "manifest.csv")
    Traceback (most recent call last):
    ...
    mingraph.common.errors.InputError: manifest.csv: name: '../../victim' is not a single folder name (no /, \\, .., leading dot or NUL)
    """
    bad = (
        not isinstance(name, str)
        or not name.strip()
        or name.startswith(".")
        or any(c in name for c in "/\\\0")
        or os.path.isabs(name)
    )
    if bad:
        raise InputError(
            source, field, f"{name!r} is not a single folder name (no /, \\, .., leading dot or NUL)"
        )
    if len(name.encode("utf-8", "surrogateescape")) > _NAME_MAX:
        raise InputError(source, field, f"{name[:40]!r}… is {len(name.encode())} bytes; at most {_NAME_MAX}")
    return name


def inside(root: str | os.PathLike, *parts: str) -> Path:
    """``root / parts``, checked to lie under ``root`` once both are resolved.

    Raises
    ------
    InputError
        When the joined path resolves outside ``root`` (``..``, an absolute part or a link).

    Examples
    --------
    >>> str(inside("/data/out", "fields", "a"))
    '/data/out/fields/a'
    """
    root = Path(root)
    path = root.joinpath(*parts)
    base = root.resolve()
    if not path.resolve().is_relative_to(base):
        raise InputError(root, "output", f"{'/'.join(parts)!r} would be written outside it")
    return path


def named_os_error(e: OSError, path: Path, tmp: Path | None = None) -> OSError:
    """``e`` naming what the user asked for: an error without a file name names ``path``, and a
    name inside the temporary ``tmp`` is given as the same name under ``path``.

    Examples
    --------
    >>> e = OSError(28, "No space left on device", "/d/.out.tmp-h-1-x/a.tif")
    >>> named_os_error(e, Path("/d/out"), Path("/d/.out.tmp-h-1-x")).filename
    '/d/out/a.tif'
    """
    name = e.filename
    if name is None:
        name = str(path)
    elif tmp is not None and (str(name) == str(tmp) or str(name).startswith(str(tmp) + os.sep)):
        name = str(path) + str(name)[len(str(tmp)) :]
    elif tmp is None and os.path.basename(str(name)).startswith(f".{_stem(path.name)}."):
        name = str(path)  # the temporary beside ``path`` could not be made
    if name == e.filename or e.errno is None:
        return e
    return type(e)(e.errno, os.strerror(e.errno), name)
