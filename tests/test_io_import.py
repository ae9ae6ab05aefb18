"""Import of real data: the real tile and field, spectrum files in rosettasciio formats, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

from mingraph.acquire.dataset import open_dataset
from mingraph.acquire.fields import N_CHANNELS
from mingraph.acquire.formats import read_msa, read_spectrum_image
from mingraph.acquire.formats.images import read_bse
from mingraph.acquire.importing import import_field
from mingraph.cli import main
from mingraph.common.errors import InputError


def test_real_tile_imports_with_its_labels(real_dir, tmp_path):
    out = import_field(tmp_path / "ds", bse=real_dir / "tile-bse.png", labels=real_dir / "tile-phases.tiff")
    ds = open_dataset(out)
    assert len(ds) == 1 and ds.indices("test") == [0]
    s = ds.field(0)
    raw_bse = np.asarray(Image.open(real_dir / "tile-bse.png"))
    raw_lab = tifffile.imread(real_dir / "tile-phases.tiff")
    assert s.shape == (150, 150)
    # uint16 grey levels survive the round trip exactly
    assert np.array_equal(np.round(s.bse * 65535).astype(np.uint16), raw_bse)
    assert np.array_equal(s.labels, raw_lab)
    assert len(s.class_names) == raw_lab.max() + 1
    # the two dominant phases of near-equal BSE
    ids, counts = np.unique(s.labels, return_counts=True)
    assert set(ids[np.argsort(-counts)][:2]) == {9, 10}


def test_real_field_imports_its_sampling_mask(real_dir, tmp_path):
    out = import_field(
        tmp_path / "f", bse=real_dir / "field-bse.png", eds_mask=real_dir / "field-pixelmask.png"
    )
    s = open_dataset(out).field(0)
    raw = np.asarray(Image.open(real_dir / "field-pixelmask.png")) == 255
    assert np.array_equal(s.eds_mask, raw)
    assert 0.10 < s.eds_mask.mean() < 0.15  # ~12.7 % measured
    with pytest.raises(InputError, match="no EDS spectra"):
        s.eds.spectra(np.array([0]), np.array([0]))


def _eds_signal(data: np.ndarray, scale_kev: float = 0.01, offset_kev: float = 0.0) -> dict:
    axes = [
        {"name": "y", "size": data.shape[0], "offset": 0, "scale": 1, "units": "um", "navigate": True},
        {"name": "x", "size": data.shape[1], "offset": 0, "scale": 1, "units": "um", "navigate": True},
        {
            "name": "Energy",
            "size": data.shape[2],
            "offset": offset_kev,
            "scale": scale_kev,
            "units": "keV",
            "navigate": False,
        },
    ]
    md = {"General": {"title": "EDS map"}, "Signal": {"signal_type": "EDS_SEM"}}
    return {
        "data": data,
        "axes": axes,
        "metadata": md,
        "original_metadata": {},
        "tmp_parameters": {},
        "attributes": {"_lazy": False},
        "package_info": {},
        "learning_results": {},
        "models": {},
    }


def test_hspy_spectrum_image_round_trip(tmp_path):
    pytest.importorskip("h5py")
    from rsciio.hspy import file_writer

    rng = np.random.default_rng(1)
    cube = rng.poisson(2.0, size=(4, 5, 2048)).astype(np.float32)  # shorter axis: padded to 3000
    file_writer(str(tmp_path / "m.hspy"), _eds_signal(cube), show_progressbar=False)
    got, bse = read_spectrum_image(tmp_path / "m.hspy")
    assert got.shape == (4, 5, N_CHANNELS) and bse is None
    assert np.array_equal(got[..., :2048], cube) and not got[..., 2048:].any()
    # imported with a BSE image into a dataset: spectra come back at requested pixels
    Image.fromarray((rng.random((4, 5)) * 65535).astype(np.uint16)).save(tmp_path / "b.png")
    ds = open_dataset(import_field(tmp_path / "ds", bse=tmp_path / "b.png", spectra=tmp_path / "m.hspy"))
    sp = ds.field(0).eds.spectra(np.array([3, 0]), np.array([4, 1]))
    assert np.array_equal(sp[0, :2048], cube[3, 4]) and np.array_equal(sp[1, :2048], cube[0, 1])


def test_hspy_other_energy_axes_are_rebinned_or_refused(tmp_path):
    pytest.importorskip("h5py")
    from rsciio.hspy import file_writer

    cube = np.arange(2 * 2 * 100, dtype=np.float32).reshape(2, 2, 100) % 7
    # 5 eV channels from 0: grid channel j is the sum of source channels 2j and 2j + 1 (worked by hand)
    file_writer(str(tmp_path / "a.hspy"), _eds_signal(cube, scale_kev=0.005), show_progressbar=False)
    got, _ = read_spectrum_image(tmp_path / "a.hspy")
    assert np.allclose(got[..., :50], cube[..., 0::2] + cube[..., 1::2]) and not got[..., 50:].any()
    # 10 eV channels from -100 eV: shifted by ten channels, the first ten lie below 0 eV
    file_writer(str(tmp_path / "b.hspy"), _eds_signal(cube, offset_kev=-0.1), show_progressbar=False)
    got, _ = read_spectrum_image(tmp_path / "b.hspy")
    assert np.allclose(got[..., :90], cube[..., 10:]) and not got[..., 90:].any()
    # every count below 0 eV: an axis that cannot be right
    file_writer(str(tmp_path / "c.hspy"), _eds_signal(cube, offset_kev=-2.0), show_progressbar=False)
    with pytest.raises(InputError, match=r"c.hspy: energy axis: the channels cover -2000 to -1000 eV"):
        read_spectrum_image(tmp_path / "c.hspy")


def test_hspy_negative_or_nan_counts_are_refused(tmp_path):
    pytest.importorskip("h5py")
    from rsciio.hspy import file_writer

    cube = np.ones((2, 2, 100), np.float32)
    cube[1, 1, 5] = -3
    file_writer(str(tmp_path / "n.hspy"), _eds_signal(cube), show_progressbar=False)
    with pytest.raises(InputError, match="negative counts"):
        read_spectrum_image(tmp_path / "n.hspy")
    cube[1, 1, 5] = np.nan
    file_writer(str(tmp_path / "q.hspy"), _eds_signal(cube), show_progressbar=False)
    with pytest.raises(InputError, match="NaN"):
        read_spectrum_image(tmp_path / "q.hspy")


def test_msa_reference_spectrum(tmp_path):
    from rsciio.msa import file_writer

    counts = np.arange(3000, dtype=np.float64) % 17
    sig = {
        "data": counts,
        "axes": [
            {"name": "Energy", "size": 3000, "offset": 0.0, "scale": 0.01, "units": "keV", "navigate": False}
        ],
        "metadata": {"General": {"title": "quartz"}, "Signal": {"signal_type": "EDS_SEM"}},
        "original_metadata": {},
    }
    file_writer(str(tmp_path / "q.msa"), sig)
    assert np.allclose(read_msa(tmp_path / "q.msa"), counts)


def test_mismatched_shapes_and_bad_files(real_dir, tmp_path):
    Image.fromarray(np.zeros((10, 12), np.uint16)).save(tmp_path / "small.png")
    with pytest.raises(
        InputError,
        match=r"tile-phases.tiff: labels: shape \(150, 150\) differs from the BSE image \(10, 12\)",
    ):
        import_field(tmp_path / "x", bse=tmp_path / "small.png", labels=real_dir / "tile-phases.tiff")
    assert not (tmp_path / "x").exists()
    tifffile.imwrite(tmp_path / "float-labels.tiff", np.zeros((150, 150), np.float32))
    with pytest.raises(InputError, match="expected integer phase ids, got dtype float32"):
        import_field(tmp_path / "y", bse=real_dir / "tile-bse.png", labels=tmp_path / "float-labels.tiff")
    Image.fromarray(np.zeros((150, 150), np.uint8)).save(tmp_path / "empty-mask.png")
    with pytest.raises(InputError, match="mask is empty"):
        import_field(tmp_path / "z", bse=real_dir / "tile-bse.png", eds_mask=tmp_path / "empty-mask.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="junk.png: image: unreadable"):
        read_bse(tmp_path / "junk.png")
    tifffile.imwrite(tmp_path / "empty.tiff", np.zeros((0, 5), np.uint16))
    with pytest.raises(InputError, match="empty"):
        read_bse(tmp_path / "empty.tiff")
    tifffile.imwrite(tmp_path / "nan.tiff", np.full((3, 3), np.nan, np.float32))
    with pytest.raises(InputError, match="NaN"):
        read_bse(tmp_path / "nan.tiff")


def test_cli_import_appends_to_an_existing_dataset_or_overwrites_it(real_dir, tmp_path):
    r = CliRunner()
    args = [
        "import",
        str(tmp_path / "ds"),
        "--bse",
        str(real_dir / "tile-bse.png"),
        "--labels",
        str(real_dir / "tile-phases.tiff"),
    ]
    assert r.invoke(main, args).exit_code == 0
    before = (tmp_path / "ds" / "tiles.parquet").read_bytes()
    res = r.invoke(main, args)  # the same field again: refused, the dataset unchanged
    assert res.exit_code == 2 and "tile-bse: tile_id: already in" in res.output
    assert (tmp_path / "ds" / "tiles.parquet").read_bytes() == before
    assert r.invoke(main, args + ["--name", "second"]).exit_code == 0
    assert open_dataset(tmp_path / "ds").tile_ids == ["tile-bse", "second"]
    assert r.invoke(main, args + ["--overwrite"]).exit_code == 0
    assert open_dataset(tmp_path / "ds").tile_ids == ["tile-bse"]


def test_class_names_file(real_dir, tmp_path):
    (tmp_path / "names.json").write_text(json.dumps({"9": "quartz", "10": "albite"}))
    with pytest.raises(InputError, match="phase id 49 has no name"):
        import_field(
            tmp_path / "a",
            bse=real_dir / "tile-bse.png",
            labels=real_dir / "tile-phases.tiff",
            classes=tmp_path / "names.json",
        )
    names = {str(i): f"p{i}" for i in range(50)} | {"9": "quartz", "10": "albite"}
    (tmp_path / "names.json").write_text(json.dumps(names))
    ds = open_dataset(
        import_field(
            tmp_path / "b",
            bse=real_dir / "tile-bse.png",
            labels=real_dir / "tile-phases.tiff",
            classes=tmp_path / "names.json",
        )
    )
    assert ds.class_names[9] == "quartz" and len(ds.class_names) == 50


def test_class_name_files_are_strict(tmp_path):
    from mingraph.acquire.formats.images import read_class_names

    (tmp_path / "a.txt").write_text("quartz\nalbite\n")
    assert read_class_names(tmp_path / "a.txt") == ["quartz", "albite"]
    (tmp_path / "b.txt").write_text("quartz\n\nalbite\n")
    with pytest.raises(InputError, match="one non-empty name per line"):
        read_class_names(tmp_path / "b.txt")
    (tmp_path / "c.json").write_text(json.dumps(["quartz", "quartz"]))
    with pytest.raises(InputError, match="'quartz' appears twice"):
        read_class_names(tmp_path / "c.json")
