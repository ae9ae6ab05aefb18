"""TESCAN TIMA field folders: X-ray maps written here to the format's description (every bit depth),
the real field's BSE, pixel mask and job profile from ../shared/data/real."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mingraph.acquire.dataset import open_dataset
from mingraph.acquire.formats.tima import read_profile, read_tima_field, read_xray_map, specimen_mask
from mingraph.cli import main
from mingraph.common.errors import InputError


def _pack(values: np.ndarray, depth: int) -> bytes:
    """One row of pixel values packed pixel by pixel, the way the format is described (a plain
    loop over bits: 1-bit most significant first, 2/4-bit lowest bits first, 16-bit little-endian)."""
    if depth == 16:
        return b"".join(int(v).to_bytes(2, "little") for v in values)
    if depth == 8:
        return bytes(int(v) for v in values)
    out = bytearray((len(values) * depth + 7) // 8)
    per = 8 // depth
    for i, v in enumerate(values):
        byte, slot = divmod(i, per)
        shift = (7 - slot) if depth == 1 else slot * depth
        out[byte] |= int(v) << shift
    return bytes(out)


def write_xray_map(path, counts: np.ndarray, height: int, width: int, depths, extra_header=()) -> None:
    """counts (height * width, n) as a Tescan X-ray map with the given per-channel bit depths."""
    n = counts.shape[1]
    rec = lambda k, v: (f"{k:<9} {v}").ljust(80).encode()  # noqa: E731
    head = b"Tescan X-ray map" + rec("WIDTH", width) + rec("HEIGHT", height) + rec("NCHANNELS", n)
    head += b"".join(rec(k, v) for k, v in extra_header) + rec("END", "")
    body = bytes(np.asarray(depths, np.int8).tobytes())
    planes = counts.T.reshape(n, height, width)
    for ch, d in enumerate(depths):
        if d:
            body += b"".join(_pack(planes[ch, r], d) for r in range(height))
    data = head + body
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("depth", [1, 2, 4, 8, 16])
def test_every_bit_depth_round_trips(tmp_path, depth):
    rng = np.random.default_rng(depth)
    h, w = 3, 13  # a width that leaves a partial byte at every depth below 8
    counts = rng.integers(0, 2**depth, (h * w, 3000)).astype(np.uint16)
    depths = np.full(3000, depth)
    depths[5] = 0
    counts[:, 5] = 0  # a channel of depth 0 holds no data and reads as zeros
    write_xray_map(tmp_path / "xray.map", counts, h, w, depths, [("COMMENT", "x")])
    got = read_xray_map(tmp_path / "xray.map")
    assert got.dtype == (np.uint16 if depth == 16 else np.uint8) and np.array_equal(got, counts)


def test_mixed_depths_gzip_and_bad_maps(tmp_path):
    rng = np.random.default_rng(0)
    depths = rng.choice([0, 1, 2, 4, 8, 16], 3000)
    counts = (rng.integers(0, 2**16, (1 * 7, 3000)) % (2 ** depths.astype(np.int64))).astype(np.uint16)
    write_xray_map(tmp_path / "xray.map.gz", counts, 1, 7, depths)
    assert np.array_equal(read_xray_map(tmp_path / "xray.map.gz"), counts)
    raw = gzip.decompress((tmp_path / "xray.map.gz").read_bytes())
    (tmp_path / "cut.map").write_bytes(raw[:-3])
    with pytest.raises(InputError, match="cut.map: data: file ends inside channel"):
        read_xray_map(tmp_path / "cut.map")
    (tmp_path / "magic.map").write_bytes(b"Tescan Y-ray map" + raw[16:])
    with pytest.raises(InputError, match="magic.map: magic: .*not a TIMA X-ray map"):
        read_xray_map(tmp_path / "magic.map")
    bad = bytearray(raw)
    bad[16 + 4 * 80] = 3  # the first channel's depth
    (tmp_path / "depth.map").write_bytes(bytes(bad))
    with pytest.raises(InputError, match=r"depth.map: bit depths: got \[3\]"):
        read_xray_map(tmp_path / "depth.map")
    write_xray_map(tmp_path / "short.map", np.zeros((2, 2048), np.uint8), 1, 2, np.full(2048, 8))
    with pytest.raises(InputError, match="short.map: NCHANNELS: 2048 channels"):
        read_xray_map(tmp_path / "short.map")


def test_profile(real_dir):
    p = read_profile(real_dir / "field-profile.xml")
    assert p.mode == "Dots" and p.pixel_spacing_um == 3 and p.field_width_um == 1500
    assert p.dot_spacing_um == 9 and p.bright_phase_bse == (60, 100) and p.x_ray_count == 1000
    assert p.bse_window == (15, 100)
    assert p.fields["1"] == (-4.5, 8.25) and len(p.fields) == 5


def _job(tmp_path, real_dir, gz=False, parent_layout=True):
    """A TIMA job folder as TIMA lays it out: profile.xml beside the field folder '1'."""
    job = tmp_path / "job"
    (job / "1").mkdir(parents=True)
    prof = job / "profile.xml" if parent_layout else job / "configuration" / "profile.xml"
    prof.parent.mkdir(exist_ok=True)
    shutil.copy(real_dir / "field-profile.xml", prof)
    shutil.copy(real_dir / "field-bse.png", job / "1" / "bse.png")
    shutil.copy(real_dir / "field-pixelmask.png", job / "1" / "pixelmask.png")
    mask = np.asarray(Image.open(real_dir / "field-pixelmask.png")) > 0
    rng = np.random.default_rng(3)
    counts = np.zeros((int(mask.sum()), 3000), np.uint16)
    for ch, lam in ((52, 0.5), (174, 3.0), (369, 20.0), (640, 1.0)):  # a few lines (the packing is slow)
        counts[:, ch] = rng.poisson(lam, counts.shape[0])
    depths = np.where(
        counts.max(0) > 15, 16, np.where(counts.max(0) > 3, 4, np.where(counts.max(0) > 0, 2, 0))
    )
    write_xray_map(job / "1" / ("xray.map.gz" if gz else "xray.map"), counts, 1, counts.shape[0], depths)
    return job / "1", mask, counts


@pytest.mark.parametrize("gz,parent_layout", [(False, True), (True, False)])
def test_real_field_imports_as_point_spectra(real_dir, tmp_path, gz, parent_layout):
    field, mask, counts = _job(tmp_path, real_dir, gz, parent_layout)
    res = CliRunner().invoke(main, ["import", str(tmp_path / "ds"), "--tima", str(field), "--split", "train"])
    assert res.exit_code == 0, res.output
    assert "pixel size: 3 µm" in res.output
    f = open_dataset(tmp_path / "ds").field(0)
    assert f.name == "1" and f.pixel_size_um == 3.0
    assert np.array_equal(f.eds_mask, mask)
    raw_bse = np.asarray(Image.open(real_dir / "field-bse.png"))
    assert np.allclose(f.bse * 65535, raw_bse, atol=0.5)
    r, c = np.nonzero(mask)  # spectra come in the mask's row-major order
    pick = np.array([0, 17, mask.sum() - 1])
    assert np.array_equal(f.eds.spectra(r[pick], c[pick]), counts[pick].astype(np.float32))
    info = open_dataset(tmp_path / "ds").info["fields"][0]["tima"]
    assert info["tima_mode"] == "Dots" and info["stage_position"] == [-4.5, 8.25]


def test_field_folder_faults(real_dir, tmp_path):
    field, mask, counts = _job(tmp_path, real_dir)
    (field / "pixelmask.png").unlink()  # without the mask the map would need every pixel
    res = CliRunner().invoke(main, ["import", str(tmp_path / "a"), "--tima", str(field)])
    assert res.exit_code == 2 and f"{mask.sum()} spectra for the 250000 pixels" in res.output
    (field / "xray.map").unlink()
    res = CliRunner().invoke(main, ["import", str(tmp_path / "a"), "--tima", str(field)])
    assert res.exit_code == 2 and "xray.map: missing" in res.output


def test_specimen_mask_by_hand():
    raw = np.array([[9830, 9831, 65535, 0, 32768]], np.uint16)  # 15 % of 65535 is 9830.25
    bse = raw.astype(np.float32) / 65535
    assert specimen_mask(bse, (15, 100)).tolist() == [[False, True, True, False, True]]
    assert specimen_mask(bse, (15, 50)).tolist() == [[False, True, False, False, False]]  # 32768 is 50.0008 %
    top = np.array([[13107, 13108, 0, 0, 0]], np.uint16).astype(np.float32) / 65535  # 20.0000 %, 20.0015 %
    assert specimen_mask(top, (0, 20)).tolist() == [[True, False, True, True, True]]  # both ends included
    measured = np.array([[True, False, False, False, False]])  # a dot is specimen by the instrument's choice
    assert specimen_mask(bse, (15, 50), measured).tolist() == [[True, True, False, False, False]]


def test_real_field_specimen_is_the_profiles_bse_window(real_dir, tmp_path):
    field, mask, _ = _job(tmp_path, real_dir)
    raw = np.asarray(Image.open(real_dir / "field-bse.png")).astype(np.int64)
    expected = (raw * 100 >= 15 * 65535) & (raw * 100 <= 100 * 65535)  # integer brute force
    assert expected[mask].all()  # TIMA measured dots only inside its window
    t = read_tima_field(field)
    assert np.array_equal(t["valid"], expected) and 0.99 < t["valid"].mean() < 1.0
    assert t["meta"]["bse_window_percent"] == [15, 100]
    res = CliRunner().invoke(main, ["import", str(tmp_path / "ds"), "--tima", str(field), "--split", "train"])
    assert res.exit_code == 0, res.output
    assert np.array_equal(open_dataset(tmp_path / "ds").field(0).valid, expected)
    # a mask the user gives wins over the profile's window
    Image.fromarray(np.full(raw.shape, 255, np.uint8)).save(tmp_path / "all.png")
    args = ["import", str(tmp_path / "ds2"), "--tima", str(field), "--valid", str(tmp_path / "all.png")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert open_dataset(tmp_path / "ds2").field(0).valid.all()


def test_profile_bse_window_faults(real_dir, tmp_path):
    field, _, _ = _job(tmp_path, real_dir)
    prof = field.parent / "profile.xml"
    text = prof.read_text()
    prof.write_text(
        text.replace("<MinBse>15</MinBse>", "<MinBse>50</MinBse>").replace("<MaxBse>100", "<MaxBse>20")
    )
    with pytest.raises(InputError, match="profile.xml: MinBse: expected 0 <= MinBse < MaxBse <= 100"):
        read_profile(prof)
    prof.write_text(text.replace("<MaxBse>100</MaxBse>", ""))  # one end: the other is the scale's
    assert read_profile(prof).bse_window == (15, 100)
    prof.write_text(text.replace("<MinBse>15</MinBse>", "").replace("<MaxBse>100</MaxBse>", ""))
    said = []
    assert read_tima_field(field, said.append)["valid"].all()
    assert any("no MinBse/MaxBse: every pixel of 1 is taken as specimen" in line for line in said)
