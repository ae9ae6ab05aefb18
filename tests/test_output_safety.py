"""Every command that writes, pointed at hostile output locations, changes nothing outside a new
folder: a foreign folder, ``.``, a parent, a link, a dangling link, a device node, a read-only
folder and a full disk are each refused in one line (exit 2), never replaced or half-written.

The read-only and full cases need a private mount namespace (``unshare -m``, as root); they skip
where that is not allowed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from conftest import REPO

from mingraph.cli import main
from mingraph.common.output_paths import safe_name
from mingraph.common.outputs import MARKER, atomic_folder, check_replaceable, output_folder, protect
from mingraph.learn.bundle import default_model_path

MODEL = str(default_model_path())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """Small inputs every command can run on: a dataset, an encoder, a field, a manifest."""
    d = tmp_path_factory.mktemp("inputs")
    r = CliRunner()
    res = r.invoke(main, ["simulate", str(d / "ds"), "--tiles", "3", "--size", "32", "--seed", "1"])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["fit-encoder", str(d / "ds"), str(d / "enc.pt"), "--kind", "pca"])
    assert res.exit_code == 0, res.output
    rng = np.random.default_rng(0)
    bse = (rng.random((32, 32)) * 65535).astype(np.uint16)
    tifffile.imwrite(d / "f0_bse.tif", bse)
    rc = np.array([[r_, c] for r_ in range(2, 32, 6) for c in range(2, 32, 6)], np.int32)
    spectra = rng.poisson(2.0, (len(rc), 3000)).astype(np.float32)
    np.savez(d / "f0_points.npz", rc=rc, spectra=spectra)
    (d / "manifest.csv").write_text("bse,points,pixel_size,name\nf0_bse.tif,f0_points.npz,1,f0\n")
    return {
        k: str(d / v)
        for k, v in {
            "ds": "ds",
            "enc": "enc.pt",
            "bse": "f0_bse.tif",
            "points": "f0_points.npz",
            "manifest": "manifest.csv",
        }.items()
    }


# command -> (argv with OUT, output is a file, runs quickly to its end)
COMMANDS = {
    "simulate": (lambda i: ["simulate", "OUT", "--tiles", "1", "--size", "32", "--overwrite"], False, True),
    "simulate-sample": (
        lambda i: [
            "simulate-sample",
            "OUT",
            "--grid",
            "1x2",
            "--size",
            "32",
            "--overlap",
            "4",
            "--overwrite",
        ],
        False,
        True,
    ),
    "import": (
        lambda i: [
            "import",
            "OUT",
            "--bse",
            i["bse"],
            "--points",
            i["points"],
            "--pixel-size",
            "1",
            "--overwrite",
        ],
        False,
        True,
    ),
    "predict": (lambda i: ["predict", "--simulate", "32", "--out", "OUT", "--overwrite"], False, True),
    "predict-sample": (
        lambda i: ["predict-sample", i["manifest"], "--out", "OUT", "--workers", "0", "--overwrite"],
        False,
        True,
    ),
    "build-graphs": (lambda i: ["build-graphs", i["ds"], "OUT", "--fractions", "0.05"], False, True),
    "acquire": (
        lambda i: [
            "acquire",
            "--simulate",
            "32",
            "--budget",
            "0.02",
            "--rounds",
            "1",
            "--out",
            "OUT",
            "--overwrite",
        ],
        False,
        True,
    ),
    "evaluate": (
        lambda i: ["evaluate", MODEL, i["ds"], "--out", "OUT", "--fractions", "0.05", "--split", "train"],
        False,
        True,
    ),
    "classify-spectra": (
        lambda i: ["classify-spectra", i["points"], "--out", "OUT", "--beam-kev", "20", "--overwrite"],
        True,
        True,
    ),
    "minerals": (lambda i: ["minerals", "--show", "quartz", "--out", "OUT"], True, True),
    "fit-encoder": (lambda i: ["fit-encoder", i["ds"], "OUT", "--kind", "pca"], True, True),
    "export-model": (lambda i: ["export-model", MODEL, "OUT"], True, True),
    "calibrate-model": (
        lambda i: ["calibrate-model", MODEL, i["ds"], "OUT", "--split", "train", "--max-tiles", "1"],
        True,
        True,
    ),
    "train-unet": (lambda i: ["train-unet", i["ds"], "OUT", "--epochs", "1"], True, False),
    "convert-model": (lambda i: ["convert-model", i["bse"], "OUT", "--from", "authors"], True, False),
    "train": (
        lambda i: ["train", "--online", i["ds"], "--encoder", i["enc"], "--out", "OUT", "--epochs", "1"],
        False,
        False,
    ),
    "demo": (
        lambda i: ["demo", "--out", "OUT", "--tiles", "1", "--size", "32", "--field", "32"],
        False,
        False,
    ),
    "study": (lambda i: ["study", i["ds"], "OUT"], False, False),
    "acquire-study": (
        lambda i: [
            "acquire-study",
            "OUT",
            "--size",
            "32",
            "--tiles",
            "1",
            "--large",
            "0",
            "--methods",
            "random",
        ],
        False,
        False,
    ),
}


def test_every_writing_command_is_in_the_table():
    writers = set()
    for name, cmd in main.commands.items():
        if any(p.name in ("out", "docs") for p in getattr(cmd, "params", [])):
            writers.add(name)
    assert writers == set(COMMANDS)


def snapshot(root: Path) -> dict:
    """Every entry under ``root``: kind, mode, link target and a digest of each file's bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", st.st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[rel] = ("other" if not stat.S_ISDIR(st.st_mode) else "dir", st.st_mode, st.st_rdev)
    return out


