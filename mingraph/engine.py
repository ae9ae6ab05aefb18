"""The one engine that runs many independent tasks (fields of a sample, shards of graphs): Dask distributed.

``run_tasks(fn, items, workers=N)`` starts an in-process ``LocalCluster`` of N worker processes
(one thread each: the tasks are NumPy/Numba/torch work that releases no useful parallelism to
threads), or connects to an existing scheduler (``scheduler="tcp://host:8786"``: a dask-jobqueue /
Slurm, Kubernetes or ``dask scheduler`` cluster; paths given to the tasks must then be readable
and writable on the workers, e.g. a shared file system).  ``workers=0`` without a scheduler runs
the tasks one after another in this process (no Dask), which is the serial reference.

Tasks must be idempotent: Dask re-runs a task whose worker was lost, so a task that writes a file
writes it atomically (mingraph.files) and first checks whether its output is already whole.
Results come back in ``items`` order; the first failing task's exception (e.g. an InputError,
which pickles) is raised after the remaining tasks are cancelled.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

from mingraph.errors import InputError


def _dashboard_note() -> str:
    import importlib.util

    return "" if importlib.util.find_spec("bokeh") else " (served once bokeh is installed: pip install bokeh)"


@contextmanager
def dask_client(workers: int, scheduler: str | None = None, say: Callable[[str], None] | None = None):
    """A ``distributed.Client``: connected to ``scheduler`` if given, else to a new LocalCluster of
    ``workers`` processes (one thread each, a random dashboard port).  ``say`` receives one line
    with the dashboard address.  Raises InputError for an unreachable scheduler or workers < 1."""
    from distributed import Client, LocalCluster

    say = say or (lambda line: None)
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise InputError(scheduler, "--scheduler", f"no Dask scheduler answers there ({e})") from None
        with client:
            say(f"dask: scheduler {scheduler}, dashboard {client.dashboard_link}{_dashboard_note()}")
            yield client
        return
    if workers < 1:
        raise InputError("--workers", "workers", f"expected at least 1 worker process, got {workers}")
    # the nanny gives each worker OMP/MKL/OpenBLAS 1 thread (torch follows); Numba's parallel kernels
    # get the cores shared out, so that N workers never run more compute threads than there are cores
    # (oversubscribed Numba threads doubled each field's CPU time at 2 workers on 2 cores)
    numba_threads = max(1, (os.cpu_count() or 1) // workers)
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            env={"NUMBA_NUM_THREADS": str(numba_threads)},
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,  # a worker closing at shutdown logs a harmless CommClosedError
        ) as cluster,
        Client(cluster) as client,
    ):
        say(f"dask: {workers} local worker(s), dashboard {client.dashboard_link}{_dashboard_note()}")
        yield client


def run_tasks(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    desc: str = "tasks",
    unit: str = "task",
    progress: bool = True,
    say: Callable[[str], None] | None = None,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[fn(item) for item in items]``, on Dask (or serially with ``workers=0`` and no scheduler).

    A tqdm bar counts finished tasks; ``on_result(index, result)`` is called in this process as
    each task finishes (in completion order).  Exceptions of a task propagate unchanged.
    """
    from tqdm import tqdm

    results: list[Any] = [None] * len(items)
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress)
    try:
        if not items:
            return results
        if workers <= 0 and not scheduler:
            for i, item in enumerate(items):
                results[i] = fn(item)
                bar.update()
                if on_result is not None:
                    on_result(i, results[i])
            return results
        from distributed import as_completed

        with dask_client(workers, scheduler, say) as client:
            futures = client.map(fn, list(items), pure=False)
            index = {f.key: i for i, f in enumerate(futures)}
            try:
                for fut in as_completed(futures):
                    i = index[fut.key]
                    results[i] = fut.result()  # re-raises the task's exception here
                    bar.update()
                    if on_result is not None:
                        on_result(i, results[i])
            finally:
                client.cancel([f for f in futures if not f.done()])
        return results
    finally:
        bar.close()
