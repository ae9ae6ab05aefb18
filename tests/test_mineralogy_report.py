"""predict on a simulated particle mount with a user's mineral list and assay; report.html in Chromium."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import tifffile
import torch
from click.testing import CliRunner

from mingraph.acquire.simulate.minerals import class_names
from mingraph.analyse import mineralogy as M
from mingraph.analyse.report import write_report
from mingraph.cli import main


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """An untrained paper-shaped model over the simulator's classes with a PCA encoder."""
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.common.files import save_artifact
    from mingraph.learn.bundle import make_bundle
    from mingraph.learn.model import GATModel
    from mingraph.learn.train import DEFAULT_CONFIG
    from mingraph.spectra.encoder import fit_pca

    torch.manual_seed(0)
    s = simulate_tile(7, 64).field()
    rr, cc = np.nonzero(s.valid)
    enc = fit_pca(s.eds.spectra(rr[::5], cc[::5]))
    model = GATModel(num_classes=len(class_names()), hidden_channels=16).eval()
    b = make_bundle(model, enc, class_names(), dict(DEFAULT_CONFIG), {"note": "test"})
    return save_artifact(b, tmp_path_factory.mktemp("model") / "m.pt")


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_predict_with_user_list_assay_and_target(model_path, tmp_path):
    lst = tmp_path / "minerals.csv"
    lst.write_text(
        "name,formula,density,colour,aliases\n"
        "Quartz (SiO2),SiO2,2.7,#123456,quartz\n"
        "albite,NaAlSi3O8,,#abcdef,\n"
        "microcline,,2.56,,\n"
    )
    assay = tmp_path / "assay.csv"
    assay.write_text("element,wt_pct\nSi,30\nK2O,5\n")
    out = tmp_path / "out"
    args = ["predict", "--simulate", "96", "--model", str(model_path), "--out", str(out), "--seed", "4"]
    args += [
        "--minerals",
        str(lst),
        "--assay",
        str(assay),
        "--target",
        "Quartz (SiO2)",
        "--min-confidence",
        "0",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    legend = json.loads((out / "legend.json").read_text())
    q = legend["classes"][0]
    assert q["name"] == "Quartz (SiO2)" and q["colour"] == "#123456" and q["density_g_cm3"] == 2.7
    assert legend["classes"][1]["density_g_cm3"] is None  # albite: no density in the list, none guessed
    with tifffile.TiffFile(out / "phase_map.tif") as t:
        assert t.pages[0].colormap[:, 0].tolist() == [0x12 * 257, 0x34 * 257, 0x56 * 257]
    m = out / "mineralogy"
    modal = {r["phase"]: r for r in _rows(m / "modal.csv")}
    assert "Quartz (SiO2)" in modal and modal["albite"]["mass_pct"] == ""
    assert (
        modal["Quartz (SiO2)"]["in_mineral_list"] == "True" and modal["pyrite"]["in_mineral_list"] == "False"
    )
    a = {r["element"]: r for r in _rows(m / "assay.csv")}
    assert float(a["Si"]["measured_wt_pct"]) == 30 and a["K"]["measured_wt_pct"]  # K2O converted to K
    summary = json.loads((m / "mineralogy.json").read_text())
    assert summary["targets"] == ["Quartz (SiO2)"] and summary["min_confidence"] == 0.0
    assert (
        "albite" in summary["mineral_list"]["no_density"]
        and "pyrite" in summary["mineral_list"]["not_in_list"]
    )
    md = (out / "report.md").read_text()
    assert "## Calculated assay" in md and "Classes without a density" in md
    lib = _rows(m / "liberation.csv")
    assert {r["phase"] for r in lib} == {"Quartz (SiO2)"}
    # a target the model does not know is refused before predicting
    bad = CliRunner().invoke(main, [*args[:-4], "--target", "unobtainium", "--overwrite"])
    assert bad.exit_code == 2 and "--target" in bad.output and "unobtainium" in bad.output


def _mount_report(tmp_path):
    rng = np.random.default_rng(2)
    lab = np.full((120, 160), -1)
    for r0 in range(4, 116, 14):
        for c0 in range(4, 156, 14):
            lab[r0 : r0 + 10, c0 : c0 + 10] = rng.integers(0, 3)
            lab[r0 : r0 + 4, c0 : c0 + 5] = rng.integers(0, 3)
    valid = lab >= 0
    names = ["quartz", "pyrite", "chalcopyrite"]
    cm = M.minerals.class_minerals(names)
    files = M.write_mineralogy(tmp_path / "mineralogy", lab, valid, names, None, 2.0, minerals=cm, n_boot=50)
    return write_report(tmp_path, {}, files, {"input": "test mount"})


def test_report_shows_process_tables_with_intervals(tmp_path):
    md = _mount_report(tmp_path).read_text()
    for title in (
        "Calculated assay",
        "Element deportment",
        "Liberation by area %",
        "Liberation by free surface",
    ):
        assert f"## {title}" in md
    assert re.search(r"\| class 100 \| \d+\.\d \(\d+\.\d–\d+\.\d\)", md)  # intervals over particles
    assert "![Cumulative liberation yield](mineralogy/liberation.png)" in md
    assert re.search(r"## Theoretical grade–recovery \(mass %.*\n\n\| phase \| at 50 % recovery", md)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed")
def test_report_html_renders_in_chromium(tmp_path):
    _mount_report(tmp_path)
    page = (tmp_path / "report.html").read_text()
    probe = (
        "<script>window.addEventListener('load',()=>{const i=[...document.images];"
        "document.body.setAttribute('data-probe',JSON.stringify({images:i.length,"
        "loaded:i.filter(x=>x.complete&&x.naturalWidth>0).length,"
        "tables:document.querySelectorAll('table').length,"
        "rows:document.querySelectorAll('tbody tr').length}))});</script></body>"
    )
    (tmp_path / "probe.html").write_text(page.replace("</body>", probe))
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    dom = subprocess.run(
        [*cmd, "--dump-dom", (tmp_path / "probe.html").as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    found = re.search(r"data-probe=\"([^\"]+)\"", dom)
    assert found, dom[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    assert probe["images"] >= 5 and probe["loaded"] == probe["images"]
    assert probe["tables"] >= 6 and probe["rows"] > 30
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*cmd, "--window-size=1200,2400", f"--screenshot={shot}", (tmp_path / "report.html").as_uri()],
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    with Image.open(shot) as im:
        px = np.asarray(im.convert("L"))
    assert px.shape == (2400, 1200) and px.std() > 10  # drawn, not blank
