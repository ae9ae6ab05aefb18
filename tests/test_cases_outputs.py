"""Shared cases 10, 12, 13, 14, 15, 16 and 23 (../shared/cases/README.md): outputs that deleted,
replaced or escaped where they should not, OS errors as tracebacks, a resume that mixed mineral
lists.  Each right outcome on the shared file; the kinds are in test_output_safety.py."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys

import pytest
import tifffile
from click.testing import CliRunner
from conftest import REPO, case

from mingraph.cli import main


def scratch_copy(name: str, tmp_path):
    dst = tmp_path / name
    shutil.copytree(case(name), dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)  # the shared copy is read-only
    return dst


def run(*args, cwd=None):
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        return CliRunner().invoke(main, [str(a) for a in args])
    finally:
        os.chdir(old)


def one_error(res) -> str:
    lines = [ln for ln in re.split(r"[\r\n]", res.output) if ln.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


def test_case10_a_field_name_with_dotdot_is_refused_and_nothing_outside_out_changes(tmp_path):
    d = scratch_copy("10_manifest_name_path_traversal", tmp_path)
    (d / "victim").mkdir()
    (d / "victim" / "thesis.txt").write_text("keep\n")
    err = one_error(run("predict-sample", "manifest.csv", "--out", "out", "--workers", "0", cwd=d))
    assert "../../victim" in err and "field name" in err
    assert (d / "victim" / "thesis.txt").read_text() == "keep\n"
    assert not (d / "out").exists()
    for name in ("../../victim", str(tmp_path / "abs")):  # the same through a dataset
        err = one_error(
            run("import", "ds", "--bse", "f0_bse.tif", "--points", "f0_points.npz", "--name", name, cwd=d)
        )
        assert "name" in err
        assert not (d / "ds").exists() and not (tmp_path / "abs").exists()


def test_case12_overwrite_never_deletes_the_inputs(tmp_path):
    p = scratch_copy("12_overwrite_deletes_inputs", tmp_path) / "proj"
    before = sorted(x.name for x in p.iterdir())
    err = one_error(run("predict-sample", p / "manifest.csv", "--out", p, "--workers", "0", "--overwrite"))
    assert "input" in err
    assert sorted(x.name for x in p.iterdir()) == before
    any_folder = tmp_path / "any"
    any_folder.mkdir()
    (any_folder / "data.txt").write_text("mine")
    err = one_error(run("predict", "--simulate", "64", "--out", any_folder, "--overwrite"))
    assert "not written by mingraph" in err
    assert (any_folder / "data.txt").read_text() == "mine"
    # what mingraph wrote, it replaces
    assert run("predict", "--simulate", "32", "--out", tmp_path / "mine").exit_code == 0
    assert run("predict", "--simulate", "32", "--out", tmp_path / "mine", "--overwrite").exit_code == 0


def test_case13_links_are_refused_never_replaced(tmp_path):
    case("13_symlinked_out")
    (tmp_path / "big" / "res").mkdir(parents=True)
    (tmp_path / "big" / "res" / "old.txt").write_text("old\n")
    (tmp_path / "link").symlink_to("big/res")
    err = one_error(run("predict", "--simulate", "64", "--out", "link", "--overwrite", cwd=tmp_path))
    assert "symbolic link" in err
    assert (tmp_path / "link").is_symlink() and (tmp_path / "big" / "res" / "old.txt").read_text() == "old\n"
    (tmp_path / "dangling").symlink_to("/nonexistent/dir")
    assert "symbolic link" in one_error(run("predict", "--simulate", "64", "--out", "dangling", cwd=tmp_path))
    m = case("23_resume_mixes_mineral_lists") / "manifest.csv"
    err = one_error(run("predict-sample", m, "--out", "link", "--workers", "0", "--overwrite", cwd=tmp_path))
    assert "symbolic link" in err and (tmp_path / "link").is_symlink()


def test_case14_output_folders_get_the_umask(tmp_path):
    case("14_output_folders_mode_0700")
    old = os.umask(0o022)
    try:
        assert run("predict", "--simulate", "64", "--out", tmp_path / "o").exit_code == 0
        m = case("23_resume_mixes_mineral_lists") / "manifest.csv"
        assert run("predict-sample", m, "--out", tmp_path / "s", "--workers", "0").exit_code == 0
        assert run("simulate", tmp_path / "ds", "--tiles", "1", "--size", "32").exit_code == 0
    finally:
        os.umask(old)
    folders = [tmp_path / "o", tmp_path / "s" / "sample", tmp_path / "ds"]
    folders += [p for p in (tmp_path / "s" / "fields").iterdir()]
    folders += [p for p in (tmp_path / "o").rglob("*") if p.is_dir()]
    for f in folders:
        assert stat.S_IMODE(f.stat().st_mode) == 0o755, f


def _namespace_allowed() -> bool:
    return (
        os.geteuid() == 0 and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0
    )


def _in_namespace(script: str, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), TQDM_DISABLE="1")
    cmd = ["unshare", "-m", "sh", "-c", script]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)


def _refused_in_namespace(
    tmp_path, folder: str, mount: str, commands: list[str], message: str, then: str = ""
):
    """Make ``folder`` in tmp_path, ``mount`` it in a private mount namespace and run each mingraph
    command there (``{manifest}``: case 23's sample manifest), then the shell line ``then``; each
    command must be refused: exit 2, and one ``error:`` line on stderr, without a traceback, that
    says ``message`` and names a path in ``folder``.  Returns the process."""
    if not _namespace_allowed():
        pytest.skip("a private mount namespace (unshare -m, as root) is not allowed here")
    (tmp_path / folder).mkdir()
    m = case("23_resume_mixes_mineral_lists") / "manifest.csv"
    py = f"{sys.executable} -m mingraph.cli"
    runs = [f"{py} {c.format(manifest=m)}; echo rc=$?" for c in commands]
    script = f"{mount} && " + "; ".join(runs) + (f"; {then}" if then else "")
    proc = _in_namespace(script, tmp_path)
    assert proc.stdout.count("rc=2") == len(commands), proc.stdout + proc.stderr
    errors = [ln for ln in re.split(r"[\r\n]", proc.stderr) if ln.startswith("error:")]
    assert len(errors) == len(commands) and "Traceback" not in proc.stderr, proc.stderr
    assert all(message in e and f"/{folder}/" in e for e in errors)
    return proc


def test_case15_a_read_only_output_folder_is_one_line(tmp_path):
    case("15_readonly_output")
    mount = "mount --bind ro ro && mount -o remount,ro,bind ro"
    runs = [
        "predict --simulate 64 --out ro/out",
        "predict-sample {manifest} --out ro/s --workers 0",
        "simulate ro/ds --tiles 1 --size 32",
    ]
    _refused_in_namespace(tmp_path, "ro", mount, runs, "read-only file system")
    assert not list((tmp_path / "ro").iterdir())


def test_case16_a_full_disk_names_the_file_and_leaves_nothing_half_written(tmp_path):
    case("16_disk_full")
    runs = [
        "predict --simulate 128 --out small/out",
        "predict-sample {manifest} --out small/samp --workers 0",
    ]
    then = "find small -name '.*' -print"
    proc = _refused_in_namespace(
        tmp_path, "small", "mount -t tmpfs -o size=150k tmpfs small", runs, "no space left on device", then
    )
    assert ".tmp" not in proc.stdout  # no hidden temporaries left


def test_case23_a_resume_with_another_mineral_list_is_refused(tmp_path):
    d = scratch_copy("23_resume_mixes_mineral_lists", tmp_path)
    assert run("predict-sample", "manifest.csv", "--out", "o", "--workers", "0", cwd=d).exit_code == 0
    kept = tifffile.TiffFile(d / "o" / "fields" / "a" / "phase_map.tif").pages[0].colormap
    shutil.rmtree(d / "o" / "fields" / "b")  # as a run killed before field b
    err = one_error(
        run("predict-sample", "manifest.csv", "--out", "o", "--workers", "0", "--minerals", "red.csv", cwd=d)
    )
    assert "minerals" in err and "run.json" in err
    assert not (d / "o" / "fields" / "b").exists()
    assert (tifffile.TiffFile(d / "o" / "fields" / "a" / "phase_map.tif").pages[0].colormap == kept).all()
    res = run("predict-sample", "manifest.csv", "--out", "o", "--workers", "0", cwd=d)  # same list: resumes
    assert res.exit_code == 0 and (d / "o" / "fields" / "b" / "field.json").is_file()


def test_acquire_study_never_resumes_another_models_records(tmp_path):
    import json

    from mingraph.acquire.simulate import simulate_tile
    from mingraph.acquisition.study import run_grid
    from mingraph.api import load_model

    fields = [simulate_tile(5, 48).field("t5")]
    cache = tmp_path / "records.jsonl"
    theirs = {"method": "random", "budget": 0.02, "fields": ["t5"], "model": "other", "f1_weighted": -1.0}
    cache.write_text(json.dumps(theirs) + "\n")
    bundle = load_model()
    recs = run_grid(fields, bundle, [0.02], ["random"], log=lambda s: None, cache=cache, model_tag="mine")
    assert recs[0]["f1_weighted"] != -1.0 and recs[0]["model"] == "mine"  # measured, not taken
    again = run_grid(fields, bundle, [0.02], ["random"], log=lambda s: None, cache=cache, model_tag="mine")
    assert again == recs  # its own records are resumed
    assert len(cache.read_text().splitlines()) == 2
