"""Cases 18, 19, 22, 24 and 25 of ../shared/cases (README there): sizes checked before allocation,
grey levels by what the data holds, counts checked against float32, declared lengths checked.
Each case's right outcome on the shared file, and the whole kind on inputs made here."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tifffile
from click.testing import CliRunner
from conftest import REPO, case
from PIL import Image

from mingraph.acquire import limits
from mingraph.acquire.dataset import TileRecord, open_dataset, write_dataset
from mingraph.acquire.fields import FLOAT32_MAX, N_CHANNELS, DenseSpectrumImage, bse_to_u16, check_counts
from mingraph.acquire.formats import read_msa, read_points
from mingraph.acquire.formats.images import bse_levels, image_header, read_bse, read_labels
from mingraph.acquire.formats.points import load_points, save_points
from mingraph.acquire.formats.tima import read_xray_map, specimen_mask
from mingraph.cli import main
from mingraph.common.errors import InputError
from mingraph.graphs.shards import sparse_spectra


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(res) -> str:
    """The CLI's refusal: exit 2 and a single error line (notices aside), no traceback."""
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


def _bse_tif(path, shape=(8, 8)):
    tifffile.imwrite(path, (np.arange(np.prod(shape)) % 251).astype(np.uint8).reshape(shape))
    return path


# 18: counts checked against float32, the dtype they are stored and computed in


def test_case18_counts_beyond_float32_are_refused_naming_spectra(tmp_path):
    d = case("18_counts_beyond_float32")
    res = run(
        "predict",
        "--bse",
        d / "bse.tif",
        "--points",
        d / "points.npz",
        "--pixel-size",
        1,
        "--out",
        tmp_path / "o",
    )
    line = one_line_error(res)
    assert "spectra" in line and "float32" in line and "3.4e+38" in line
    assert not (tmp_path / "o").exists()


def test_counts_check_holds_float32_range_for_values_and_totals():
    top = np.zeros((2, N_CHANNELS))
    top[0, 5] = FLOAT32_MAX  # the largest float32 itself is storable
    check_counts(top, "x", "spectra")
    assert np.isfinite(top.astype(np.float32)).all()
    for bad in (
        np.full((1, 4), 1e39),  # a count beyond float32 (float64 input)
        np.full((1, N_CHANNELS), 1.2e35),  # each fits, the spectrum's total (3.6e38) does not
        np.full((1, N_CHANNELS), 2e35, np.float32),  # float32 input whose total overflows
        np.array([[1.0, np.inf]]),
        np.array([[1.0, np.nan]]),
        np.array([[1.0, -1.0]]),
    ):
        with pytest.raises(InputError, match="spectra"):
            check_counts(bad, "x", "spectra")
    with pytest.raises(InputError, match="float32's range"):
        check_counts(np.full((1, 4), 1e39), "x", "spectra")
    check_counts(np.full((3, N_CHANNELS), np.iinfo(np.uint64).max, np.uint64), "x", "spectra")  # far below
    with pytest.raises(InputError, match="numeric"):
        check_counts(np.ones((1, 3), complex), "x", "spectra")


def _points_npz(path, spectra, rc=None):
    rc = np.array([[i, i] for i in range(spectra.shape[0])]) if rc is None else rc
    np.savez(path, rc=rc, spectra=spectra)
    return path


