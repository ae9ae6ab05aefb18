"""phase_map.tif read back with tifffile, one rule for unsure pixels, bootstrap intervals, regionprops."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import tifffile

from mingraph.analyse.mineralogy import grain_statistics, modal_mineralogy
from mingraph.analyse.mineralogy.bootstrap import bootstrap_sums, interval, percent
from mingraph.analyse.mineralogy.minerals import class_minerals
from mingraph.analyse.mineralogy.phasemap import write_legend, write_phase_map
from mingraph.analyse.mineralogy.process import sample_mineralogy
from mingraph.analyse.plots import phase_colours


def test_phase_map_tiff_has_colours_scale_and_imagej_metadata(tmp_path):
    lab = np.array([[0, 1, -1], [2, 2, 1]])
    cols = phase_colours(3)
    p = write_phase_map(tmp_path / "phase_map.tif", lab, cols, 0.25)
    with tifffile.TiffFile(p) as t:
        page = t.pages[0]
        assert page.photometric == tifffile.PHOTOMETRIC.PALETTE
        img = page.asarray()
        assert img.dtype == np.uint8 and img.tolist() == [[0, 1, 255], [2, 2, 1]]
        cmap = page.colormap
        assert cmap.shape == (3, 256)
        assert np.allclose(cmap[:, :3].T / 65535, cols, atol=1e-4)
        x = page.tags["XResolution"].value
        assert x[0] / x[1] == pytest.approx(4.0)  # pixels per µm
        assert t.is_imagej and t.imagej_metadata["unit"] == "micron"
        lut = np.asarray(t.imagej_metadata["LUTs"]).reshape(-1, 3, 256)[0]
        assert np.array_equal(lut, (cmap >> 8).astype(np.uint8))
    j, c = write_legend(
        tmp_path, ["a", "b", "c"], cols, 0.25, np.array([2.0, np.nan, 3.0]), ["SiO2", None, "FeS2"]
    )
    legend = json.loads(j.read_text())
    assert legend["not_classified"] == 255 and legend["pixel_size_um"] == 0.25
    assert legend["classes"][1]["density_g_cm3"] is None and legend["classes"][2]["formula"] == "FeS2"
    rows = list(csv.DictReader(open(c)))
    assert [r["id"] for r in rows] == ["0", "1", "2", "255"] and rows[0]["colour"] == "#1f77b4"


def test_phase_map_beyond_255_classes_is_16_bit(tmp_path):
    lab = np.array([[299, -1]])
    p = write_phase_map(tmp_path / "m.tif", lab, phase_colours(300), 1.0)
    img = tifffile.imread(p)
    assert img.dtype == np.uint16 and img.tolist() == [[299, 65535]]


def _noisy_mount(seed=0):
    rng = np.random.default_rng(seed)
    lab = np.full((90, 120), -1)
    for r0 in range(2, 90, 11):
        for c0 in range(2, 120, 11):
            lab[r0 : r0 + 8, c0 : c0 + 8] = rng.integers(0, 3, (8, 8)) // 2 + rng.integers(0, 2)
    lab[(lab >= 0) & (rng.random(lab.shape) < 0.03)] = -1
    valid = np.zeros(lab.shape, bool)
    valid[2:, 2:] = True
    valid &= (
        np.isin(np.arange(120) % 11, range(2, 10))[None, :]
        & np.isin(np.arange(90) % 11, range(2, 10))[:, None]
    )
    conf = rng.random(lab.shape)
    return lab, valid, conf


def test_one_rule_for_unsure_pixels_makes_totals_agree():
    lab, valid, conf = _noisy_mount()
    cm = class_minerals(["quartz", "pyrite", "galena"])
    for t in (0.0, 0.3, 0.7):
        res = sample_mineralogy(lab, valid, 2.0, cm, confidence=conf, min_confidence=t, n_boot=20)
        modal = modal_mineralogy(lab, valid, cm.names, cm.densities, conf, t)
        pix = np.array([r["pixels"] for r in modal.rows])
        assert res.pixels.tolist() == pix.tolist()
        assert res.n_low_confidence == modal.n_low_confidence and res.n_unclassified == modal.n_unclassified
        g = res.grains.grains
        assert np.bincount(g["class_id"], weights=g["area_px"], minlength=3).tolist() == pix.tolist()
        assert res.particles.classified_px.sum() == pix.sum()
        assert res.particles.area_px.sum() == valid.sum()  # unclassified pixels stay in their particle
        for tl in res.targets:
            assert tl.by_composition["target_px"][-1].sum() == pix[tl.class_id]
            lk = tl.locking
            assert lk["binary"].sum() + lk["liberated"] + lk["ternary"] + lk["complex"] == pix[tl.class_id]
        assert np.allclose(res.area_pct, [r["area_pct"] for r in modal.rows])
        assert np.allclose(res.mass_pct, [r["mass_pct"] for r in modal.rows])
    assert res.bootstrap_unit == "particles" and res.n_units == res.particles.n


def test_bootstrap_interval_matches_the_binomial_width():
    # 400 one-phase particles, half of each phase: sd of area % = 100 sqrt(0.25 / 400) = 2.5
    u = np.zeros((400, 2))
    u[:200, 0] = 10
    u[200:, 1] = 10
    reps = bootstrap_sums(u, n_boot=2000, seed=1)
    lo, hi = interval(percent(reps))[:, 0]
    assert lo < 50 < hi and (hi - lo) == pytest.approx(2 * 1.96 * 2.5, rel=0.15)
    same = interval(percent(bootstrap_sums(np.ones((50, 2)), 100)))
    assert np.allclose(same, 50)  # identical units: no spread


def test_intervals_cover_the_estimates():
    lab, valid, conf = _noisy_mount(3)
    res = sample_mineralogy(lab, valid, 1.0, class_minerals(["quartz", "pyrite", "galena"]), n_boot=100)
    assert np.all(res.area_ci[0] <= res.area_pct + 1e-9) and np.all(res.area_pct <= res.area_ci[1] + 1e-9)
    assert np.all(res.assay_ci[0] <= res.assay_wt_pct + 1e-6) and np.all(
        res.assay_wt_pct <= res.assay_ci[1] + 1e-6
    )
    for t in res.targets:
        assert t.composition_ci.shape == (2, 12) and np.all(t.composition_ci[0] <= t.composition_ci[1])


def test_grains_match_skimage_regionprops():
    from skimage.measure import label, regionprops_table

    rng = np.random.default_rng(5)
    from scipy import ndimage

    lab = (ndimage.gaussian_filter(rng.random((70, 90)), 2.5) * 40).astype(int) % 3
    valid = np.ones(lab.shape, bool)
    res = grain_statistics(lab, valid, 0.5, class_names=["a", "b", "c"])
    ref_map = label(lab + 1, background=0, connectivity=2)
    assert np.array_equal(res.grain_map, ref_map)
    t = regionprops_table(
        ref_map,
        properties=("label", "area", "centroid", "bbox", "perimeter_crofton", "equivalent_diameter_area"),
    )
    g = res.grains
    assert g["area_px"].tolist() == t["area"].astype(int).tolist()
    assert np.allclose(g["centroid_row"], t["centroid-0"]) and np.allclose(g["centroid_col"], t["centroid-1"])
    assert (
        g["row_min"].tolist() == t["bbox-0"].tolist() and g["col_max"].tolist() == (t["bbox-3"] - 1).tolist()
    )
    assert np.allclose(g["ecd_um"], t["equivalent_diameter_area"] * 0.5)
    # Crofton perimeters: both 4-direction estimates; skimage pads each region's box, so they agree to
    # within a few % away from the image edge (where ours counts the edge as boundary)
    inner = ~g["touches_border"] & (g["area_px"] >= 30)
    rel = g["perimeter_um"][inner] / (0.5 * t["perimeter_crofton"][inner])
    assert inner.sum() > 5 and np.all(np.abs(rel - 1) < 0.12) and abs(np.median(rel) - 1) < 0.04


def test_ecd_is_the_disc_diameter():
    yy, xx = np.mgrid[:41, :41]
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 <= 15**2
    rows = grain_statistics(np.where(disc, 0, 1), np.ones(disc.shape, bool), 1.0).rows()
    g = [r for r in rows if r["class_id"] == 0][0]
    assert g["ecd_um"] == pytest.approx(2 * math.sqrt(disc.sum() / math.pi))
