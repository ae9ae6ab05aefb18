"""Peak-memory measurement shared by the benches: the peak RSS of this process during a call.

torch's CPU allocations are invisible to tracemalloc, so the benches measure the resident set:
``/proc/self/clear_refs`` resets the high-water mark (VmHWM) to the current RSS, and the peak
after the call minus the RSS before it is the call's memory.  Linux only; each measurement runs
in a fresh subprocess so earlier allocations do not hide it (:func:`run_script`).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def status_bytes(key: str) -> int:
    """A memory figure of this process from /proc/self/status ("VmRSS", "VmHWM", ...), in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_during(fn: Callable[[], Any]) -> tuple[int, float, Any]:
    """(bytes of peak RSS above the RSS before the call, seconds, result) of ``fn()``."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:  # reset the high-water mark (VmHWM) to now
        fh.write("5")
    before = status_bytes("VmRSS")
    t = time.perf_counter()
    out = fn()
    secs = time.perf_counter() - t
    return status_bytes("VmHWM") - before, secs, out


def run_script(script: str, *args: str, timeout: float = 1200) -> dict:
    """Run ``python script args`` in a fresh process; its last stdout line is a JSON dict.

    glibc's mmap threshold is lowered so that freed large buffers return to the system and the
    resident set follows what is live.
    """
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    proc = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