def test_every_entry_of_spectra_refuses_counts_beyond_float32(tmp_path):
    big = np.zeros((2, N_CHANNELS))
    big[1, 100] = 5e40
    # point spectra .npz, through the CLI (predict) and the import
    pts = _points_npz(tmp_path / "p.npz", big)
    with pytest.raises(InputError, match=r"p.npz: spectra: .*float32"):
        read_points(pts)
    bse = _bse_tif(tmp_path / "b.tif")
    line = one_line_error(run("import", tmp_path / "ds", "--bse", bse, "--points", pts, "--pixel-size", 1))
    assert "spectra" in line and "float32" in line
    assert not (tmp_path / "ds").exists()
    # the same counts on another energy axis (rebinned): refused before rebinning
    np.savez(tmp_path / "q.npz", rc=[[0, 0], [1, 1]], spectra=big, offset_ev=5.0, channel_ev=10.0)
    with pytest.raises(InputError, match="float32"):
        read_points(tmp_path / "q.npz")
    # an EMSA spectrum
    msa = tmp_path / "s.msa"
    msa.write_text(_msa(["1.0", "2e40", "3.0"]))
    with pytest.raises(InputError, match=r"s.msa: counts: .*float32"):
        read_msa(msa)
    # a hypermap (HyperSpy file)
    from rsciio.hspy import file_writer
    from test_io_import import _eds_signal

    from mingraph.acquire.formats import read_spectrum_image

    cube = np.zeros((2, 2, N_CHANNELS))
    cube[0, 1, 7] = 1e39
    file_writer(str(tmp_path / "m.hspy"), _eds_signal(cube), show_progressbar=False)
    with pytest.raises(InputError, match=r"m.hspy: spectra: .*float32"):
        read_spectrum_image(tmp_path / "m.hspy")
    # an in-memory spectrum image, and a dataset written from records (a float32 cast on write)
    with pytest.raises(InputError, match="float32"):
        DenseSpectrumImage(cube)
    rec = TileRecord(
        "t", "test", np.zeros((2, 2), np.float32), np.ones((2, 2), bool), eds_kind="points", spectra=big
    )
    rec.eds_rc = np.array([[0, 0], [1, 1]])
    with pytest.raises(InputError, match="float32"):
        write_dataset(tmp_path / "ds2", [rec], ["a"])
    assert not (tmp_path / "ds2").exists()
    # shards store uint32 counts: beyond 2**32 - 1 refused, never wrapped
    with pytest.raises(InputError, match="2\\*\\*32"):
        sparse_spectra(np.full((1, N_CHANNELS), 2.0**33, np.float32))


# 19 and item 4: sizes before allocation, one rule for every format


def test_case19_tiff_bomb_is_refused_before_decoding_under_an_address_space_limit(tmp_path):
    d = case("19_tiff_bomb")
    pts = case("18_counts_beyond_float32") / "points.npz"
    from shutil import which

    if which("prlimit") is None:
        pytest.skip("prlimit (util-linux) not installed")
    cmd = ["prlimit", "--as=3000000000", sys.executable, "-c", "from mingraph.cli import main; main()"]
    cmd += ["predict", "--bse", str(d / "bomb_30000.tif"), "--points", str(pts), "--pixel-size", "1"]
    cmd += ["--out", str(tmp_path / "o")]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop(limits.ENV_MAX_PIXELS, None)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "bomb_30000.tif" in lines[0] and "30000 x 30000" in lines[0] and "before decoding" in lines[0]
    assert not (tmp_path / "o").exists()
    # the header is what is read: the size comes without decoding 900 MP
    assert image_header(d / "bomb_30000.tif")[:2] == ((30000, 30000), 1)


@pytest.fixture
def no_decoding(monkeypatch):
    """Record every decode of pixels (tifffile and Pillow)."""
    calls = []
    real_tiff, real_pil = tifffile.TiffPage.asarray, Image.Image.load
    monkeypatch.setattr(
        tifffile.TiffPage, "asarray", lambda *a, **k: calls.append("tiff") or real_tiff(*a, **k)
    )
    monkeypatch.setattr(Image.Image, "load", lambda *a, **k: calls.append("pil") or real_pil(*a, **k))
    return calls


def test_pixel_limit_refuses_every_format_alike_before_decoding(tmp_path, monkeypatch, no_decoding):
    a = (np.arange(100 * 101) % 65536).astype(np.uint16).reshape(100, 101)
    tifffile.imwrite(tmp_path / "a.tif", a)
    Image.fromarray(a).save(tmp_path / "a.png")
    no_decoding.clear()  # writing decoded nothing of a file
    monkeypatch.setenv(limits.ENV_MAX_PIXELS, "10000")
    msgs = []
    for name in ("a.tif", "a.png"):
        for reader in (read_bse, read_labels):
            with pytest.raises(InputError, match="10,100 pixels, above mingraph's limit of 10,000") as e:
                reader(tmp_path / name)
            msgs.append(str(e.value).split(": ", 1)[1])
    assert no_decoding == [] and len(set(msgs)) == 1  # nothing decoded; the same words for both formats
    monkeypatch.setenv(limits.ENV_MAX_PIXELS, "10100")  # the limit itself is allowed
    for name in ("a.tif", "a.png"):
        assert np.array_equal(bse_to_u16(read_bse(tmp_path / name)), a)
    monkeypatch.setenv(limits.ENV_MAX_PIXELS, "lots")
    with pytest.raises(InputError, match="MINGRAPH_MAX_PIXELS"):
        read_bse(tmp_path / "a.tif")


