"""Output folders that own only what they wrote: markers, the ``--overwrite`` rule, safe names.

mingraph never deletes or replaces anything it did not write.  Every folder it writes carries a
marker file, ``.mingraph.json``, naming the producer, the kind of output and (for folders written
whole) the entries it holds.  ``--overwrite`` replaces a folder only when

* the marker says mingraph wrote it (an older mingraph dataset's ``dataset.json`` and an older
  predict-sample ``run.json`` count as markers), and the folder holds nothing that the marker
  does not list; an empty folder may also be used;
* it is not a symbolic link, a file or a device node (links are refused, never replaced);
* it is not the current folder or one of its parents, and holds none of the command's inputs
  (:func:`protect` names them).

Killed runs leave hidden temporaries (``.NAME.tmp-HOST-PID-*`` beside the output); the next
run over the same output removes those whose process is gone, and puts back a previous output
that a killed replacement had moved aside.

Operating-system errors keep their type (:class:`OSError`) and name the path; the command line
turns them into one line (``mingraph.cli.common.user_errors``).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mingraph.common.errors import InputError
from mingraph.common.output_paths import FOLDER_MODE, UMASK, clean_stale, named_os_error, temp_prefix

MARKER = ".mingraph.json"
_PROTECTED: tuple[Path, ...] = ()


@contextmanager
def protect(paths: Iterable[str | os.PathLike | None]) -> Iterator[None]:
    """Within the block, no output may replace a folder that holds one of ``paths`` (the inputs).

    Parameters
    ----------
    paths : iterable of path-like or None
        Input files or folders of the running command; None entries and missing paths are ignored.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "manifest.csv").write_text("bse,points")
    >>> with protect([d / "manifest.csv"]):  # doctest: +ELLIPSIS
    ...     check_replaceable(d, "--out")
    Traceback (most recent call last):
    ...
    mingraph.common.errors.InputError: ...: --out: holds an input of this command (.../manifest.csv); never replaced
    """
    global _PROTECTED
    old = _PROTECTED
    new = [Path(p).resolve() for p in paths if p is not None and os.path.lexists(p)]
    _PROTECTED = old + tuple(new)
    try:
        yield
    finally:
        _PROTECTED = old


def check_output_path(out: str | os.PathLike, what: str = "--out") -> Path:
    """``out`` as an absolute path, refusing a symbolic link or anything that is not a folder."""
    out = Path(os.path.abspath(out))
    if out.is_symlink():
        target = os.readlink(out)
        raise InputError(
            out,
            what,
            f"is a symbolic link (to {target}); mingraph never replaces a link: give the folder itself",
        )
    if out.exists() and not out.is_dir():
        kind = "a file" if out.is_file() else "not a regular file or folder (a device, socket or pipe)"
        raise InputError(out, what, f"exists and is {kind}; an output folder is expected")
    return out


def read_marker(folder: Path) -> dict | None:
    """The marker mingraph left in ``folder``, or None when mingraph did not write it."""
    try:
        obj = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        if isinstance(obj, dict) and str(obj.get("producer", "")).startswith("mingraph"):
            return obj
    except (OSError, ValueError):
        pass
    for legacy, kind in (("dataset.json", "dataset"), ("run.json", "predict-sample")):
        try:
            obj = json.loads((folder / legacy).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(obj, dict):
            continue
        if kind == "dataset" and str(obj.get("producer", "")).startswith("mingraph"):
            return {"producer": obj["producer"], "kind": kind}
        if kind == "predict-sample" and {"sample", "model", "fields"} <= set(obj):
            return {"producer": "mingraph", "kind": kind}
    return None


def write_marker(folder: Path, kind: str, entries: list[str] | None = None) -> None:
    """Write ``folder``'s marker: the producer, the kind and (whole folders) their entries."""
    from mingraph.version import __version__

    obj = {"producer": f"mingraph {__version__}", "kind": kind}
    if entries is not None:
        obj["entries"] = sorted(entries)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(folder / MARKER, "tmp"), dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, folder / MARKER)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_replaceable(out: Path, what: str = "--out") -> None:
    """Refuse to replace ``out`` unless mingraph wrote it and it holds no input (module docstring)."""
    real = out.resolve()
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise InputError(out, what, "is the current folder or holds it; never replaced")
    for p in _PROTECTED:
        if p == real or real in p.parents:
            raise InputError(out, what, f"holds an input of this command ({p}); never replaced")
    if not out.is_dir():
        return
    entries = sorted(e.name for e in os.scandir(out))
    if not entries:
        return
    marker = read_marker(out)
    if marker is None:
        raise InputError(
            out,
            what,
            "was not written by mingraph (no .mingraph.json marker); never replaced: choose another",
        )
    listed = marker.get("entries")
    if listed is not None:
        extra = [e for e in entries if e not in listed and e != MARKER]
        if extra:
            raise InputError(out, what, f"holds {extra[0]!r}, which mingraph did not write; never replaced")


