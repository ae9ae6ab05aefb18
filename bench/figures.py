"""Every asserted bench figure goes through :func:`record`: it checks the figure and, when
``MINGRAPH_BENCH_JSON=FILE`` is set, appends it to FILE as one JSON line.

A figure is our measured ``value`` (with its ``unit``) and, where the bench times a peer in the
same run, the peer's name and value.  With a peer, the bound applies to the ratio of the two:
``ratio="peer/value"`` (the default: how many times faster or smaller than the peer we are) or
``ratio="value/peer"`` (our cost relative to the peer's).  Without a peer it applies to the value.
``floor`` asks for at least, ``ceiling`` for at most (both inclusive); a figure with neither is
only recorded.  Each line also carries the date, the machine (CPU model, cores), the load average,
the git commit when there is one, and the pytest test that measured it.

Several processes may write the same file: each line is one ``os.write`` to a descriptor opened
with ``O_APPEND``, so lines never interleave.  ``bench/figures_table.py FILE`` prints them.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENV = "MINGRAPH_BENCH_JSON"
RATIOS = ("peer/value", "value/peer")
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    peer: str | None = None
    peer_value: float | None = None
    ratio: float | None = None
    ratio_is: str | None = None
    floor: float | None = None
    ceiling: float | None = None
    ok: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def checked(self) -> float:
        """What the bound applies to: the ratio when there is a peer, else the value."""
        return self.value if self.ratio is None else self.ratio

    def message(self) -> str:
        what = f"{self.name} = {_num(self.value)} {self.unit}"
        if self.ratio is not None:
            what += (
                f" vs {self.peer} {_num(self.peer_value)} {self.unit}: {self.ratio_is} = {_num(self.ratio)}"
            )
        bounds = [f"floor {_num(self.floor)}"] * (self.floor is not None)
        bounds += [f"ceiling {_num(self.ceiling)}"] * (self.ceiling is not None)
        if not bounds:
            return what
        return f"{what} ({', '.join(bounds)}{'' if self.ok else ': FAILED'})"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def record(
    name: str,
    value: float,
    unit: str,
    *,
    peer: str | None = None,
    peer_value: float | None = None,
    ratio: str = "peer/value",
    floor: float | None = None,
    ceiling: float | None = None,
    check: bool = True,
    **info: Any,
) -> Figure:
    """Record one figure (see the module's docstring) and, when ``check``, assert its bound with a
    message naming the figure, its peer, the ratio and the bound.  ``check=False`` leaves the
    assertion to :func:`require` (to record every figure of a bench before failing on any).
    ``info``: further JSON-able details stored with the line."""
    if (peer is None) != (peer_value is None):
        raise ValueError(f"{name}: give both peer and peer_value, or neither")
    if ratio not in RATIOS:
        raise ValueError(f"{name}: ratio must be one of {RATIOS}, not {ratio!r}")
    value = float(value)
    fig = Figure(name, value, unit, floor=floor, ceiling=ceiling, info=info)
    if peer is not None:
        fig.peer, fig.peer_value, fig.ratio_is = peer, float(peer_value), ratio
        num, den = (fig.peer_value, value) if ratio == "peer/value" else (value, fig.peer_value)
        fig.ratio = num / den if den else math.inf
    x = fig.checked
    fig.ok = not math.isnan(x) and (floor is None or x >= floor) and (ceiling is None or x <= ceiling)
    path = os.environ.get(ENV)
    if path:
        append_line(path, to_json(fig))
    if check:
        require(fig)
    return fig


def require(*figs: Figure) -> None:
    """Fail, naming every figure below its floor or above its ceiling."""
    failed = [f.message() for f in figs if not f.ok]
    assert not failed, "\n".join(failed)


def to_json(fig: Figure) -> str:
    d = asdict(fig)
    info = d.pop("info")
    d.update(_context())
    d["test"] = os.environ.get("PYTEST_CURRENT_TEST", "").removesuffix(" (call)") or None
    if info:
        d["info"] = info
    return json.dumps(d, default=_jsonable, allow_nan=True)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    if isinstance(x, (set, tuple)):
        return list(x)
    return str(x)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append ``line`` and a newline to ``path`` in one write (O_APPEND: safe across processes)."""
    data = (line.rstrip("\n") + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        n = os.write(fd, data)
    finally:
        os.close(fd)
    if n != len(data):  # a regular file writes all of it unless the disk is full
        raise OSError(f"short write to {path}: {n} of {len(data)} bytes")


def _context() -> dict[str, Any]:
    now = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": now.isoformat(timespec="seconds"),
        **_machine(),
        "load": [round(x, 2) for x in load] if load else None,
        "commit": _commit(),
    }


@functools.lru_cache(maxsize=1)
def _machine() -> dict[str, Any]:
    cpu = None
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), None)
    except OSError:
        pass
    if cpu is None:
        import platform

        cpu = platform.processor() or platform.machine() or None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable}


@functools.lru_cache(maxsize=1)
def _commit() -> str | None:
    """HEAD's commit (``+dirty`` when tracked files differ from it), or None outside a git checkout."""
    try:
        run = functools.partial(subprocess.run, cwd=REPO, capture_output=True, text=True, timeout=10)
        head = run(["git", "rev-parse", "HEAD"])
        if head.returncode != 0:
            return None
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