def test_memory_rule_refuses_what_the_process_cannot_get(tmp_path, monkeypatch, no_decoding):
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((300, 200), np.uint8), compression="zlib")
    # 60 000 pixels: 1 byte decoded + the float32 levels and a compare (6) = 420 000 bytes
    monkeypatch.setattr(limits, "memory_available", lambda: 419_999)
    with pytest.raises(
        InputError, match=r"z.tif: image: a 300 x 200 image needs 0.4 MB .* refused before decoding"
    ):
        read_bse(tmp_path / "z.tif")
    assert no_decoding == []
    monkeypatch.setattr(limits, "memory_available", lambda: 420_000)
    assert read_bse(tmp_path / "z.tif").shape == (300, 200)
    # a TIMA map's header claims its size; checked before allocating it
    head = b"Tescan X-ray map" + b"".join(
        f"{k:<9} {v}".ljust(80).encode()
        for k, v in (("WIDTH", 100000), ("HEIGHT", 100000), ("NCHANNELS", 3000))
    )
    (tmp_path / "xray.map").write_bytes(head + "END".ljust(80).encode() + bytes(3000))
    monkeypatch.undo()
    with pytest.raises(InputError, match=r"xray.map: header: a 100000 x 100000 map of 3000 channels needs"):
        read_xray_map(tmp_path / "xray.map")
    # a hypermap read block by block: each block is held to the rule before it is read
    from rsciio.hspy import file_writer
    from test_io_import import _eds_signal

    from mingraph.acquire.importing import import_field

    file_writer(
        str(tmp_path / "m.hspy"), _eds_signal(np.ones((2, 3, N_CHANNELS), np.uint16)), show_progressbar=False
    )
    monkeypatch.setattr(limits, "memory_available", lambda: 1000)
    with pytest.raises(
        InputError, match=r"m.hspy: spectrum image: a block of 2 x 3 spectra of 3000 channels needs"
    ):
        import_field(tmp_path / "ds", bse=tmp_path / "z.tif", spectra=tmp_path / "m.hspy")
    assert not (tmp_path / "ds").exists()


def test_memory_available_sees_an_address_space_limit():
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (2_000_000_000, resource.RLIM_INFINITY));"
        "from mingraph.acquire.limits import memory_available; print(memory_available())"
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert p.returncode == 0, p.stderr
    assert 0 < int(p.stdout) < 2_000_000_000


def test_readers_make_no_float64_copy_of_an_image(tmp_path):
    a = (np.arange(1000 * 1000) % 256).astype(np.uint8).reshape(1000, 1000)
    tifffile.imwrite(tmp_path / "a.tif", a)
    b16 = a.astype(np.uint16) * 257
    for fn, arg, bound in (
        (read_bse, tmp_path / "a.tif", 1 + 4 + 1),  # decoded uint8, float32 levels, slack
        (lambda x: bse_levels(x, "x"), b16, 4 + 1),
        (bse_to_u16, b16 / np.float32(65535), 4 + 2 + 1),
        (lambda x: specimen_mask(x, (15.0, 100.0)), b16 / np.float32(65535), 4 + 2 + 1 + 1),
    ):
        tracemalloc.start()
        out = fn(arg)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert out.shape == (1000, 1000)
        assert peak < bound * a.size, (fn, peak / a.size)  # a float64 copy alone is 8 bytes a pixel


# 22: a large PNG is read like the same TIFF, under mingraph's own rule