def _device_node(path: Path) -> None:
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # like /dev/null
    except PermissionError:
        os.mkfifo(path)  # not root: a pipe is as little a regular file


def hostile(kind: str, scratch: Path, file_output: bool) -> tuple[str, Path]:
    """Set up one hostile location under ``scratch``; returns (the OUT argument, the cwd)."""
    work = scratch / "work"
    work.mkdir()
    (work / "notes.txt").write_text("a user's notes\n")
    foreign = scratch / "theirs"
    if file_output:
        foreign.write_bytes(b"a user's file, not a model\n")
    else:
        foreign.mkdir()
        (foreign / "thesis.txt").write_text("keep\n")
    if kind == "foreign":
        return str(foreign), work
    if kind == "cwd":
        return ".", work
    if kind == "parent":
        return "..", work
    if kind == "link":
        (scratch / "link").symlink_to(foreign)
        return str(scratch / "link"), work
    if kind == "dangling":
        (scratch / "dangling").symlink_to(scratch / "nowhere" / "dir")
        return str(scratch / "dangling"), work
    if kind == "device":
        _device_node(scratch / "node")
        return str(scratch / "node"), work
    raise AssertionError(kind)


LOCATIONS = ["foreign", "cwd", "parent", "link", "dangling", "device"]


@pytest.mark.parametrize("kind", LOCATIONS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_hostile_output_location_is_refused_and_nothing_changes(command, kind, inputs, tmp_path, monkeypatch):
    argv, file_output, _ = COMMANDS[command]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out, cwd = hostile(kind, scratch, file_output)
    before = snapshot(tmp_path)
    monkeypatch.chdir(cwd)
    res = CliRunner().invoke(main, [out if a == "OUT" else a for a in argv(inputs)])
    assert res.exit_code == 2, (res.output, res.exception)
    lines = [ln for ln in re.split(r"[\r\n]", res.output) if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert snapshot(tmp_path) == before


_NAMESPACE_SCRIPT = r"""
import json, os, subprocess, sys
from click.testing import CliRunner
from mingraph.cli import main
root, table = sys.argv[1], json.loads(sys.argv[2])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", f"{root}/full"], check=True)
subprocess.run(["mount", "--bind", f"{root}/ro", f"{root}/ro"], check=True)
subprocess.run(["mount", "-o", "remount,ro,bind", f"{root}/ro"], check=True)
try:  # fill the disk: every write that follows meets ENOSPC
    with open(f"{root}/full/filler", "wb") as f:
        while True:
            f.write(b"x" * 4096)
            f.flush()
except OSError:
    pass
os.chdir(root)
res = {}
for name, argv in table.items():
    for where in ("ro", "full"):
        out = f"{root}/{where}/new-{name}"
        r = CliRunner().invoke(main, [out if a == "OUT" else a for a in argv])
        left = sorted(
            os.path.join(d, n)
            for d, ds, fs in os.walk(f"{root}/{where}")
            for n in ds + fs
            if n.startswith(".") and any(t in n for t in (".tmp-", ".old-", ".import-", ".tmp"))
        )
        res[f"{name}:{where}"] = [r.exit_code, r.output[-600:], left, repr(r.exception)]
print(json.dumps(res))
"""


def test_read_only_and_full_disks_give_one_line_and_leave_nothing_half_written(inputs, tmp_path):
    if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("a private mount namespace (unshare -m, as root) is not allowed here")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "kept.txt").write_text("kept\n")
    (tmp_path / "full").mkdir()
    table = {name: argv(inputs) for name, (argv, _, quick) in COMMANDS.items() if quick}
    before = snapshot(tmp_path / "ro")
    env = dict(os.environ, PYTHONPATH=str(REPO), TQDM_DISABLE="1")
    proc = subprocess.run(
        ["unshare", "-m", sys.executable, "-c", _NAMESPACE_SCRIPT, str(tmp_path), json.dumps(table)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, (code, output, left, exc) in res.items():
        name, where = key.split(":")
        assert code == 2, (key, output, exc)
        err = [ln for ln in re.split(r"[\r\n]", output) if ln.startswith("error:")]
        assert len(err) == 1 and "Traceback" not in output, (key, output)
        cause = "read-only file system" if where == "ro" else "no space left on device"
        assert cause in err[0] and str(tmp_path / where) in err[0], (key, err)
        assert not left, (key, left)  # no hidden temporaries
    assert snapshot(tmp_path / "ro") == before


# the rules themselves, on the library functions


def test_overwrite_replaces_only_what_mingraph_wrote(tmp_path):
    out = tmp_path / "run"
    with atomic_folder(out, kind="predict") as tmp:
        (tmp / "a.txt").write_text("1")
    assert json.loads((out / MARKER).read_text())["entries"] == ["a.txt"]
    with atomic_folder(out, overwrite=True, kind="predict") as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "b.txt"]
    (out / "mine.txt").write_text("a user's file put into an output")
    with pytest.raises(Exception, match="mine.txt"), atomic_folder(out, overwrite=True):
        pass
    assert (out / "mine.txt").read_text() == "a user's file put into an output"
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_folder(empty, overwrite=True) as tmp:  # an empty folder holds nothing to lose
        (tmp / "c.txt").write_text("3")
    assert (empty / "c.txt").is_file()


def test_a_folder_holding_an_input_is_never_replaced(tmp_path):
    out = tmp_path / "run"
    with atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("1")
    (out / "sub").mkdir()
    with protect([out / "sub"]), pytest.raises(Exception, match="holds an input"):
        check_replaceable(out)


def test_output_folder_resumes_only_its_own_kind(tmp_path):
    out = output_folder(tmp_path / "shards", "build-graphs")
    (out / "x.arrow").write_bytes(b"")
    assert output_folder(out, "build-graphs") == out  # resumed
    with pytest.raises(Exception, match="not a train run"):
        output_folder(out, "train")
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "f").write_text("x")
    with pytest.raises(Exception, match="not written by mingraph"):
        output_folder(foreign, "train")


def test_killed_replacement_puts_the_old_output_back(tmp_path):
    from mingraph.common.output_paths import clean_stale, temp_prefix

    out = tmp_path / "run"
    with atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("old")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process that is gone, as a killed run is
    old = tmp_path / (temp_prefix(out, "old", pid=dead.pid) + "x")
    old.mkdir()
    os.replace(out, old / "run")  # killed after moving the old output aside
    half = tmp_path / (temp_prefix(out, "tmp", pid=dead.pid) + "y")
    half.mkdir()
    alive = tmp_path / (temp_prefix(out, "tmp") + "z")  # this process: still writing
    alive.mkdir()
    clean_stale(out)
    assert (out / "a.txt").read_text() == "old"
    assert not old.exists() and not half.exists() and alive.exists()


def test_folders_get_the_umask_like_files(tmp_path):
    out = tmp_path / "run"
    with atomic_folder(out) as tmp:
        (tmp / "sub").mkdir()
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask


@pytest.mark.parametrize(
    "bad", ["../../victim", "/abs/path", "a/b", "a\\b", "..", ".", "", ".hidden", "x\0y", "n" * 256]
)
def test_unsafe_field_names_are_refused(bad):
    with pytest.raises(Exception, match="manifest.csv: name"):
        safe_name(bad, "manifest.csv")


@pytest.mark.parametrize("good", ["field_001", "a b", "é-grain", "x.y", "n" * 255])
def test_ordinary_field_names_pass(good):
    assert safe_name(good, "m.csv") == good


def test_os_errors_are_one_line_naming_the_path():
    import errno

    from mingraph.cli.common import os_error_line

    for code, words in [
        (errno.EACCES, "permission denied"),
        (errno.EROFS, "read-only file system"),
        (errno.ENOSPC, "no space left on device"),
        (errno.ENAMETOOLONG, "name too long"),
        (errno.ENOTEMPTY, "another run"),
    ]:
        line = os_error_line(OSError(code, os.strerror(code), "/x/out"))
        assert line == f"/x/out: {words}" or (line.startswith("/x/out: ") and words in line)


def test_a_lost_race_for_the_same_output_is_refused_not_clobbered(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Exception, match="another run"):
        with atomic_folder(out) as tmp_b:
            (tmp_b / "b.txt").write_text("second")
            with atomic_folder(out) as tmp_a:  # another run finishes first
                (tmp_a / "a.txt").write_text("first")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing half-written


def test_a_name_too_long_is_one_line_naming_it(tmp_path):
    out = tmp_path / ("n" * 300)
    res = CliRunner().invoke(main, ["simulate", str(out), "--tiles", "1", "--size", "32"])
    lines = [ln for ln in re.split(r"[\r\n]", res.output) if ln.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1 and "name too long" in lines[0], res.output
    assert str(out) in lines[0]
    assert not list(tmp_path.iterdir())
