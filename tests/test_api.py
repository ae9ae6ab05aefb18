"""The Python API (mingraph.api): its doctests, and each function against the command line or the
lower-level pieces it stands on, with NumPy arrays and with HyperSpy signals."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

import mingraph
from mingraph import api
from mingraph.acquire.calibration import axis_edges, to_grid
from mingraph.acquire.simulate import simulate_tile
from mingraph.cli import main
from mingraph.common.errors import InputError
from mingraph.learn.bundle import point_features
from mingraph.workflows.predict import predict_field


@pytest.mark.parametrize(
    "module",
    [
        "mingraph.api",
        "mingraph.acquire.signals",
        "mingraph.common.outputs",
        "mingraph.common.output_paths",
        "mingraph.common.files",
        "mingraph.learn.bundle",
        "mingraph.learn.recipe",
        "mingraph.learn.train_fusion",
        "mingraph.learn.training_inputs",
        "mingraph.learn.registry",
        "mingraph.acquisition.state",
        "mingraph.learn.tiling",
        "mingraph.spectra.point_classifier",
        "mingraph.spectra.mineral_groups",
        "mingraph.acquire.formats",
        "mingraph.acquire.formats.hypermaps",
        "mingraph.acquire.formats.emsa",
        "mingraph.acquire.formats.points",
        "mingraph.analyse.mineralogy.minerals",
        "mingraph.analyse.mineralogy.validate",
        "mingraph.analyse.workbook",
        "mingraph.spectra.library_view",
        "mingraph.spectra.physics_model",
        "mingraph.workflows.field_input",
        "mingraph.analyse.sample_zarr",
        "mingraph.analyse.shared_points",
        "mingraph.analyse.methods",
        "mingraph.analyse.evaluate",
        "mingraph.graphs.build",
        "mingraph.learn.fusion_model",
        "mingraph_kernels.knn",
        "mingraph_kernels.sparse_rows",
    ],
)
def test_doctests(module):
    import importlib

    res = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0


@pytest.fixture(scope="module")
def field():
    tile = simulate_tile(11, 80)
    rr, cc = np.mgrid[3:80:7, 3:80:7]
    rc = np.stack([rr.ravel(), cc.ravel()], 1).astype(np.int32)
    return tile, rc, tile.eds.spectra(rc[:, 0], rc[:, 1])


def test_phase_map_equals_the_pipeline_underneath(field):
    tile, rc, spectra = field
    pm = mingraph.phase_map(tile.bse, rc, spectra, valid=tile.valid, pixel_size_um=0.5)
    bundle = mingraph.load_model()
    ref = predict_field(bundle, tile.bse, tile.valid, rc, point_features(bundle, spectra), progress=False)
    assert np.array_equal(pm.labels, ref.labels) and np.array_equal(pm.confidence, ref.confidence)
    assert pm.labels.shape == tile.bse.shape and pm.labels.dtype == np.int16
    assert (pm.labels[~tile.valid] == -1).all()
    assert pm.class_names == bundle.class_names and len(pm.legend) == len(bundle.class_names)
    assert all(row["colour"].startswith("#") and len(row["colour"]) == 7 for row in pm.legend)
    assert pm.legend[pm.class_names.index("quartz")]["density"] == pytest.approx(2.65, abs=0.01)
    assert np.array_equal(pm.point_classes, ref.eds_classes)


def test_phase_map_equals_predict_on_the_same_files(field, tmp_path):
    tile, rc, spectra = field
    bse16 = np.round(tile.bse * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "bse.tif", bse16)
    np.savez(tmp_path / "pts.npz", rc=rc, spectra=spectra)
    res = CliRunner().invoke(
        main,
        [
            "predict",
            "--bse",
            str(tmp_path / "bse.tif"),
            "--points",
            str(tmp_path / "pts.npz"),
            "--pixel-size",
            "1",
        ]
        + ["--out", str(tmp_path / "out")],
    )
    assert res.exit_code == 0, res.output
    written = tifffile.imread(tmp_path / "out" / "phase_map.tif").astype(np.int32)
    pm = mingraph.phase_map(bse16, rc, spectra, pixel_size_um=1.0)
    assert np.array_equal(np.where(pm.labels < 0, 255, pm.labels), written)


def test_a_hyperspy_eds_signal_is_taken_with_its_axes(field):
    hs = pytest.importorskip("hyperspy.api")
    tile, rc, spectra = field
    # the same counts on a Bruker-like axis: 20 eV channels from -0.48 keV
    edges = -480.0 + 20.0 * np.arange(1 + 1500)
    wide = np.zeros((len(rc), 1500), np.float32)
    src = np.arange(3000) * 10.0
    idx = np.clip(((src - edges[0]) // 20).astype(int), 0, 1499)
    np.add.at(wide, (slice(None), idx), spectra)
    sig = hs.signals.Signal1D(wide)
    ax = sig.axes_manager.signal_axes[0]
    ax.offset, ax.scale, ax.units = -0.48, 0.02, "keV"
    expect = to_grid(wide, axis_edges({"offset": -0.48, "scale": 0.02, "units": "keV"}, 1500, "x"), "x")[0]
    assert np.array_equal(api.spectra_on_grid(sig), expect)
    pm_sig = mingraph.phase_map(tile.bse, rc, sig, pixel_size_um=1.0)
    pm_arr = mingraph.phase_map(
        tile.bse, rc, wide, energy_axis={"offset": -0.48, "scale": 0.02, "units": "keV"}, pixel_size_um=1.0
    )
    assert np.array_equal(pm_sig.labels, pm_arr.labels)
    # a hypermap signal (H, W | channels) is read at the points, its pixel size from its axes
    cube = np.zeros(tile.bse.shape + (3000,), np.float32)
    cube[rc[:, 0], rc[:, 1]] = spectra
    hmap = hs.signals.Signal1D(cube)
    hmap.axes_manager.signal_axes[0].units = "eV"
    hmap.axes_manager.signal_axes[0].scale = 10.0
    for a in hmap.axes_manager.navigation_axes:
        a.scale, a.units = 0.25, "µm"
    pm_map = mingraph.phase_map(tile.bse, rc, hmap)
    assert pm_map.pixel_size_um == 0.25
    assert np.array_equal(pm_map.labels, mingraph.phase_map(tile.bse, rc, spectra).labels)


def test_to_signal_round_trip(field):
    pytest.importorskip("hyperspy.api")
    tile, rc, spectra = field
    pm = mingraph.phase_map(tile.bse, rc, spectra, pixel_size_um=0.8)
    sig = pm.to_signal()
    assert np.array_equal(sig["labels"].data, pm.labels) and np.array_equal(
        sig["confidence"].data, pm.confidence
    )
    for s in sig.values():
        assert [a.scale for a in s.axes_manager.signal_axes] == [0.8, 0.8]
        assert {a.units for a in s.axes_manager.signal_axes} == {"µm"}
    assert sig["labels"].metadata.Sample.phases == pm.class_names


def test_classify_spectra_is_the_encoders_classifier(field):
    from mingraph.spectra.encoder import class_probabilities

    _, _, spectra = field
    c = mingraph.classify_spectra(spectra)
    p = class_probabilities(mingraph.load_model().encoder, spectra)
    assert np.allclose(c.probabilities, p) and np.array_equal(c.classes, p.argmax(1))
    assert np.allclose(c.probabilities.sum(1), 1, atol=1e-5)


def test_mineralogy_of_a_phase_map_matches_the_hand_count():
    lab = np.full((30, 30), 0, np.int16)
    lab[:10] = 1
    lab[0, 0] = -1
    valid = np.ones((30, 30), bool)
    pm = api.PhaseMap(
        lab,
        np.ones((30, 30), np.float32),
        ["quartz", "pyrite"],
        [],
        np.zeros((0, 2), np.int32),
        None,
        valid,
        1.0,
    )
    m = mingraph.mineralogy(pm, n_boot=0)
    assert m.pixels.tolist() == [600, 299] and m.n_unclassified == 1
    assert m.area_pct.tolist() == pytest.approx([100 * 600 / 899, 100 * 299 / 899])
    dens = np.array([2.65, 5.01])  # the shipped list's quartz and pyrite
    mass = dens * np.array([600, 299])
    assert m.mass_pct.tolist() == pytest.approx((100 * mass / mass.sum()).tolist(), rel=1e-3)


@pytest.mark.parametrize(
    "kwargs, match", [({"classifier": "magic"}, "classifier"), ({"valid": np.ones((5, 5), bool)}, "valid")]
)
def test_bad_arguments_are_one_error(field, kwargs, match):
    tile, rc, spectra = field
    with pytest.raises(InputError, match=match):
        mingraph.phase_map(tile.bse, rc, spectra, **kwargs)


def test_bad_shapes_are_refused(field):
    tile, rc, spectra = field
    with pytest.raises(InputError, match="spectra"):
        mingraph.phase_map(tile.bse, rc, spectra[:-1])
    with pytest.raises(InputError, match="rc"):
        mingraph.phase_map(tile.bse, rc.T, spectra)
    with pytest.raises(InputError, match="energy_axis"):
        mingraph.phase_map(tile.bse, rc, spectra[:, :2048])
    with pytest.raises(InputError, match="outside"):
        mingraph.phase_map(tile.bse, rc + 100, spectra)
