"""The one engine that runs many independent tasks (fields of a sample, shards of graphs): Dask distributed.

``run_tasks(fn, items, workers=N)`` starts an in-process ``LocalCluster`` of N worker processes
(one thread each: the tasks are NumPy/Numba/torch work that releases no useful parallelism to
threads), or connects to an existing scheduler (``scheduler="tcp://host:8786"``: a dask-jobqueue /
Slurm, Kubernetes or ``dask scheduler`` cluster; paths given to the tasks must then be readable
and writable on the workers, e.g. a shared file system).  ``workers=0`` without a scheduler runs
the tasks one after another in this process (no Dask), which is the serial reference.

Tasks must be idempotent: Dask re-runs a task whose worker was lost, so a task that writes a file
writes it atomically (mingraph.common.files) and first checks whether its output is already whole.
Results come back in ``items`` order; the first failing task's exception (e.g. an InputError,
which pickles) is raised after the remaining tasks are cancelled.

``check_scheduler(address)`` tells within seconds whether a Dask scheduler answers at an address
(the scheme, then a TCP connection, then the Dask handshake and the scheduler's identity); the
command line calls it before a run creates any output.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

from mingraph.common.errors import InputError


def _dashboard_note() -> str:
    import importlib.util

    return "" if importlib.util.find_spec("bokeh") else " (served once bokeh is installed: pip install bokeh)"


#: seconds that each step of check_scheduler (TCP connection, Dask handshake) may take
SCHEDULER_TIMEOUT_S = 5.0
SCHEDULER_EXPECTED = (
    "expected the address of a Dask scheduler: tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT "
    "(port 8786 by default; the dashboard's http:// address is not one)"
)


def _split_scheduler(address: str, field: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a scheduler address, or InputError for any other form."""
    from distributed.comm.addressing import parse_host_port

    scheme, sep, loc = address.partition("://")
    if not sep:
        scheme, loc = "tcp", address
    scheme = scheme.lower()
    if scheme not in ("tcp", "tls"):
        raise InputError(
            address, field, f"the scheme {scheme}:// is not a Dask scheduler's; {SCHEDULER_EXPECTED}"
        )
    try:
        host, port = parse_host_port(loc)
        port = int(port)
    except (ValueError, TypeError):
        raise InputError(address, field, f"no HOST:PORT after the scheme; {SCHEDULER_EXPECTED}") from None
    if not host or not 0 < port < 65536 or "/" in loc:
        raise InputError(address, field, f"host {host!r}, port {port} is no address; {SCHEDULER_EXPECTED}")
    return scheme, host, port


async def _identity(address: str, timeout: float):
    """The Dask handshake with ``address`` and the reply to an ``identity`` request."""
    from distributed.comm import connect
    from distributed.security import Security

    comm = await connect(address, timeout=timeout, **Security().get_connection_args("client"))
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def _probe(address: str, timeout: float):
    """(reply, None) or (None, exception) of ``_identity`` within ``timeout`` seconds, run on its own
    event loop in a thread (so that it works whether or not the caller runs a loop)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["reply"] = asyncio.run(asyncio.wait_for(_identity(address, timeout), timeout))
        except BaseException as e:  # a garbled length prefix asks for exabytes: MemoryError
            box["error"] = e

    thread = threading.Thread(target=target, name="mingraph-check-scheduler", daemon=True)
    thread.start()
    thread.join(timeout + 2.0)
    if thread.is_alive() or isinstance(box.get("error"), (asyncio.TimeoutError, TimeoutError)):
        return None, TimeoutError()
    return box.get("reply"), box.get("error")


def check_scheduler(address: str, timeout: float | None = None, field: str = "--scheduler") -> str:
    """Check that a Dask scheduler answers at ``address``, before anything is written.

    Parameters
    ----------
    address : str
        ``tcp://HOST:PORT``, ``tls://HOST:PORT`` or ``HOST:PORT`` (tcp).
    timeout : float, optional
        Seconds for each step (TCP connection, Dask handshake); ``SCHEDULER_TIMEOUT_S`` if None.
    field : str
        The option named in the error message.

    Returns
    -------
    str
        The address with its scheme, e.g. ``tcp://head:8786``.

    Raises
    ------
    InputError
        One line for any other scheme (``http://``), a missing port, a host that cannot be
        resolved or reached, a refused connection, no answer within ``timeout``, or a peer that
        answers but is not a Dask scheduler (an HTTP server, a dashboard, a Dask worker).
    """
    timeout = SCHEDULER_TIMEOUT_S if timeout is None else float(timeout)
    if not isinstance(address, str) or not address.strip():
        raise InputError(repr(address), field, SCHEDULER_EXPECTED)
    address = address.strip()
    scheme, host, port = _split_scheduler(address, field)
    from distributed.comm.addressing import unparse_host_port

    normal = f"{scheme}://{unparse_host_port(host, port)}"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except TimeoutError:
        raise InputError(address, field, f"no answer within {timeout:g} s; {SCHEDULER_EXPECTED}") from None
    except ConnectionRefusedError:
        raise InputError(
            address, field, f"nothing listens there (connection refused); {SCHEDULER_EXPECTED}"
        ) from None
    except OSError as e:
        raise InputError(
            address, field, f"cannot be reached ({e.strerror or e}); {SCHEDULER_EXPECTED}"
        ) from None
    reply, error = _probe(normal, timeout)
    if isinstance(error, TimeoutError):
        problem = f"a connection opens but no Dask handshake within {timeout:g} s"
    elif error is not None:
        problem = f"it answers, but not as a Dask scheduler ({type(error).__name__})"
    elif not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        kind = reply.get("type") if isinstance(reply, dict) else None
        problem = (
            f"a Dask {kind}, not a scheduler, answers there" if kind else "it answers, not as a scheduler"
        )
    else:
        return normal
    raise InputError(address, field, f"{problem}; {SCHEDULER_EXPECTED}")


@contextmanager
def dask_client(workers: int, scheduler: str | None = None, say: Callable[[str], None] | None = None):
    """A ``distributed.Client``: connected to ``scheduler`` if given, else to a new LocalCluster of
    ``workers`` processes (one thread each, a random dashboard port).  ``say`` receives one line
    with the dashboard address.  Raises InputError for an unreachable scheduler (check_scheduler)
    or workers < 1."""
    from distributed import Client, LocalCluster

    say = say or (lambda line: None)
    if scheduler:
        scheduler = check_scheduler(scheduler)
        try:
            client = Client(scheduler, timeout=f"{4 * SCHEDULER_TIMEOUT_S:g}s")
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
