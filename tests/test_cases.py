"""The failing inputs of ../shared/cases (README there): each right outcome, and the whole kind of
fault each stands for, on inputs made here."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import tifffile
from click.testing import CliRunner
from conftest import case
from PIL import Image

from mingraph.acquire.dataset import TileRecord, label_bytes, labels_from_bytes, open_dataset, write_dataset
from mingraph.acquire.formats import read_msa, read_points
from mingraph.acquire.formats.images import read_bse
from mingraph.acquire.formats.points import check_rc
from mingraph.cli import main
from mingraph.common.errors import InputError
from mingraph.graphs.build import build_graphs
from mingraph.graphs.shards import SHARD_SCHEMA, Shard, label_width


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


# 01: coordinate arrays are never reshaped


def test_case01_transposed_points_are_refused_naming_rc(tmp_path):
    d = case("01_points_transposed")
    res = run(
        "predict", "--bse", d / "field_bse.tif", "--points", d / "points_rc_2xN.npz", "--out", tmp_path / "a"
    )
    assert res.exit_code == 2
    assert "rc" in res.output and "(60, 2)" in res.output and "(2, 60)" in res.output
    assert not (tmp_path / "a").exists()
    res = run(
        "predict", "--bse", d / "field_bse.tif", "--points", d / "points_rc_Nx2.npz", "--out", tmp_path / "b"
    )
    assert res.exit_code == 0, res.output
    with np.load(d / "points_rc_Nx2.npz") as z:
        rc = z["rc"]
    rc_read, _ = read_points(d / "points_rc_Nx2.npz")
    assert np.array_equal(rc_read, rc)


def test_any_coordinate_layout_but_n_by_2_is_refused(tmp_path):
    for bad in (np.zeros((2, 5)), np.zeros(10), np.zeros((5, 3)), np.zeros((5, 2, 1))):
        with pytest.raises(InputError, match="rc"):
            check_rc(bad, "x")
    with pytest.raises(InputError, match=r"\(4, 2\)"):
        check_rc(np.zeros((3, 2)), "x", n=4)  # one position per spectrum
    with pytest.raises(InputError, match="whole pixel"):
        check_rc(np.array([[0.5, 1.0]]), "x")
    assert check_rc(np.array([[1.0, 2.0]]), "x").dtype == np.int64
    # also the graph builder, which used to reshape(-1, 2)
    from mingraph.graphs.structure import build_structured_graph

    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        build_structured_graph(
            np.zeros((8, 8), np.float32), np.array([[1, 2, 3], [1, 2, 3]]), np.zeros((3, 64))
        )


# 02: palette and colour images are not grey levels


def test_case02_palette_png_is_read_through_its_palette(tmp_path):
    d = case("02_bse_palette_png")
    res = run("import", tmp_path / "ds", "--bse", d / "bse_palette.png")
    assert res.exit_code == 0, res.output
    stored = open_dataset(tmp_path / "ds").field(0).bse
    with Image.open(d / "bse_palette.png") as im:
        rgb = np.asarray(im.convert("RGB"))  # independent reference: Pillow's palette lookup
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
    assert np.allclose(stored, rgb[..., 0] / 255.0, atol=1 / 65535)


def test_palette_and_colour_images_of_every_kind(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    # a grey palette whose index order is reversed: index i shows grey 255 - i
    p = Image.fromarray((255 - grey).astype(np.uint8), mode="L").convert("P")
    pal = [v for i in range(256) for v in (255 - i,) * 3]
    p.putpalette(pal)
    p.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        shown = np.asarray(im.convert("L"))
    assert np.allclose(read_bse(tmp_path / "p.png"), shown / 255.0)
    # a colour palette is refused
    c = Image.fromarray(grey, mode="L").convert("P")
    c.putpalette([v for i in range(256) for v in (i, 0, 255 - i)])
    c.save(tmp_path / "c.png")
    with pytest.raises(InputError, match="colour"):
        read_bse(tmp_path / "c.png")
    # RGB colour, RGBA with varying alpha, and a palette TIFF
    rgb = np.stack([grey, grey // 2, grey], -1)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="colour"):
        read_bse(tmp_path / "rgb.png")
    rgba = np.dstack([grey, grey, grey, grey])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    with pytest.raises(InputError, match="alpha"):
        read_bse(tmp_path / "rgba.png")
    cmap = np.tile((65535 - np.arange(256) * 257).astype(np.uint16), (3, 1))
    tifffile.imwrite(tmp_path / "p.tif", grey, photometric="palette", colormap=cmap)
    assert np.allclose(read_bse(tmp_path / "p.tif"), (65535 - grey.astype(np.float64) * 257) / 65535)


# 04: class ids are stored exactly


def test_case04_big_label_ids_are_stored_exactly(tmp_path):
    d = case("04_labels_int16_overflow")
    res = run("import", tmp_path / "ds", "--bse", d / "bse16.png", "--labels", d / "labels_u16_big.tif")
    assert res.exit_code == 0, res.output
    ds = open_dataset(tmp_path / "ds")  # readable by its own reader
    raw = tifffile.imread(d / "labels_u16_big.tif")
    assert np.array_equal(ds.field(0).labels, raw.astype(np.int64))
    assert raw.max() == 40000


def test_label_storage_never_narrows(tmp_path):
    for ids, width in (([-1, 0, 32767], 2), ([-1, 32768], 4), ([0, 2**31 - 1], 4)):
        a = np.array(ids * 2, dtype=np.int64).reshape(2, -1)
        blob = label_bytes(a)
        assert len(blob) == a.size * width
        assert np.array_equal(labels_from_bytes(blob, *a.shape, "x"), a)
    with pytest.raises(InputError, match="32 bits"):
        label_bytes(np.array([[2**31]]))
    assert [label_width(np.array(v)) for v in ([127], [128], [32767], [32768])] == [1, 2, 2, 4]
    # a shard of ids >= 32768 reads back exactly
    lab = np.full((6, 5), 40000, np.int32)
    lab[0, 0] = -1
    rec = TileRecord("t", "train", np.full((6, 5), 0.5, np.float32), np.ones((6, 5), bool), lab)
    write_dataset(tmp_path / "ds", [rec], [f"c{i}" for i in range(40001)])
    build_graphs(tmp_path / "ds", tmp_path / "sh", fractions=[0.0], progress=False)
    g = Shard(sorted((tmp_path / "sh").glob("*.arrow"))[0]).graph(0)
    assert np.array_equal(g.labels, lab)


# 05: damaged shard bodies


@pytest.mark.parametrize("which", ["shards_big", "shards_small"])
def test_case05_damaged_shard_is_one_line_naming_it(tmp_path, which):
    d = case("05_shard_corrupt_body")
    res = run("train", d / which, "--encoder", d / "encoder.pt", "--out", tmp_path / "run", "--epochs", "1")
    assert res.exit_code == 2, res.output
    err = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "train-00000.arrow" in err[0] and "Traceback" not in res.output


def test_damaged_shard_body_is_rebuilt_by_a_rerun(tmp_path):
    rng = np.random.default_rng(0)
    recs = [
        TileRecord(
            f"t{i}",
            "train",
            rng.random((10, 10)).astype(np.float32),
            np.ones((10, 10), bool),
            rng.integers(0, 3, (10, 10)).astype(np.int32),
            eds_kind="dense",
            spectra=rng.poisson(0.5, (10, 10, 3000)).astype(np.uint16),
        )
        for i in range(2)
    ]
    write_dataset(tmp_path / "ds", recs, ["a", "b", "c"])
    build_graphs(tmp_path / "ds", tmp_path / "sh", fractions=[0.2], progress=False, tiles_per_shard=1)
    victim = sorted((tmp_path / "sh").glob("*.arrow"))[0]
    good = victim.read_bytes()
    sh = Shard(victim)
    rows = sh.table.to_pylist()
    for damage in ({"eds_rc": rows[0]["eds_rc"][:-3]}, {"delaunay": np.array([0, 999], "<i4").tobytes()}):
        meta = sh.table.schema.metadata
        t = pa.Table.from_pylist([dict(rows[0], **damage)], schema=SHARD_SCHEMA.with_metadata(meta))
        with pa.OSFile(str(victim), "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
            w.write_table(t)  # framing intact, body damaged
        with pytest.raises(InputError, match=f"{victim.name}.*shard body"):
            Shard(victim)
        res = build_graphs(
            tmp_path / "ds", tmp_path / "sh", fractions=[0.2], progress=False, tiles_per_shard=1
        )
        assert res["built"] == 1 and res["skipped"] == 1
        assert victim.read_bytes() == good


# 06: header values converted inside the error contract


def test_case06_decimal_comma_msa_is_read(tmp_path):
    d = case("06_msa_comma_decimal")
    lines = (d / "comma_header.msa").read_text().splitlines()
    ref = np.array([float(v.replace(",", ".")) for v in lines if v and not v.startswith("#")])
    assert ref.size == 2048
    for name in ("comma_header.msa", "comma_all.msa"):
        s = read_msa(d / name)
        assert s.shape == (3000,)
        assert np.array_equal(s[:2048], ref) and not s[2048:].any()  # 10 eV from 0: the grid itself


def test_msa_header_values_are_checked_and_named(tmp_path):
    base = "#FORMAT : EMSA/MAS Spectral Data File\n#NPOINTS : 3\n#NCOLUMNS : 1\n#XUNITS : eV\n#DATATYPE : Y\n"
    for header, key in (
        ("#XPERCHAN : ten\n#OFFSET : 0\n", "XPERCHAN"),
        ("#XPERCHAN : 10\n#OFFSET : 0;5\n", "OFFSET"),
    ):
        (tmp_path / "a.msa").write_text(base + header + "#SPECTRUM : data\n1\n2\n3\n#ENDOFDATA :\n")
        with pytest.raises(InputError, match=f"a.msa: header {key}: expected a number"):
            read_msa(tmp_path / "a.msa")
    # decimal commas with ';' separators in XY data; and a comma ambiguous in XY data is refused
    (tmp_path / "b.msa").write_text(
        base.replace(": Y", ": XY")
        + "#XPERCHAN : 10,0\n#OFFSET : 0,0\n#SPECTRUM : data\n0,0; 1,5\n10,0; 2,0\n20,0; 3,0\n"
    )
    assert np.allclose(read_msa(tmp_path / "b.msa")[:3], [1.5, 2.0, 3.0])
    (tmp_path / "c.msa").write_text(
        base.replace(": Y", ": XY") + "#XPERCHAN : 10,0\n#OFFSET : 0,0\n#SPECTRUM : data\n0,0, 1,5\n"
    )
    with pytest.raises(InputError, match="c.msa: data: .*ambiguous"):
        read_msa(tmp_path / "c.msa")


# 08: axes given as explicit values


def test_case08_explicit_uniform_axis_is_accepted(tmp_path):
    d = case("08_hspy_nonuniform_axis")
    res = run("import", tmp_path / "ds", "--spectra", d / "nonuniform.hspy", "--bse", d / "bse8.tif")
    assert res.exit_code == 0, res.output
    from rsciio.hspy import file_reader

    raw = np.asarray(file_reader(str(d / "nonuniform.hspy"))[0]["data"])
    f = open_dataset(tmp_path / "ds").field(0)
    got = f.eds.spectra(np.repeat(np.arange(8), 8), np.tile(np.arange(8), 8)).reshape(8, 8, -1)
    assert np.array_equal(got[..., :2048], raw) and not got[..., 2048:].any()