def test_case22_large_png_is_read_like_a_tiff(tmp_path):
    d = case("22_large_png_refused")
    res = run("import", tmp_path / "ds", "--bse", d / "big_13500.png", "--pixel-size", 1)
    assert res.exit_code == 0, res.output
    row = pq.read_table(tmp_path / "ds" / "tiles.parquet", columns=["height", "width", "bse"]).to_pylist()[0]
    assert (row["height"], row["width"]) == (13500, 13500)
    got = np.frombuffer(row["bse"], "<u2").reshape(13500, 13500)  # the stored 16-bit levels
    old = Image.MAX_IMAGE_PIXELS  # the reference: Pillow with its limit lifted here only
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(d / "big_13500.png") as im:
            assert im.mode == "L"
            ref = np.asarray(im)
    finally:
        Image.MAX_IMAGE_PIXELS = old
    assert np.array_equal(got, ref.astype(np.uint16) * 257)


def test_a_small_mingraph_limit_never_stays_on_pillow(tmp_path, monkeypatch):
    """Reading under MINGRAPH_MAX_PIXELS leaves Pillow's own limit as it was, so a later reader in
    the same process (a figure checked with ``Image.open``) is not held to it."""
    a = np.zeros((200, 150), np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    before = Image.MAX_IMAGE_PIXELS
    monkeypatch.setenv(limits.ENV_MAX_PIXELS, "100")
    with pytest.raises(InputError, match="a.png"):
        read_bse(tmp_path / "a.png")  # 30,000 pixels: refused under a limit of 100
    monkeypatch.setenv(limits.ENV_MAX_PIXELS, "40000")
    assert read_bse(tmp_path / "a.png").shape == (200, 150)
    assert Image.MAX_IMAGE_PIXELS == before
    monkeypatch.delenv(limits.ENV_MAX_PIXELS)
    with Image.open(tmp_path / "a.png") as im:  # Pillow's own check, its own limit
        assert im.size == (150, 200)


def test_pillows_own_limit_is_replaced_by_mingraphs(tmp_path, monkeypatch):
    a = (np.arange(64 * 64) % 256).astype(np.uint8).reshape(64, 64)
    Image.fromarray(a).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tif", a)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # a library limit far below the image
    monkeypatch.delenv(limits.ENV_MAX_PIXELS, raising=False)
    png, tif = read_bse(tmp_path / "a.png"), read_bse(tmp_path / "a.tif")
    assert np.array_equal(png, tif) and np.array_equal(bse_to_u16(png), a.astype(np.uint16) * 257)
    # mingraph's limit holds while it opens a file; Pillow's own setting is left as it was
    assert Image.MAX_IMAGE_PIXELS == 100
    from mingraph.acquire.sample import image_shape

    assert image_shape(tmp_path / "a.png") == image_shape(tmp_path / "a.tif") == (64, 64)


# 24: grey levels by what the data holds, not the container's dtype


def test_case24_int32_container_keeps_its_16_bit_levels(tmp_path):
    d = case("24_bse_int32_container")
    res = run("import", tmp_path / "ds", "--bse", d / "bse_int32.tif")
    assert res.exit_code == 0, res.output
    raw = tifffile.imread(d / "bse_int32.tif")
    assert raw.dtype == np.int32 and raw.max() == 65535
    got = bse_to_u16(open_dataset(tmp_path / "ds").field(0).bse)
    assert np.array_equal(got, raw.astype(np.uint16))
    assert np.unique(got).size == np.unique(raw).size  # every level survives (3 did before)


@pytest.mark.parametrize("dtype", [np.int32, np.uint32, np.int64, np.uint64])
def test_wide_integer_containers_holding_16_bit_levels(dtype):
    ramp = np.arange(65536, dtype=np.int64).reshape(256, 256)
    got = bse_levels(ramp.astype(dtype), "x")
    assert got.dtype == np.float32
    assert np.array_equal(got, (ramp / 65535.0).astype(np.float32))  # the hand-worked k / 65535
    assert np.array_equal(bse_to_u16(got), ramp)
    with pytest.raises(InputError, match=f"levels up to 65536 in a {np.dtype(dtype)} image"):
        bse_levels(np.array([[0, 65536]], dtype), "x")


def test_8_and_16_bit_containers_and_refusals():
    k8 = np.arange(128, dtype=np.int8).reshape(8, 16)
    assert np.array_equal(bse_levels(k8, "x"), (k8 / 255.0).astype(np.float32))
    assert np.array_equal(bse_levels(k8.astype(np.uint8), "x"), (k8 / 255.0).astype(np.float32))
    k16 = np.arange(0, 32768, 7, dtype=np.int16).reshape(-1, 1)
    assert np.array_equal(bse_levels(k16, "x"), (k16 / 65535.0).astype(np.float32))
    for bad, dt in ((np.array([[-1, 5]], np.int16), "int16"), (np.array([[-3, 5]], np.int32), "int32")):
        with pytest.raises(InputError, match=f"negative grey levels .* in a {dt} image"):
            bse_levels(bad, "x")
    with pytest.raises(InputError, match="dtype bool"):
        bse_levels(np.zeros((2, 2), bool), "x")


def test_pil_mode_i_files_read_as_16_bit_levels(tmp_path):
    ramp = np.arange(0, 65536, 16, dtype=np.int32).reshape(64, 64)
    Image.fromarray(ramp, mode="I").save(tmp_path / "i.tif")  # what PIL writes for 16-bit data in mode I
    assert tifffile.imread(tmp_path / "i.tif").dtype == np.int32
    assert np.array_equal(bse_to_u16(read_bse(tmp_path / "i.tif")), ramp)
    bad = ramp * 2
    Image.fromarray(bad, mode="I").save(tmp_path / "wide.tif")
    with pytest.raises(InputError, match=r"wide.tif: bse: levels up to 131040 in a int32 image"):
        read_bse(tmp_path / "wide.tif")


# 25: declared lengths checked against what the file holds


def _msa(values: list[str], npoints: int | None = None, datatype: str = "Y", ncolumns: int = 1) -> str:
    n = len(values) if npoints is None else npoints
    head = [
        "#FORMAT      : EMSA/MAS Spectral Data File",
        "#VERSION     : 1.0",
        f"#NPOINTS     : {n}",
        f"#NCOLUMNS    : {ncolumns}",
        "#XUNITS      : keV",
        f"#DATATYPE    : {datatype}",
        "#XPERCHAN    : 0.01",
        "#OFFSET      : 0.0",
        "#SPECTRUM    : Spectral Data Starts Here",
    ]
    return "\n".join(head + values + ["#ENDOFDATA   : End Of Data and File"]) + "\n"


def test_case25_truncated_msa_names_npoints_and_the_count_found(tmp_path):
    d = case("25_msa_truncated")
    with pytest.raises(
        InputError, match=r"truncated.msa: header NPOINTS: says 2048 channels but the data holds 1000"
    ):
        read_msa(d / "truncated.msa")
    whole = read_msa(d / "ok_kev.msa")
    assert whole.shape == (N_CHANNELS,) and whole[2048:].sum() == 0 and whole[:2048].sum() > 0
    # from the CLI: a point list naming the file, exit 2 in one line
    bse = _bse_tif(tmp_path / "b.tif")
    (tmp_path / "pts.csv").write_text(f"row,col,spectrum\n1,1,{d / 'truncated.msa'}\n")
    line = one_line_error(
        run("import", tmp_path / "ds", "--bse", bse, "--points", tmp_path / "pts.csv", "--pixel-size", 1)
    )
    assert "NPOINTS" in line and "2048" in line and "1000" in line


def test_declared_lengths_of_every_msa_layout(tmp_path):
    cases = {
        "y.msa": (_msa(["1.0"] * 5, npoints=10), 5),
        "xy.msa": (_msa([f"{i * 0.01:.2f}, 3.0" for i in range(4)], npoints=10, datatype="XY"), 4),
        "cols.msa": (_msa(["1.0, 2.0, 3.0, 4.0, 5.0"] * 2, npoints=15, ncolumns=5), 10),
    }
    for name, (text, found) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError, match=f"header NPOINTS: says .* the data holds {found} values"):
            read_msa(tmp_path / name)
    (tmp_path / "ok.msa").write_text(_msa(["1.0, 2.0, 3.0, 4.0, 5.0"] * 2, npoints=10, ncolumns=5))
    assert read_msa(tmp_path / "ok.msa")[:10].tolist() == [1, 2, 3, 4, 5] * 2
    (tmp_path / "more.msa").write_text(_msa(["1.0"] * 6, npoints=5))  # the standard's example has one more
    assert read_msa(tmp_path / "more.msa")[:6].sum() == 6
    (tmp_path / "frac.msa").write_text(
        _msa(["1.0"] * 5, npoints=4).replace("NPOINTS     : 4", "NPOINTS : 4.5")
    )
    with pytest.raises(InputError, match="header NPOINTS: expected a positive whole number"):
        read_msa(tmp_path / "frac.msa")


