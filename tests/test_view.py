"""``mingraph view``: the scene read from a predict output (no napari), the offscreen screenshot
checked against the phase map's colours, a sample's lazy mosaic, and the line without napari."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from scipy import ndimage

from mingraph.cli import main


@pytest.fixture(scope="module")
def predicted(predicted_96):
    return predicted_96


def _legend(run):
    d = json.loads((run / "legend.json").read_text())
    rgb = {c["id"]: tuple(int(c["colour"][i : i + 2], 16) for i in (1, 3, 5)) for c in d["classes"]}
    return d, rgb


def test_scene_of_a_predict_output(predicted):
    from mingraph.view.runs import read_scene
    from mingraph.view.spectra import point_spectrum

    scene = read_scene(predicted)
    legend, rgb = _legend(predicted)
    assert [la.name for la in scene.layers] == [
        "BSE",
        "phase map",
        "confidence",
        "unclassified",
        "EDS points",
    ]
    assert all(la.scale == (legend["pixel_size_um"],) * 2 for la in scene.layers)
    phase = scene.layer("phase map")
    assert np.array_equal(phase.data, tifffile.imread(predicted / "phase_map.tif"))
    assert phase.background == legend["not_classified"]
    for k, colour in rgb.items():
        assert tuple(round(255 * v) for v in phase.colours[k][:3]) == colour
        assert phase.names[k] == legend["classes"][k]["name"]
    pts = scene.layer("EDS points")
    n = json.loads((predicted / "summary.json").read_text())["summary"]["eds_points"]
    assert pts.data.shape == (n, 2) and set(pts.properties) == {
        "mineral",
        "probability",
    }  # no physics: no fit
    assert np.all((pts.properties["probability"] > 0) & (pts.properties["probability"] <= 1))
    names = {c["name"] for c in legend["classes"]} | {"unknown"}
    assert set(pts.properties["mineral"]) <= names
    e, y, expected = point_spectrum(scene.points, 0)
    assert e.shape == y.shape == (3000,) and y.sum() > 0 and expected is None  # the encoder ran
    unc = np.asarray(scene.layer("unclassified").data)
    conf = tifffile.imread(predicted / "confidence.tif")
    assert np.array_equal(unc == 2, (phase.data != 255) & (conf > 0) & (conf < 0.5))


def test_expected_spectrum_at_the_recorded_calibration():
    from mingraph.spectra.calibrate import Instrument
    from mingraph.view.spectra import expected_of

    rec = {"classifier": "physics", "minerals": "shipped library"}
    rec["calibration"] = {"instrument": Instrument(beam_kev=20.0).to_dict()}
    s = expected_of(rec, "quartz")
    assert s.shape == (3000,) and abs(s.sum() - 1) < 1e-9 and int(np.argmax(s[100:])) + 100 == 173  # Si Kα
    assert expected_of(rec, "no such mineral") is None and expected_of(None, "quartz") is None


def test_screenshot_shows_the_legend_colours(predicted, tmp_path):
    pytest.importorskip("napari", reason="napari is not installed (pip install 'mingraph[view]')")
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is not installed: no X display to render napari's canvas on")
    png = tmp_path / "shot.png"
    cmd = [sys.executable, "-m", "mingraph.cli", "view", str(predicted), "--screenshot", str(png)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    from PIL import Image

    shot = np.asarray(Image.open(png))[..., :3].astype(int)
    phase = tifffile.imread(predicted / "phase_map.tif")
    conf = tifffile.imread(predicted / "confidence.tif")
    _, rgb = _legend(predicted)
    h, w = phase.shape
    hc, wc = shot.shape[:2]
    zoom = min(hc / h, wc / w)  # the view is fitted with no margin, centred
    # pixels inside a 7x7 block of one confidently classified phase, away from EDS points
    near_point = np.zeros(phase.shape, bool)
    rc = np.loadtxt(predicted / "points.csv", delimiter=",", skiprows=1, usecols=(0, 1), dtype=int, ndmin=2)
    near_point[rc[:, 0], rc[:, 1]] = True
    near_point = ndimage.binary_dilation(near_point, iterations=4)
    checked = {}
    for k in rgb:
        inside = ndimage.binary_erosion((phase == k) & (conf >= 0.5), np.ones((7, 7), bool)) & ~near_point
        for r, c in list(zip(*np.nonzero(inside)))[::7][:20]:
            y, x = hc / 2 + (r + 0.5 - h / 2) * zoom, wc / 2 + (c + 0.5 - w / 2) * zoom
            if y > hc - 80 and x > wc - 200:  # the scale bar
                continue
            got = shot[int(y), int(x)]
            assert np.abs(got - rgb[k]).max() <= 3, f"class {k} at pixel ({r}, {c}): {got} != {rgb[k]}"
            checked[k] = checked.get(k, 0) + 1
    assert len(checked) >= 2 and sum(checked.values()) >= 20, checked


def test_sample_opens_as_its_lazy_mosaic(tmp_path):
    from mingraph.analyse.mosaic import stitch
    from mingraph.view.mosaic import read_fields
    from mingraph.view.runs import read_scene

    run = CliRunner()
    r = run.invoke(main, ["simulate-sample", str(tmp_path / "s"), "--grid", "2x2", "--size", "48"])
    assert r.exit_code == 0, r.output
    r = run.invoke(
        main, ["predict-sample", str(tmp_path / "s"), "--out", str(tmp_path / "o"), "--workers", "0"]
    )
    assert r.exit_code == 0, r.output
    scene = read_scene(tmp_path / "o" / "sample")
    assert scene.kind == "sample"
    phase = scene.layer("phase map").data
    assert type(phase).__module__.startswith("dask")  # nothing read until drawn
    fields = read_fields(tmp_path / "o")
    thumbs = [dict(np.load(tmp_path / "o" / "fields" / f.name / "field.npz")) for f in fields]
    lab, _ = stitch(thumbs, [f.origin_px for f in fields], phase.shape, 1)  # the overview at step 1
    assert np.array_equal(np.asarray(phase), np.where(lab < 0, 255, lab))
    assert np.asarray(scene.layer("BSE").data).max() > 0
    pts = scene.layer("EDS points")
    assert len(pts.data) == len(scene.points) > 0
    assert np.all(pts.data < np.array(phase.shape))


def test_without_napari_one_line_says_what_to_install(predicted, monkeypatch):
    monkeypatch.setitem(sys.modules, "napari", None)  # import napari raises ImportError
    r = CliRunner().invoke(main, ["view", str(predicted)])
    assert r.exit_code != 0
    assert "napari is not installed: pip install 'mingraph[view]'" in r.output
    assert len(r.output.strip().splitlines()) == 1
