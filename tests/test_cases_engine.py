"""Case 20 of ../shared/cases (README there): an engine address is checked before it is used.

Every command that takes ``--scheduler`` refuses, in one line within seconds and before it creates
any output, an address that is not a Dask scheduler: another scheme (``http://``), a closed port,
an HTTP server (which either never completes the Dask handshake or answers bytes that Dask reads as
an exabyte-long frame), a socket that accepts and never answers, a Dask worker."""

from __future__ import annotations

import http.server
import re
import socket
import threading
import time

import pytest
from click.testing import CliRunner
from conftest import case

from mingraph.cli import main
from mingraph.common import engine
from mingraph.common.engine import check_scheduler
from mingraph.common.errors import InputError

FAST_S = 1.0  # check_scheduler's step timeout in most tests here (the default is SCHEDULER_TIMEOUT_S)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """python -m http.server's handler, without its request log on stderr."""

    def log_message(self, *args):
        pass


class _Upgrade(http.server.BaseHTTPRequestHandler):
    """Answers whatever arrives with '426 Upgrade Required', as some HTTP services do."""

    def handle(self):
        self.request.recv(4096)
        self.request.sendall(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")


def _serve(handler):
    """An HTTP server with ``handler`` on 127.0.0.1 (a free port), in a thread: yields its address."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def http_server():
    """A python -m http.server on 127.0.0.1 (a free port), in a thread."""
    yield from _serve(_Quiet)


@pytest.fixture
def upgrade_server():
    """An HTTP server answering '426 Upgrade Required' to everything."""
    yield from _serve(_Upgrade)


@pytest.fixture
def silent_port():
    """A socket that listens (the kernel completes connections) but never reads or writes."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield f"127.0.0.1:{s.getsockname()[1]}"
    s.close()


@pytest.fixture
def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"127.0.0.1:{port}"


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(engine, "SCHEDULER_TIMEOUT_S", FAST_S)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "ds"
    res = run("simulate", out, "--tiles", 1, "--size", 32)
    assert res.exit_code == 0, res.output
    return out


def _refused(res, address: str, started: float, limit_s: float):
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert address in lines[0] and "--scheduler" in lines[0]
    assert "tcp://HOST:PORT" in lines[0]  # says what is expected
    assert time.monotonic() - started < limit_s


# the address alone


def test_scheme_and_form_are_checked_first():
    for bad, says in [
        ("http://127.0.0.1:8787", "scheme http://"),
        ("https://head:8787/status", "scheme https://"),
        ("ucx://head:8786", "scheme ucx://"),
        ("tcp://127.0.0.1", "no HOST:PORT"),
        ("head", "no HOST:PORT"),
        ("tcp://head:8786/path", "no HOST:PORT"),
        ("tcp://head:0", "port 0"),
        ("tcp://head:70000", "port 70000"),
        ("", "expected the address"),
        ("   ", "expected the address"),
    ]:
        t = time.monotonic()
        with pytest.raises(InputError, match=says) as e:
            check_scheduler(bad)
        assert e.value.field == "--scheduler"
        assert time.monotonic() - t < 0.5  # no connection is tried


def test_a_dask_scheduler_passes_and_a_worker_does_not():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, processes=False, protocol="tcp", dashboard_address=":0", threads_per_worker=1
    ) as cluster:
        addr = cluster.scheduler_address
        assert addr.startswith("tcp://")
        assert check_scheduler(addr) == addr
        assert check_scheduler(addr.removeprefix("tcp://")) == addr  # HOST:PORT means tcp
        worker = next(iter(cluster.workers.values())).address
        with pytest.raises(InputError, match="Dask Worker, not a scheduler"):
            check_scheduler(worker)


def test_each_failure_is_one_input_error_within_the_timeout(
    http_server, upgrade_server, silent_port, closed_port
):
    for addr, says in [
        (closed_port, "connection refused"),
        (upgrade_server, "not as a Dask scheduler (MemoryError)"),  # 'HTTP/1.1' read as a 3 EiB frame
        (silent_port, f"no Dask handshake within {FAST_S:g} s"),
        (http_server, f"within {FAST_S:g} s"),  # waits for the end of an HTTP request
    ]:
        t = time.monotonic()
        with pytest.raises(InputError, match=re.escape(says)):
            check_scheduler(f"tcp://{addr}", timeout=FAST_S)
        assert time.monotonic() - t < 2 * FAST_S + 2.5


# every command that takes --scheduler


@pytest.mark.parametrize("kind", ["http", "upgrade", "silent", "closed", "scheme"])
def test_predict_sample_and_build_graphs_refuse_before_writing(
    tmp_path, dataset, fast, kind, http_server, upgrade_server, silent_port, closed_port
):
    addr = {
        "http": f"tcp://{http_server}",
        "upgrade": upgrade_server,
        "silent": f"tcp://{silent_port}",
        "closed": f"tcp://{closed_port}",
        "scheme": f"http://{http_server}",
    }[kind]
    t = time.monotonic()
    res = run("predict-sample", dataset, "--out", tmp_path / "o", "--scheduler", addr)
    _refused(res, addr, t, 2 * FAST_S + 5)
    t = time.monotonic()
    res = run("build-graphs", dataset, tmp_path / "g", "--fractions", "0.1", "--scheduler", addr)
    _refused(res, addr, t, 2 * FAST_S + 5)
    assert list(tmp_path.iterdir()) == []  # no OUT, no run.json, no fields/


def test_build_graphs_library_entry_checks_before_making_out(tmp_path, dataset, fast, silent_port):
    from mingraph.graphs.build import build_graphs

    with pytest.raises(InputError, match="no Dask handshake"):
        build_graphs(dataset, tmp_path / "g", [0.1], scheduler=f"tcp://{silent_port}", progress=False)
    assert not (tmp_path / "g").exists()


def test_run_tasks_checks_the_address_too(fast, upgrade_server):
    with pytest.raises(InputError, match="not as a Dask scheduler"):
        engine.run_tasks(abs, [-1, 2], scheduler=upgrade_server, progress=False)


# the shared case, with the default timeout


def test_case20_scheduler_not_dask(tmp_path, http_server):
    d = case("20_scheduler_not_dask")
    manifest = d.parent / "23_resume_mixes_mineral_lists" / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"{manifest} not found")
    limit = 2 * engine.SCHEDULER_TIMEOUT_S + 5
    for addr in (f"tcp://{http_server}", f"http://{http_server}", "http://127.0.0.1:8787"):
        t = time.monotonic()
        res = run("predict-sample", manifest, "--out", tmp_path / "o", "--scheduler", addr)
        _refused(res, addr, t, limit)
        assert not (tmp_path / "o").exists()  # no run.json, no fields/
    assert list(tmp_path.iterdir()) == []
