"""``mingraph predict-sample``: fields on Dask equal a serial run, a killed run resumes with every
field once, overlapping fields are counted once, and bad input stops with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from mingraph.acquire.sample import FieldSpec, open_sample, owned_mask, simulate_sample
from mingraph.analyse.mineralogy import association_matrix, modal_mineralogy, sample_mineralogy
from mingraph.analyse.mineralogy.fields import combine_fields, field_figures
from mingraph.analyse.mineralogy.minerals import class_minerals
from mingraph.cli import main
from mingraph.common.output_paths import temp_prefix
from mingraph.workflows.sample import predict_sample

REPO = Path(__file__).resolve().parents[1]
GRID, SIZE, OVERLAP = (3, 4), 64, 8


def _blobs(shape, n_classes=4, seed=0) -> np.ndarray:
    """A label map of smooth random regions (grains of several phases), -1 in a few holes."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(size=(n_classes, *shape)), (0, 4, 4))
    lab = noise.argmax(0).astype(np.int32)
    lab[rng.random(shape) < 0.01] = -1
    return lab


def _grid_fields(shape, rows, cols, size, overlap) -> list[FieldSpec]:
    step = size - overlap
    return [
        FieldSpec(k, f"f{k}", "files", "-", (size, size), ((k // cols) * step, (k % cols) * step))
        for k in range(rows * cols)
    ]


def test_owned_masks_partition_the_covered_pixels():
    fields = _grid_fields(None, 3, 3, 40, 7)
    cover = np.zeros((3 * 33 + 7, 3 * 33 + 7), np.int32)
    for f in fields:
        r, c = f.origin_px
        cover[r : r + 40, c : c + 40] += owned_mask(fields, f.index)
    assert (cover == 1).all()


def test_one_field_owning_everything_gives_sample_mineralogy():
    """The reference: sample_mineralogy on the same map (its own code path from the pixels)."""
    lab = _blobs((70, 90))
    valid = np.ones(lab.shape, bool)
    valid[:, 40:43] = False  # resin: two particles
    conf = np.random.default_rng(1).random(lab.shape).astype(np.float32)
    cm = class_minerals(["quartz", "albite", "pyrite", "galena"])
    fig = field_figures(lab, valid, conf, np.ones(lab.shape, bool), 2.0, 4, min_confidence=0.2)
    modal, res, assoc = combine_fields([fig], cm, 2.0, min_confidence=0.2)
    ref = sample_mineralogy(lab, valid, 2.0, cm, confidence=conf, min_confidence=0.2)
    ref_modal = modal_mineralogy(lab, valid, cm.names, cm.densities, conf, 0.2)
    assert modal.rows == ref_modal.rows
    np.testing.assert_array_equal(res.pixels, ref.pixels)
    np.testing.assert_allclose(res.area_ci, ref.area_ci)
    np.testing.assert_allclose(res.mass_pct, ref.mass_pct)
    assert res.grains.phases == ref.grains.phases
    for t, r in zip(res.targets, ref.targets):
        for key in r.by_composition:
            np.testing.assert_allclose(t.by_composition[key], r.by_composition[key])
        np.testing.assert_allclose(t.yield_pct, r.yield_pct)
    ref_assoc = association_matrix(ref.labels, valid, 4, 2.0)
    np.testing.assert_allclose(assoc.boundary_um, ref_assoc.boundary_um)


def test_overlapping_fields_count_pixels_edges_and_grains_once():
    lab = _blobs((3 * 32 + 10, 4 * 32 + 10), seed=2)
    valid = np.ones(lab.shape, bool)
    fields = _grid_fields(None, 3, 4, 42, 10)
    figs = []
    for f in fields:
        r, c = f.origin_px
        sl = (slice(r, r + 42), slice(c, c + 42))
        figs.append(field_figures(lab[sl], valid[sl], None, owned_mask(fields, f.index), 1.0, 4))
    cm = class_minerals(["quartz", "albite", "pyrite", "galena"])
    modal, res, assoc = combine_fields(figs, cm, 1.0, min_confidence=None, n_boot=10)
    ref = modal_mineralogy(lab, valid, cm.names, cm.densities)
    assert [r["pixels"] for r in modal.rows] == [r["pixels"] for r in ref.rows]
    assert modal.n_valid == ref.n_valid and modal.n_unclassified == ref.n_unclassified
    np.testing.assert_allclose(assoc.boundary_um, association_matrix(lab, valid, 4, 1.0).boundary_um)
    g = res.grains.grains
    origin = np.array([f.origin_px for f in fields])[g["field"]]
    key = np.c_[g["class_id"], g["centroid_row"] + origin[:, 0], g["centroid_col"] + origin[:, 1]]
    whole = ~g["touches_border"]
    assert len(np.unique(key[whole], axis=0)) == int(whole.sum())  # no whole grain counted twice
    # no more whole grains than the sample has grains lying wholly inside a field (a grain whole in one
    # field may be counted, cut, by the field that owns its centroid)
    from skimage.measure import label, regionprops

    n_ref = 0
    for k in range(4):
        for p in regionprops(label(lab == k, connectivity=2)):
            r0, c0, r1, c1 = p.bbox
            n_ref += any(
                f.origin_px[0] < r0
                and r1 < f.origin_px[0] + 42
                and f.origin_px[1] < c0
                and c1 < f.origin_px[1] + 42
                for f in fields
            )
    assert 0.9 * n_ref <= int(whole.sum()) <= n_ref


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("sample")
    simulate_sample(d / "smp", GRID, SIZE, OVERLAP, seed=0)
    serial = predict_sample(d / "smp", d / "serial", workers=0, progress=False)
    return d, serial


def _field_arrays(out: Path) -> dict:
    res = {}
    for f in sorted((out / "fields").iterdir()):
        with np.load(f / "field.npz") as z:
            res[f.name] = {k: z[k] for k in z.files}
        res[f.name]["phase_map"] = tifffile.imread(f / "phase_map.tif")
        res[f.name]["confidence"] = tifffile.imread(f / "confidence.tif")
    return res


def _assert_same_run(a: Path, b: Path) -> None:
    fa, fb = _field_arrays(a), _field_arrays(b)
    assert sorted(fa) == sorted(fb) and len(fa) == GRID[0] * GRID[1]
    for name in fa:
        assert sorted(fa[name]) == sorted(fb[name])
        for k in fa[name]:
            if k == "confidence":  # float32 reductions' order moves it across processes (seen: 1.1e-6)
                np.testing.assert_allclose(fa[name][k], fb[name][k], rtol=0, atol=1e-5)
            else:
                np.testing.assert_array_equal(fa[name][k], fb[name][k], err_msg=f"{name} {k}")
    for p in sorted((a / "sample" / "mineralogy").glob("*.csv")):
        assert p.read_bytes() == (b / "sample" / "mineralogy" / p.name).read_bytes(), p.name
    import zarr  # sample.ome.zarr: the same pixels whatever the order the fields finished in

    za, zb = (zarr.open_group(str(x / "sample.ome.zarr"), mode="r") for x in (a, b))
    np.testing.assert_array_equal(za["labels/phases/0"][...], zb["labels/phases/0"][...])
    np.testing.assert_array_equal(za["0"][0], zb["0"][0])  # BSE
    np.testing.assert_allclose(za["0"][1], zb["0"][1], rtol=0, atol=1e-5)  # confidence, as the fields' above
    sa, sb = (json.loads((x / "sample" / "summary.json").read_text()) for x in (a, b))
    sa["summary"].pop("runtime_s"), sb["summary"].pop("runtime_s")
    assert sa == sb


def test_two_dask_workers_equal_a_serial_run(sim):
    d, serial = sim
    assert serial["predicted"] == 12 and serial["skipped"] == 0
    lines: list[str] = []
    res = predict_sample(d / "smp", d / "dask", workers=2, progress=False, say=lines.append)
    assert res["predicted"] == 12
    assert any("dashboard http" in line for line in lines)
    _assert_same_run(d / "serial", d / "dask")
    # sample-level figures are the fields' owned figures summed: the modal table's pixels
    modal = (d / "dask" / "sample" / "mineralogy" / "modal.csv").read_text().splitlines()
    assert len(modal) == 1 + 50
    s = json.loads((d / "dask" / "sample" / "mineralogy" / "mineralogy.json").read_text())
    total = sum(np.load(f / "field.npz")["modal_n"][0] for f in (d / "dask" / "fields").iterdir())
    assert (
        s["n_pixels"]
        == total
        == (GRID[0] * (SIZE - OVERLAP) + OVERLAP) * (GRID[1] * (SIZE - OVERLAP) + OVERLAP)
    )
    assert (d / "dask" / "sample" / "overview_phases.png").is_file()
    assert (d / "dask" / "sample" / "report.html").is_file()


def kill_after_fields(python_args: list[str], sample: Path, out: Path, n: int) -> int:
    """Run ``python PYTHON_ARGS predict-sample SAMPLE --out OUT --workers 0`` and SIGKILL it once
    ``n`` fields are finished; its process id."""
    cmd = [sys.executable, *python_args, "predict-sample", str(sample), "--out", str(out), "--workers", "0"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.time() + 240
        while len(list((out / "fields").glob("field-*/field.json"))) < n and time.time() < deadline:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.pid


def test_killed_run_resumes_with_every_field_once(sim):
    d, _ = sim
    out = d / "killed"
    pid = kill_after_fields(["-m", "mingraph.cli"], d / "smp", out, 3)
    done = {p.parent.name: p.stat().st_mtime_ns for p in (out / "fields").glob("field-*/field.json")}
    assert 3 <= len(done) < 12
    assert not (out / "sample").exists()
    stale = temp_prefix(out / "fields" / "field-011", "tmp", pid=pid) + "left-by-a-kill"
    (out / "fields" / stale).mkdir()  # as a kill mid-write leaves it
    seen: list[int] = []
    res = predict_sample(d / "smp", out, workers=0, progress=False, on_field=lambda i, info: seen.append(i))
    assert res["skipped"] == len(done) and res["predicted"] == 12 - len(done)
    names = [f.name for f in open_sample(d / "smp").fields]
    assert sorted(names[i] for i in seen) == sorted(set(names) - set(done))  # each missing field once
    assert {
        n: (out / "fields" / n / "field.json").stat().st_mtime_ns for n in done
    } == done  # kept as they were
    assert sorted(p.name for p in (out / "fields").iterdir()) == sorted(names)
    _assert_same_run(d / "serial", out)
    again = predict_sample(d / "smp", out, workers=0, progress=False)  # finished: nothing predicted again
    assert again["predicted"] == 0 and again["skipped"] == 12


def test_bad_input_stops_with_one_line(sim, tmp_path):
    d, _ = sim
    runner = CliRunner()
    res = runner.invoke(main, ["predict-sample", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert "nothing: SAMPLE: expected a TIMA job folder" in res.output
    # resuming with other settings names the run file and the setting
    res = runner.invoke(
        main, ["predict-sample", str(d / "smp"), "--out", str(d / "serial"), "--fraction", "0.05"]
    )
    assert res.exit_code == 2 and "run.json: fraction: differs" in res.output
    # a manifest row without its points
    (tmp_path / "m.csv").write_text("bse,pixel_size\nmissing.png,1\n")
    res = runner.invoke(main, ["predict-sample", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert "m.csv: line 2: a field needs a TIMA folder (tima) or a BSE image with its points" in res.output


def test_tima_job_and_manifest_layouts(tmp_path, real_dir):
    """Stage positions: TIMA's profile (mm, y up) and a manifest's stage_x_um / stage_y_um."""
    import shutil

    from PIL import Image

    job = tmp_path / "job"
    for name in ("1", "2"):
        (job / name).mkdir(parents=True)
        Image.fromarray(np.full((50, 60), 100, np.uint8)).save(job / name / "bse.png")
    shutil.copy(real_dir / "field-profile.xml", job / "profile.xml")
    s = open_sample(job)
    # fields 1 and 2 at (-4.5, 8.25) and (-4.5, 6.75) mm, 3 µm pixels: field 2 lies 500 px lower
    assert s.kind == "tima" and s.positioned and s.pixel_size_um == 3.0
    assert [f.origin_px for f in s.fields] == [(0, 0), (500, 0)]
    Image.fromarray(np.full((50, 60), 100, np.uint8)).save(tmp_path / "a.png")
    np.savez(tmp_path / "p.npz", rc=np.zeros((1, 2), np.int32), spectra=np.zeros((1, 3000), np.float32))
    (tmp_path / "m.csv").write_text(
        "bse,points,pixel_size,name,stage_x_um,stage_y_um\n"
        "a.png,p.npz,2,left,0,0\na.png,p.npz,2,right,100,-10\n"
    )
    s = open_sample(tmp_path / "m.csv")
    assert [f.origin_px for f in s.fields] == [(0, 0), (5, 50)] and s.shape_px == (55, 110)


def test_a_task_run_again_returns_its_finished_field(sim):
    """Dask re-runs a task whose worker was lost: a field already written is returned, not redone
    (the model path below does not exist: loading it would fail)."""
    from mingraph.workflows.sample import run_field

    d, _ = sim
    s = open_sample(d / "smp")
    folder = d / "serial" / "fields" / s.fields[3].name
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    info = run_field(s.fields[3], {"out": str(d / "serial"), "model": str(d / "no-model.pt")}, s.fields)
    assert info == json.loads((folder / "field.json").read_text())
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_tima_resin_below_the_jobs_bse_window_is_not_classified(tmp_path, real_dir):
    """A TIMA job's MinBse (15 % here) separates specimen from resin: darker pixels get no phase."""
    import shutil

    from PIL import Image
    from test_tima import write_xray_map

    field = tmp_path / "job" / "1"
    field.mkdir(parents=True)
    shutil.copy(real_dir / "field-profile.xml", field.parent / "profile.xml")
    raw = np.full((48, 64), 20000, np.uint16)
    raw[:, :20] = 33000  # a bright phase
    raw[:, 48:] = 5000  # resin: 7.6 % of the scale
    raw[0, 0] = 9830  # 14.9996 %: just below the window
    Image.fromarray(raw).save(field / "bse.png")
    dots = np.zeros(raw.shape, bool)
    dots[2::4, 2:48:4] = True  # TIMA measures dots on the specimen only
    Image.fromarray(dots.astype(np.uint8) * 255).save(field / "pixelmask.png")
    counts = np.zeros((int(dots.sum()), 3000), np.uint16)
    counts[:, 174] = np.where(raw[dots] > 30000, 2, 30)  # Si Ka on the darker phase
    counts[:, 640] = np.where(raw[dots] > 30000, 30, 2)  # Fe Ka on the bright one
    write_xray_map(field / "xray.map", counts, 1, counts.shape[0], np.where(counts.max(0) > 0, 16, 0))
    predict_sample(tmp_path / "job", tmp_path / "out", workers=0, progress=False)
    phases = tifffile.imread(tmp_path / "out" / "fields" / "1" / "phase_map.tif")
    outside = raw.astype(np.int64) * 100 < 15 * 65535
    assert outside.sum() == 48 * 16 + 1
    assert (phases[outside] == 255).all() and (phases[~outside] != 255).all()
    # a manifest's specimen mask wins over the profile's window
    Image.fromarray(np.full(raw.shape, 255, np.uint8)).save(tmp_path / "all.png")
    (tmp_path / "m.csv").write_text("tima,valid,pixel_size,name\njob/1,all.png,3,1\n")
    predict_sample(tmp_path / "m.csv", tmp_path / "out2", workers=0, progress=False)
    assert (tifffile.imread(tmp_path / "out2" / "fields" / "1" / "phase_map.tif") != 255).all()