def test_stored_points_and_dataset_columns_are_checked_against_their_declared_sizes(tmp_path):
    rc = np.array([[0, 0], [1, 2]])
    spectra = np.zeros((2, N_CHANNELS), np.uint16)
    spectra[0, 3], spectra[1, 4] = 5, 6
    save_points(tmp_path / "p.npz", rc, spectra)
    pts = load_points(tmp_path / "p.npz", (3, 3), "p")
    assert np.array_equal(pts.spectra(np.array([1]), np.array([2]))[0], spectra[1])
    with np.load(tmp_path / "p.npz") as z:
        good = {k: z[k] for k in z.files}
    for key, value, field in (
        ("ptr", np.array([0, 1]), "ptr"),  # one offset short
        ("ptr", np.array([0, 1, 5]), "ptr"),  # ends beyond what is stored
        ("count", good["count"][:1], "ptr"),
        ("channel", np.array([3, 3000], np.uint16), "channel"),
        ("rc", np.array([[0, 0], [5, 5]], np.int32), "rc"),
        ("count", np.array([1.0, np.inf], np.float32), "count"),
    ):
        np.savez(tmp_path / "bad.npz", **(good | {key: value}))
        with pytest.raises(InputError, match=f"bad.npz: {field}"):
            load_points(tmp_path / "bad.npz", (3, 3), "bad")
    # a dataset row whose BSE or masks hold fewer pixels than its height x width
    rec = TileRecord("t", "test", np.full((4, 5), 0.5, np.float32), np.ones((4, 5), bool))
    rec.eds_mask = np.ones((4, 5), bool)
    write_dataset(tmp_path / "ds", [rec], ["a"])
    assert open_dataset(tmp_path / "ds").field(0).bse.shape == (4, 5)
    table = pq.read_table(tmp_path / "ds" / "tiles.parquet")
    for col, cut in (("bse", 2), ("valid", 1), ("eds_mask", 1)):
        rows = table.to_pylist()
        rows[0][col] = rows[0][col][:-cut]
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), tmp_path / "ds" / "tiles.parquet")
        with pytest.raises(
            InputError, match=f"tiles.parquet\\[t\\]: {col}: .* bytes stored, .* for 4 x 5 pixels"
        ):
            open_dataset(tmp_path / "ds").field(0)
    pq.write_table(table, tmp_path / "ds" / "tiles.parquet")
    assert open_dataset(tmp_path / "ds").field(0).eds_mask.all()


def test_bruker_spx_cut_short_names_its_channel_count(tmp_path):
    src = REPO.parent / "shared" / "data" / "formats" / "bruker" / "extracted_from_bcf.spx"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    from mingraph.acquire.formats import read_spectrum

    text = src.read_bytes()
    i, j = text.index(b"<Channels>") + len(b"<Channels>"), text.index(b"</Channels>")
    values = text[i:j].split(b",")
    assert b"<ChannelCount>%d</ChannelCount>" % len(values) in text  # the declared length
    (tmp_path / "cut.spx").write_bytes(text[:i] + b",".join(values[:1000]) + text[j:])
    with pytest.raises(
        InputError, match=f"cut.spx: ChannelCount: says {len(values)} channels but the file holds 1000"
    ):
        read_spectrum(tmp_path / "cut.spx")
    assert int(read_spectrum(src)[0].sum()) > 0
