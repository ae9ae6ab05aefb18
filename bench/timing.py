"""Timing shared by the benches: the best of a few runs (the least disturbed by other jobs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_of(
    fn: Callable[[], Any], repeat: int = 3, clock: Callable[[], float] = time.perf_counter, warm: bool = True
) -> float:
    """Seconds (by ``clock``) of the fastest of ``repeat`` calls of ``fn``, after one warm-up call
    when ``warm`` (caches, lazy initialisation and JIT compilation outside the timing)."""
    if warm:
        fn()
    best = float("inf")
    for _ in range(repeat):
        t = clock()
        fn()
        best = min(best, clock() - t)
    return best
