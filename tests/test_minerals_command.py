"""``mingraph minerals``: lists and checks a mineral list, shows one mineral and its expected spectrum.

References: the library as :func:`read_library` reads it, xraylib's own composition of the
series' middle formula, xraylib's line energies for the spectrum's peaks."""

from __future__ import annotations

import numpy as np
import pytest
import xraylib
from click.testing import CliRunner

from mingraph.cli import main
from mingraph.spectra.calibrate import Instrument
from mingraph.spectra.library_view import expected_spectrum, find_mineral
from mingraph.spectra.mineral_library import read_library


def test_lists_every_mineral_of_the_shipped_library():
    res = CliRunner().invoke(main, ["minerals"])
    assert res.exit_code == 0, res.output
    lib = read_library()
    lines = res.output.strip().splitlines()
    assert [ln.split("\t")[0] for ln in lines[:-1]] == [m.name for m in lib]
    assert lines[-1].startswith(f"shipped library: {len(lib)} minerals ({sum(m.is_series for m in lib)} ")


def test_show_gives_the_middle_composition_and_a_picture(tmp_path):
    out = tmp_path / "biotite.png"
    res = CliRunner().invoke(main, ["minerals", "--show", "Biotite", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # biotite spans annite 0-1 and phlogopite 0.33-0.67: the middle is Fe1.5 Mg1.5
    ref = xraylib.CompoundParser("KFe1.5Mg1.5AlSi3O10(OH)2")
    wt = dict(zip(ref["Elements"], ref["massFractions"]))
    line = next(ln for ln in res.output.splitlines() if "wt %" in ln)
    got = {
        xraylib.SymbolToAtomicNumber(p.split()[0]): float(p.split()[1])
        for p in line.split(": ")[1].split(", ")
    }
    assert got.keys() == wt.keys()
    assert all(abs(got[z] - 100 * wt[z]) < 0.01 for z in wt)
    again = CliRunner().invoke(main, ["minerals", "--show", "biotite", "--out", str(out)])
    assert again.exit_code == 2 and "never replaced" in again.output  # a picture is never replaced


@pytest.mark.parametrize(
    ("name", "z", "line"),
    [("quartz", 14, xraylib.KA_LINE), ("galena", 82, xraylib.MA1_LINE), ("ilmenite", 26, xraylib.KA_LINE)],
)
def test_expected_spectrum_peaks_where_xraylib_puts_the_lines(name, z, line):
    s = expected_spectrum(find_mineral(read_library(), name), Instrument(beam_kev=20.0))
    assert s.shape == (3000,) and abs(s.sum() - 1) < 1e-9
    ch = int(xraylib.LineEnergy(z, line) * 100)
    assert s[ch - 3 : ch + 4].max() > 3 * np.median(s[ch - 60 : ch - 30])  # a peak above the continuum


def test_bad_lists_and_names_are_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,formula,density\nquartz,SiO2,2.65\nstuff,Xx2O3,3\n")
    res = CliRunner().invoke(main, ["minerals", str(bad)])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and str(bad) in res.output
    res = CliRunner().invoke(main, ["minerals", "--show", "unobtainium"])
    assert res.exit_code == 2 and "no mineral named 'unobtainium'" in res.output
    res = CliRunner().invoke(main, ["minerals", "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "--show" in res.output
