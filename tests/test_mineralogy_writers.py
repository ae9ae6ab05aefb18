"""The mineralogy files: what is written reads back as the analyses computed it, atomically."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from mingraph.analyse import mineralogy as M
from mingraph.analyse.mineralogy.particles import separate_particles
from mingraph.analyse.mineralogy.validate import classified_labels
from mingraph.analyse.plots import phase_colours

# 4x4, phase 0 in the top-left 3x2 block, phase 1 elsewhere
L4 = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
V4 = np.ones((4, 4), dtype=bool)


def _field():
    rng = np.random.default_rng(7)
    from scipy import ndimage

    lab = (ndimage.gaussian_filter(rng.random((60, 80)), 3) * 30).astype(int) % 4
    lab[rng.random(lab.shape) < 0.02] = -1
    valid = np.ones(lab.shape, bool)
    valid[:10, :12] = False
    conf = rng.random(lab.shape) ** 0.3
    return lab, valid, conf


NAMES = ["quartz", "albite", "chalcopyrite, Cu-Fe", "pyrite"]
DENS = [2.65, 2.62, 4.2, 5.0]


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_write_mineralogy_files_read_back(tmp_path):
    from PIL import Image

    lab, valid, conf = _field()
    out = tmp_path / "min"
    paths = M.write_mineralogy(out, lab, valid, NAMES, DENS, 1.5, confidence=conf)
    assert all(p.is_file() and p.parent == out for p in paths.values())
    assert sorted(os.listdir(out)) == sorted(p.name for p in paths.values())  # no temporary leftovers

    modal = M.modal_mineralogy(lab, valid, NAMES, DENS, conf)
    rows = _read(paths["modal_csv"])
    assert [r["phase"] for r in rows] == NAMES
    for r, m in zip(rows, modal.rows):
        assert int(r["pixels"]) == m["pixels"]
        assert float(r["area_pct"]) == m["area_pct"]  # repr round-trips exactly
        assert float(r["mass_pct"]) == m["mass_pct"]

    # one rule everywhere: low-confidence pixels are unclassified for grains and association too
    lab_c = classified_labels(lab, valid, 4, conf, 0.5)[0]
    grains = M.grain_statistics(lab_c, valid, 1.5, class_names=NAMES, particles=separate_particles(valid)[0])
    assert sum(p["area_um2"] for p in grains.phases) == pytest.approx(modal.n_classified * 1.5**2)
    g_rows = _read(paths["grains_csv"])
    assert len(g_rows) == grains.n_grains
    for r, g in zip(g_rows, grains.rows()):
        assert int(r["area_px"]) == g["area_px"] and float(r["ecd_um"]) == pytest.approx(
            g["ecd_um"], rel=1e-5
        )
        assert r["touches_border"] == str(g["touches_border"])
    d_rows = _read(paths["grain_size_distribution_csv"])
    assert [(r["phase"], int(r["grains"])) for r in d_rows] == [
        (d["phase"], d["grains"]) for d in grains.distribution
    ]
    s_rows = _read(paths["grain_summary_csv"])
    assert [int(r["grains"]) for r in s_rows] == [p["grains"] for p in grains.phases]

    assoc = M.association_matrix(lab_c, valid, len(NAMES), 1.5)
    a_rows = _read(paths["association_boundary_csv"])
    cats = NAMES + ["unclassified", "background"]
    for r in a_rows:
        i = cats.index(r["phase"])
        for name, v in r.items():
            if name != "phase":
                assert float(v) == assoc.boundary_um[i, cats.index(name)]
    p_rows = _read(paths["association_csv"])
    for r in p_rows:
        vals = [float(v) for k, v in r.items() if k != "phase"]
        assert sum(vals) == pytest.approx(100)

    summary = json.loads(paths["summary_json"].read_text())
    assert summary["field_px"] == [60, 80] and summary["pixel_size_um"] == 1.5
    assert summary["unclassified_fraction"] == pytest.approx(modal.unclassified_fraction)
    assert summary["low_confidence_fraction"] == pytest.approx(modal.low_confidence_fraction)
    assert summary["n_grains"] == grains.n_grains
    pal = phase_colours(len(NAMES))
    for ph in summary["phases"]:
        rgb = tuple(int(ph["colour"][i : i + 2], 16) / 255 for i in (1, 3, 5))
        assert np.allclose(rgb, pal[ph["class_id"]], atol=1 / 255)
    for key in ("modal_png", "grain_size_png", "association_png"):
        with Image.open(paths[key]) as im:
            im.verify()
        with Image.open(paths[key]) as im:
            assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 150


def test_modal_plot_uses_phase_colours(tmp_path):
    """The biggest bar is drawn in the phase map's colour for that phase."""
    from PIL import Image

    lab = np.zeros((10, 10), int)
    lab[:, 7:] = 1
    paths = M.write_mineralogy(tmp_path, lab, np.ones((10, 10), bool), ["a", "b"], None, 1.0)
    with Image.open(paths["modal_png"]) as im:
        pix = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(int)
    want = np.round(phase_colours(2)[0] * 255).astype(int)
    assert (np.abs(pix - want).max(axis=1) <= 2).sum() > 500


def test_writes_are_atomic(tmp_path, monkeypatch):
    lab, valid, conf = _field()
    out = tmp_path / "min"
    out.mkdir()
    (out / "modal.csv").write_text("old\n")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        M.write_mineralogy(out, lab, valid, NAMES, DENS, 1.5, plots=False)
    assert os.listdir(out) == ["modal.csv"]  # no temporary file left behind
    assert (out / "modal.csv").read_text() == "old\n"  # the old file is intact


def test_write_mineralogy_overwrites_and_handles_all_unclassified(tmp_path):
    lab = np.full((5, 6), -1)
    v = np.ones((5, 6), bool)
    p1 = M.write_mineralogy(tmp_path, lab, v, ["a", "b"], [1.0, 2.0], 1.0)
    p2 = M.write_mineralogy(tmp_path, lab, v, ["a", "b"], [1.0, 2.0], 1.0)
    assert p1 == p2
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in p2.values())
    s = json.loads(p2["summary_json"].read_text())
    assert s["unclassified_fraction"] == 1.0 and s["n_grains"] == 0 and s["phases"] == []
    assert _read(p2["grains_csv"]) == []


@pytest.mark.parametrize(
    "lab, valid",
    [
        (np.full((5, 6), -1), np.zeros((5, 6), bool)),  # no specimen at all
        (np.array([[0]]), np.ones((1, 1), bool)),
        (np.array([[0, 1, 1, -1, 0]]), np.ones((1, 5), bool)),
        (np.array([[0], [1], [1]]), np.ones((3, 1), bool)),
    ],
)
def test_write_mineralogy_on_degenerate_maps(tmp_path, lab, valid):
    names = ["quartz", "pyrite"]
    paths = M.write_mineralogy(tmp_path, lab, valid, names, None, 1.0, minerals=M.class_minerals(names))
    modal = _read(paths["modal_csv"])
    assert sum(int(r["pixels"]) for r in modal) == int(((lab >= 0) & valid).sum())
    assert len(_read(paths["grains_csv"])) == json.loads(paths["summary_json"].read_text())["n_grains"]
    assert len(_read(paths["particles_csv"])) == json.loads(paths["summary_json"].read_text())["n_particles"]
