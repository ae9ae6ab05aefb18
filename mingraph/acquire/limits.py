"""The project's size rule: how large an array a file may make mingraph allocate.

A file's header says how large its data will be once decoded (an image's width, height and
dtype; a spectrum map's height, width and channels).  That claim is checked here *before*
anything is decoded, with one rule for every format (docs/formats.md, "Sizes, grey levels and
counts"):

- an image holds at most :func:`max_pixels` pixels (``MAX_PIXELS`` = 2**30, a 32768 x 32768
  field, or the environment variable ``MINGRAPH_MAX_PIXELS``), and
- the bytes that reading it needs (the decoded array and what the reader makes of it) fit in the
  memory this process can still get (:func:`memory_available`: the smallest of the system's
  available memory, the address-space limit left (``ulimit -v``, ``prlimit --as``) and the
  cgroup's memory limit left).

Anything larger is refused with one line naming the file, its size and the rule.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from mingraph.common.errors import InputError

MAX_PIXELS = 2**30
"""Default largest image, in pixels (32768 x 32768); ``MINGRAPH_MAX_PIXELS`` overrides it."""
ENV_MAX_PIXELS = "MINGRAPH_MAX_PIXELS"


def max_pixels() -> int:
    """The largest image (H x W pixels) mingraph decodes: ``MINGRAPH_MAX_PIXELS`` or 2**30."""
    raw = os.environ.get(ENV_MAX_PIXELS, "").strip()
    if not raw:
        return MAX_PIXELS
    try:
        n = int(raw.replace("_", ""))
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(
            ENV_MAX_PIXELS, "environment", f"expected a positive whole number of pixels, got {raw!r}"
        )
    return n


def _read_int(path: str, key: str | None = None, scale: int = 1) -> int | None:
    """An integer from a /proc or /sys file (the value after ``key`` when given), or None."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    if key is not None:
        line = next((ln for ln in text.splitlines() if ln.startswith(key)), None)
        if line is None:
            return None
        text = line[len(key) :]
    token = text.split()[0] if text.split() else ""
    return int(token) * scale if token.isdigit() else None


def memory_available() -> int | None:
    """Bytes this process can still allocate, or None when the system does not say.

    The smallest of ``MemAvailable`` (/proc/meminfo), the soft address-space limit less the
    process's current size (``RLIMIT_AS`` less ``VmSize``), and the cgroup v2 limit less its use.
    """
    found = []
    avail = _read_int("/proc/meminfo", "MemAvailable:", 1024)
    if avail is not None:
        found.append(avail)
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        used = _read_int("/proc/self/status", "VmSize:", 1024) or 0
        found.append(max(soft - used, 0))
    cg_max, cg_now = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if cg_max is not None and cg_now is not None:
        found.append(max(cg_max - cg_now, 0))
    return min(found) if found else None


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_allocation(source: object, field: str, what: str, nbytes: int) -> None:
    """Refuse reading ``what`` (e.g. "a 30000 x 30000 uint8 image") when its ``nbytes`` exceed
    the memory this process can still get.  Call it before decoding anything."""
    free = memory_available()
    if free is not None and nbytes > free:
        raise InputError(
            source,
            field,
            f"{what} needs {_gb(nbytes)} to read and this process can get {_gb(free)} "
            "(available memory, ulimit -v, cgroup): refused before decoding (docs/formats.md, size rule)",
        )


def check_image_size(
    source: object, field: str, shape: tuple, itemsize: int, work_per_pixel: int = 0
) -> None:
    """The size rule for an image whose header says ``shape`` (H, W[, samples]) of ``itemsize``
    bytes: at most :func:`max_pixels` pixels, and the decoded bytes plus ``work_per_pixel`` bytes
    a pixel (the reader's float32 copy and temporaries) within :func:`memory_available`."""
    if len(shape) < 2 or any(int(s) < 0 for s in shape):
        raise InputError(
            source, field, f"expected an image of (height, width[, samples]), got shape {tuple(shape)}"
        )
    h, w = int(shape[0]), int(shape[1])
    pixels = h * w
    samples = 1
    for s in shape[2:]:
        samples *= int(s)
    cap = max_pixels()
    what = f"a {h} x {w} image" + (f" of {samples} samples a pixel" if samples > 1 else "")
    if pixels > cap:
        raise InputError(
            source,
            field,
            f"{what} has {pixels:,} pixels, above mingraph's limit of {cap:,} "
            f"(set {ENV_MAX_PIXELS} to change it; docs/formats.md, size rule)",
        )
    check_allocation(source, field, what, pixels * (samples * itemsize + work_per_pixel))
