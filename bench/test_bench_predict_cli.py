"""``mingraph predict`` of a small field against its ``predict_field`` call: what start-up and outputs cost.

Ours: the command ``mingraph predict --bse BSE.tif --points POINTS.npz`` of a simulated 256² field
with EDS at 1 % of its pixels, in a fresh process, timed from its start to its exit (wall clock
and the process's CPU time), outputs written (phase map, confidence, overlay, mineralogy tables
and plots, report, workbook, the view's files).

Peer, in the same run: the same field's :func:`mingraph.workflows.predict.predict_field` call in
the Python API (a fresh process that has imported mingraph, loaded the model and read the field):
its first call, and the best of three more (what a user predicting many fields pays a field).
The figure is the share of the command's wall time that is that prediction (issue 24: at least
0.5, i.e. the command within 2x its ``predict_field``).

A third process runs the command in-process with timers around its parts: start-up (Python and
imports up to the command), reading and classifying the points, ``predict_field``, writing the
outputs, and the exit.

Every process runs with bytecode caching on (an installed package has its .pyc files; the test
environment may set PYTHONDONTWRITEBYTECODE) in a temporary prefix, after one untimed warm-up
command that writes them and Numba's cache.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from figures import record

SIZE = 256
FRACTION = 0.01
SEED = 7


def _prepare(tmp: Path) -> list[str]:
    import tifffile

    from mingraph.acquire.sampling import sample_points
    from mingraph.acquire.simulate import simulate_tile

    tile = simulate_tile(SEED, SIZE)
    rc = sample_points(tile.valid, FRACTION, "random", np.random.default_rng(0), None)
    tifffile.imwrite(tmp / "bse.tif", tile.bse)
    np.savez(tmp / "points.npz", rc=rc, spectra=tile.eds.spectra(rc[:, 0], rc[:, 1]))
    return ["--bse", str(tmp / "bse.tif"), "--points", str(tmp / "points.npz"), "--pixel-size", "1"]


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": str(tmp / "pycache")}


def _timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, stdout) of a command in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def _cli(args: list[str], out: Path, env: dict) -> tuple[float, float]:
    exe = Path(sys.executable).with_name("mingraph")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mingraph.cli"]
    wall, cpu, _ = _timed([*cmd, "predict", *args, "--out", str(out)], env)
    assert (out / "report.md").exists()
    return wall, cpu


def _api(args: list[str]) -> dict:
    """In the subprocess: the API's predict_field on the field the command predicts."""
    from mingraph.learn.bundle import load_model
    from mingraph.workflows.predict import measured_field, predict_field

    bundle = load_model(None)
    sample, rc, emb = measured_field(args[1], args[3], None, 1.0, bundle)

    def call() -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        predict_field(bundle, sample.bse, sample.valid, rc, emb, progress=False)
        return time.perf_counter() - t, time.process_time() - c

    first = call()
    warm = min((call() for _ in range(3)), key=lambda x: x[0])
    return {"first_s": first[0], "first_cpu_s": first[1], "warm_s": warm[0], "warm_cpu_s": warm[1]}


def _split(args: list[str]) -> dict:
    """In the subprocess: the command run in this process with timers around its parts."""
    t0, c0, epoch = time.perf_counter(), time.process_time(), time.time()
    marks: dict[str, tuple[float, float]] = {}

    def mark(key: str) -> None:
        marks[key] = (time.perf_counter() - t0, time.process_time() - c0)

    import mingraph.cli.group as group
    import mingraph.workflows.field_input as field_input
    import mingraph.workflows.predict as predict

    def timed(mod, name: str) -> None:
        fn = getattr(mod, name)

        def wrapper(*a, **k):
            mark(f"{name}_start")
            try:
                return fn(*a, **k)
            finally:
                mark(f"{name}_end")

        setattr(mod, name, wrapper)

    timed(field_input, "open_field")
    timed(predict, "predict_field")
    timed(predict, "write_outputs")
    group.main(["predict", *args], standalone_mode=False)
    mark("end")
    m = {k: v[0] for k, v in marks.items()} | {f"{k}_cpu": v[1] for k, v in marks.items()}
    parts = {
        "startup": ("", "open_field_start"),
        "read_classify": ("open_field_start", "open_field_end"),
        "predict_field": ("predict_field_start", "predict_field_end"),
        "write_outputs": ("write_outputs_start", "write_outputs_end"),
    }
    res = {}
    for name, (a, b) in parts.items():
        res[f"{name}_s"] = m[b] - (m[a] if a else 0.0)
        res[f"{name}_cpu_s"] = m[f"{b}_cpu"] - (m[f"{a}_cpu"] if a else 0.0)
    return res | {"start_epoch": epoch, "end_epoch": time.time()}


def test_predict_command_vs_its_predict_field(benchmark, tmp_path):
    args = _prepare(tmp_path)
    env = _env(tmp_path)
    _cli(args, tmp_path / "warm", env)  # bytecode and Numba's cache, untimed
    runs = [_cli(args, tmp_path / f"run{i}", env) for i in range(2)]
    wall, cpu = min(runs)
    api = json.loads(_timed([sys.executable, __file__, "api", *args], env)[2].strip().splitlines()[-1])

    def split() -> dict:
        start = time.time()
        out = [sys.executable, __file__, "split", *args, "--out", str(tmp_path / "split")]
        w, c, stdout = _timed(out, env)
        end = time.time()
        res = json.loads(stdout.strip().splitlines()[-1])
        res["startup_s"] += res.pop("start_epoch") - start  # the interpreter's own start
        return res | {"exit_s": end - res.pop("end_epoch"), "process_s": w, "process_cpu_s": c}

    parts = benchmark.pedantic(split, rounds=1, iterations=1)
    benchmark.extra_info.update({"command_s": wall, "command_cpu_s": cpu, "api": api, "parts": parts})
    print(
        f"\nmingraph predict {SIZE}² at 1 %: {wall:.2f} s wall, {cpu:.2f} s CPU; its predict_field "
        f"{api['warm_s']:.2f} s (first call {api['first_s']:.2f} s); parts: "
        + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
    )
    # measured 0.14-0.2 at load 4-10 on 2 shared cores before the CPU inference path; with it
    # predict_field itself fell to 0.17 s and the share to 0.045 (fresh-clone make test,
    # 2026-12-07: 3.88 s wall): the command's fixed costs (torch's import, figures, workbook) now
    # dominate (issue 24's target: 0.5)
    record(
        "predict.cli_256.share_predict_field",
        wall,
        "s",
        peer="its predict_field call (warm)",
        peer_value=api["warm_s"],
        floor=0.02,
        cpu_s=cpu,
        peer_cpu_s=api["warm_cpu_s"],
        first_call_s=api["first_s"],
    )
    record(
        "predict.cli_256.cpu_share_predict_field",
        cpu,
        "s",
        peer="its predict_field call (warm, CPU)",
        peer_value=api["warm_cpu_s"],
    )
    for k in ("startup", "read_classify", "predict_field", "write_outputs", "exit"):
        record(f"predict.cli_256.part.{k}", parts[f"{k}_s"], "s", cpu_s=parts.get(f"{k}_cpu_s"))


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    print(json.dumps(_api(rest) if mode == "api" else _split(rest)))
