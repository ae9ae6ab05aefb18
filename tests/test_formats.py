"""The reader registry (mingraph/acquire/formats): every suffix the CLI accepts has one reader, an
unknown suffix is one InputError line listing the suffixes there are."""

from __future__ import annotations

import importlib

import pytest
from click.testing import CliRunner

from mingraph.acquire.formats import READERS, REGISTRY, read_signals, read_spectrum, reader_for
from mingraph.cli import main
from mingraph.cli.classify import INPUT_KINDS
from mingraph.common.errors import InputError

# what each command took before the registry (its suffix if-chains), by the kind it reads
CLI_SUFFIXES = {
    "points": (".npz", ".csv"),  # classify-spectra SOURCE, import --points, predict --points
    "hypermap": (".bcf", ".pts", ".hspy", ".hdf5"),  # classify-spectra SOURCE, import --spectra
    "spectrum": (".msa", ".ems", ".emsa", ".txt", ".spx"),  # classify-spectra SOURCE, point lists
    "image": (".png", ".tif", ".tiff"),  # import --bse/--labels/--eds-mask/--valid
}


@pytest.mark.parametrize("kind,suffix", [(k, s) for k, ss in CLI_SUFFIXES.items() for s in ss])
def test_every_suffix_the_cli_accepts_has_its_reader(kind, suffix):
    reader = REGISTRY[suffix]
    assert reader.kind == kind and callable(reader.read) and reader.description
    assert reader_for(f"dir.x/Field{suffix.upper()}") is reader  # case-insensitive, the last suffix
    if kind != "image":
        assert reader_for(f"f{suffix}", INPUT_KINDS) is reader  # classify-spectra reads it


def test_the_registry_has_one_reader_a_suffix_and_nothing_else():
    suffixes = [s for r in READERS for s in r.suffixes]
    assert len(suffixes) == len(set(suffixes)) == len(REGISTRY)
    assert sorted(REGISTRY) == sorted(s for ss in CLI_SUFFIXES.values() for s in ss)
    assert all(s == s.lower() and s.startswith(".") for s in suffixes)
    assert {r.kind for r in READERS} == {*CLI_SUFFIXES, "tima"}


def test_the_rosettasciio_plugins_named_exist():
    pytest.importorskip("rsciio")
    plugins = {r.rsciio for r in READERS if r.rsciio}
    assert plugins == {"rsciio.bruker", "rsciio.jeol", "rsciio.hspy"}
    for name in plugins:
        assert callable(importlib.import_module(name).file_reader)


def test_an_unknown_suffix_is_one_line_listing_the_suffixes(tmp_path):
    with pytest.raises(InputError) as e:
        reader_for("notes.doc", INPUT_KINDS)
    assert str(e.value) == (
        "notes.doc: format: expected .bcf, .spx, .pts, .hspy, .hdf5, .msa, .ems, .emsa, .txt, .npz or "
        ".csv, got '.doc'"
    )
    (tmp_path / "m.xyz").write_text("x")
    with pytest.raises(
        InputError, match=r"m.xyz: format: expected .bcf, .spx, .pts, .hspy or .hdf5, got '.xyz'$"
    ):
        read_signals(tmp_path / "m.xyz")
    with pytest.raises(
        InputError, match=r"m.xyz: format: expected .bcf, .spx, .*, .emsa or .txt, got '.xyz'$"
    ):
        read_spectrum(tmp_path / "m.xyz")
    with pytest.raises(InputError, match=r"^missing.doc: file: not found$"):  # a missing file says so first
        read_spectrum("missing.doc")
    assert reader_for("notes.doc", ("points",), fallback=REGISTRY[".npz"]) is REGISTRY[".npz"]


def test_classify_spectra_refuses_an_unknown_suffix_in_one_line(tmp_path):
    src = tmp_path / "notes.doc"
    src.write_text("not a spectrum")
    res = CliRunner().invoke(main, ["classify-spectra", str(src), "--out", str(tmp_path / "o.csv")])
    assert res.exit_code != 0 and res.output.count("\n") == 1
    assert f"{src}: format: expected .bcf, .spx, .pts, .hspy, .hdf5, .msa" in res.output
    assert ".npz or .csv, got '.doc'" in res.output


def test_a_hypermap_reader_of_its_own_is_handed_the_call(tmp_path, monkeypatch):
    """A hypermap format without a rosettasciio plugin is read by its own ``read``, through the
    one entry point every caller uses (``import``, ``classify-spectra``)."""
    import numpy as np

    from mingraph.acquire import formats
    from mingraph.acquire.formats.hypermaps import Hypermap

    seen = {}

    def read_qqq(path, work_dir=None, require_bse=False):
        seen.update(path=path, work_dir=work_dir, require_bse=require_bse)
        return Hypermap(np.zeros((2, 3, 3000), np.uint16), None, None, 0.5, {})

    reader = formats.Reader("hypermap", (".qqq",), "a test map", read_qqq)
    monkeypatch.setattr(formats, "READERS", (*formats.READERS, reader))
    monkeypatch.setitem(formats.REGISTRY, ".qqq", reader)
    f = tmp_path / "m.qqq"
    f.write_bytes(b"")
    hm = formats.read_hypermap(f, require_bse=True)
    assert hm.cube.shape == (2, 3, 3000) and seen == {"path": f, "work_dir": None, "require_bse": True}
    assert formats.reader_for(f, ("hypermap",)) is reader
