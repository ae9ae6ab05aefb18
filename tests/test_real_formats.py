"""Real instrument files of ../shared/data/formats (rosettasciio's test data, GPL: read at run
time, never copied): every Bruker .bcf imports and P45 predicts end to end, Nope.bcf is refused
in one line, the .spx and the EMSA files read.  rosettasciio's own reading is the reference."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO

from mingraph.acquire.dataset import open_dataset
from mingraph.acquire.formats import read_hypermap, read_spectrum
from mingraph.cli import main
from mingraph.common.errors import InputError

FORMATS = REPO.parent / "shared" / "data" / "formats"
BCF = ["P45_the_default_job", "Hitachi_TM3030Plus", "bcf_v2_50x50px", "16x16_12bit_packed_8bit"]
BCF += ["30x30_instructively_packed_16bit_compressed", "over16bit"]


def fmt(*parts: str):
    p = FORMATS.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not found (the shared formats sit beside the repository)")
    return p


def _raw(path):
    from rsciio.bruker import file_reader

    sigs = file_reader(str(path))
    eds = next(s for s in sigs if np.asarray(s["data"]).ndim == 3)
    return sigs, eds


@pytest.mark.parametrize("name", BCF)
def test_every_bcf_reads_with_its_counts_conserved(name):
    path = fmt("bruker", f"{name}.bcf")
    hm = read_hypermap(path)
    _, eds = _raw(path)
    raw = np.asarray(eds["data"])
    assert hm.cube.shape == (*raw.shape[:2], 3000) and hm.cube.dtype.kind == "u"
    rec = hm.calibration
    assert rec["rebinned"] and rec["channels"] == raw.shape[2]
    # every count is on the grid, below 0 eV or above 30 keV: none lost, none made
    total = int(raw.sum(dtype=np.int64))
    assert int(hm.cube.sum(dtype=np.int64)) + rec["counts_below_0_ev"] + rec["counts_above_grid"] == total
    assert rec["counts_below_0_ev"] < 0.1 * total  # the zero peak, no more
    assert hm.bse is not None and hm.bse.shape == raw.shape[:2]


def test_p45_imports_with_its_bse_and_pixel_size_and_predicts(tmp_path):
    path = fmt("bruker", "P45_the_default_job.bcf")
    res = CliRunner().invoke(main, ["import", str(tmp_path / "ds"), "--spectra", str(path)])
    assert res.exit_code == 0, res.output
    assert "8.737 µm" in res.output and "rebinned" in res.output and "'BSE'" in res.output
    f = open_dataset(tmp_path / "ds").field(0)
    sigs, eds = _raw(path)
    bse = next(np.asarray(s["data"]) for s in sigs if s["metadata"]["General"]["title"] == "BSE")
    assert np.allclose(f.bse, bse / 65535.0, atol=0.5 / 65535)  # scaled like --bse, not stretched
    assert f.pixel_size_um == pytest.approx(8.7368, abs=1e-3)
    # the 1.74 keV Si K-alpha line of the raw axis lands in grid channel 174 after rebinning
    raw_sum = np.asarray(eds["data"]).sum((0, 1), dtype=np.int64)
    e0, de = eds["axes"][2]["offset"] * 1000, eds["axes"][2]["scale"] * 1000
    peak_raw = e0 + de * (np.argmax(raw_sum[100:]) + 100)
    grid = f.eds.spectra(np.repeat(np.arange(75), 100), np.tile(np.arange(100), 75)).sum(0)
    assert abs(10 * np.argmax(grid[10:]) + 100 - peak_raw) <= 10
    res = CliRunner().invoke(main, ["predict", str(tmp_path / "ds"), "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p" / "phase_map.tif").is_file()


def test_pixel_size_override_and_notice(tmp_path):
    path = fmt("bruker", "Hitachi_TM3030Plus.bcf")
    res = CliRunner().invoke(main, ["import", str(tmp_path / "a"), "--spectra", str(path)])
    assert res.exit_code == 0 and "does not say; using 1 µm" in res.output
    res = CliRunner().invoke(
        main, ["import", str(tmp_path / "b"), "--spectra", str(path), "--pixel-size", "0.25"]
    )
    assert res.exit_code == 0 and open_dataset(tmp_path / "b").field(0).pixel_size_um == 0.25


def test_nope_bcf_is_refused_in_one_line(tmp_path):
    path = fmt("bruker", "Nope.bcf")
    res = CliRunner().invoke(main, ["import", str(tmp_path / "a"), "--spectra", str(path)])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "Nope.bcf: file: not readable as a Bruker .bcf" in res.output
    assert not (tmp_path / "a").exists()


def test_spx_point_spectrum():
    from rsciio.bruker import file_reader

    path = fmt("bruker", "extracted_from_bcf.spx")
    counts, rec = read_spectrum(path)
    raw = np.asarray(file_reader(str(path))[0]["data"])
    assert counts.shape == (3000,) and counts.dtype.kind == "u"
    assert int(counts.sum()) + rec["counts_below_0_ev"] + rec["counts_above_grid"] == int(raw.sum())


MSA = [
    "ISO_22029_2022_compliance",
    "ISO_22029_2022_compliance_XY_NCOLUMNS2",
    "ISO_22029_2022_compliance_scientific_notation",
    "ISO_22029_2022_compliance_title_multiple_line",
    "example1",
    "example1_with_seconds",
    "example1_wrong_date",
    "example1_wrong_date_empty_field",
    "example2",
    "example2_NCOLUMNS5",
]


@pytest.mark.parametrize("name", MSA)
def test_emsa_files_read(name):
    from rsciio.msa import file_reader

    path = fmt("msa", f"{name}.msa")
    counts, rec = read_spectrum(path)
    sig = file_reader(str(path))[0]
    raw = np.asarray(sig["data"], dtype=np.float64)
    assert counts.shape == (3000,) and np.isclose(counts.sum(), raw.sum(), rtol=1e-6)
    a = sig["axes"][0]
    assert rec["offset_ev"] == pytest.approx(float(a["offset"])) and rec["channel_ev"] == pytest.approx(
        a["scale"]
    )
    if name.startswith("example2"):  # 10 eV channels from 200 eV: whole channels, moved by 20
        assert np.allclose(counts[20:100], raw, rtol=1e-5) and not counts[:20].any()


def test_emsa_without_energy_units_is_refused():
    with pytest.raises(
        InputError, match="minimum_metadata.msa: energy axis: expected units keV or eV, got ''"
    ):
        read_spectrum(fmt("msa", "minimum_metadata.msa"))


def test_spx_point_list_imports_as_point_spectra(tmp_path):
    from mingraph.acquire.importing import import_field

    spx = fmt("bruker", "extracted_from_bcf.spx")
    msa = fmt("msa", "example2.msa")
    (tmp_path / "pts.csv").write_text(f"row,col,spectrum\n1,2,{spx}\n3,0,{msa}\n0,0,{spx}\n")
    from PIL import Image

    Image.fromarray(np.zeros((4, 5), np.uint16)).save(tmp_path / "b.png")
    lines = []
    ds = open_dataset(
        import_field(tmp_path / "ds", tmp_path / "b.png", points=tmp_path / "pts.csv", say=lines.append)
    )
    f = ds.field(0)
    want_spx, want_msa = read_spectrum(spx)[0], read_spectrum(msa)[0]
    got = f.eds.spectra(np.array([1, 3, 0]), np.array([2, 0, 0]))
    assert np.array_equal(got[0], want_spx) and np.array_equal(got[2], want_spx)
    assert np.allclose(got[1], want_msa) and int(f.eds_mask.sum()) == 3
    assert any("3 spectrum files" in ln for ln in lines)