def check_new_output(out: str | os.PathLike, overwrite: bool, what: str = "--out") -> Path:
    """Refuse, before any work, an output folder that exists (unless ``overwrite``) or may not be
    replaced; returns ``out`` as an absolute path.  :func:`atomic_folder` checks again at the end.

    Examples
    --------
    >>> check_new_output("/nonexistent/new-output", False).name
    'new-output'
    """
    out = check_output_path(out, what)
    if out.exists():
        if not overwrite:
            raise InputError(out, what, "already exists (pass --overwrite to replace it)")
        check_replaceable(out, what)
    return out


def _temp_folder(out: Path, what: str) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out, what), dir=out.parent))
    os.chmod(tmp, FOLDER_MODE)
    return tmp


@contextmanager
def atomic_folder(out: str | os.PathLike, overwrite: bool = False, kind: str = "output") -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; it replaces ``out`` if the block succeeds.

    Parameters
    ----------
    out : path-like
        The output folder.  An existing one is refused unless ``overwrite``, and then replaced
        only under the rule of this module's docstring.
    overwrite : bool
        Replace an existing ``out`` that mingraph wrote.
    kind : str
        The kind of output recorded in the marker (``predict``, ``dataset``, ...).

    Raises
    ------
    InputError
        ``out`` exists (without ``overwrite``), may not be replaced, or another run created it
        while this one was writing (a lost race).
    OSError
        From the file system (read-only, full, permission denied), naming the path.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_folder(d / "run", kind="example") as tmp:
    ...     _ = (tmp / "a.txt").write_text("x")
    >>> sorted(p.name for p in (d / "run").iterdir())
    ['.mingraph.json', 'a.txt']
    """
    out = check_new_output(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(out)
        tmp = _temp_folder(out, "tmp")
    except OSError as e:
        raise named_os_error(e, out) from None
    old = None
    try:
        yield tmp
        write_marker(tmp, kind, [e.name for e in os.scandir(tmp)])
        if os.path.lexists(out):
            check_output_path(out)
            if not overwrite:
                raise InputError(out, "output", "was created by another run while this one wrote it")
            check_replaceable(out)
            old = _temp_folder(out, "old")  # the old folder stays whole until the new is in place
            os.replace(out, old / out.name)
        try:
            os.rename(tmp, out)  # fails on a non-empty folder: never clobbers a concurrent run's output
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise InputError(
                    out, "output", "was created by another run while this one wrote it"
                ) from None
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            if not os.path.lexists(out) and (old / out.name).exists():
                os.replace(old / out.name, out)  # put the previous output back
            shutil.rmtree(old, ignore_errors=True)
        if isinstance(e, OSError):
            raise named_os_error(e, out, tmp) from None
        raise


def output_folder(out: str | os.PathLike, kind: str, overwrite: bool = False, create: bool = True) -> Path:
    """Make (or reopen, to resume) an output folder that a command writes into file by file.

    A new or empty folder is taken and marked; an existing one must carry mingraph's marker of
    the same ``kind`` (a run to resume).  ``overwrite`` replaces one that mingraph wrote, under
    the rule of this module's docstring.

    Parameters
    ----------
    out : path-like
        The folder (``predict-sample --out``, ``build-graphs OUT``, a training run, a study).
    kind : str
        The kind of output; a folder of another kind is not resumed into.
    overwrite : bool
        Start again: the old folder (if mingraph wrote it) is removed first.
    create : bool
        False: only check, before any work, that ``out`` may be used (nothing is made or removed).

    Returns
    -------
    Path
        The absolute folder, existing and marked.

    Raises
    ------
    InputError
        A link, a file, a folder mingraph did not write, or one of another kind.
    OSError
        From the file system, naming the path.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> output_folder(d / "shards", "build-graphs").is_dir()
    True
    >>> read_marker(d / "shards")["kind"]
    'build-graphs'
    """
    out = check_output_path(out)
    try:
        if out.exists():
            if overwrite:
                check_replaceable(out)
                if not create:
                    return out
                clean_stale(out)
                old = _temp_folder(out, "old")
                os.replace(out, old / out.name)
                shutil.rmtree(old, ignore_errors=True)
            elif any(os.scandir(out)):
                check_replaceable(out)  # the current folder, an input's folder: refused even to resume
                marker = read_marker(out)
                if marker is None:
                    raise InputError(
                        out,
                        "--out",
                        "exists and was not written by mingraph (no .mingraph.json); choose another",
                    )
                if marker.get("kind") not in (kind, None):
                    raise InputError(
                        out,
                        "--out",
                        f"holds a mingraph {marker.get('kind')} output, not a {kind} run to resume",
                    )
        if not create:
            return out
        out.mkdir(parents=True, exist_ok=True)
        if read_marker(out) is None or not (out / MARKER).is_file():
            write_marker(out, kind)
    except OSError as e:
        raise named_os_error(e, out) from None
    return out
