"""The encoder's instrument-jittered training source: its spectra are the simulator's physics at the
drawn settings, its draws stay in their ranges and repeat with the seed, and ``fit-encoder
--simulate-instruments`` trains and records them."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from mingraph.acquire.simulate.eds_physics import phase_physics
from mingraph.cli import main
from mingraph.spectra.calibrate import Instrument
from mingraph.spectra.element_spectra import to_recorded
from mingraph.spectra.encoder import class_probabilities, load_encoder
from mingraph.spectra.instrument_spectra import JitterRanges, expected_spectrum, instrument_spectra
from mingraph.spectra.mineral_library import LibraryMineral, simulator_library

TWO = simulator_library()[:2]  # quartz, albite


def _expected(entries, names, labels, st, **shift) -> np.ndarray:
    """(n, 3000) expected counts of every drawn spectrum, computed anew from the settings with the
    simulator's physics and the recorded-axis shift (not through the module under test)."""
    form = {m.name: m.end_members[0][1] for m in entries}
    off = shift.get("offset_ev", 0.0)
    out = []
    for c, kv, fw, o, g, n in zip(
        labels, st["beam_kev"], st["fwhm_mnka_ev"], st["offset_ev"], st["gain"], st["counts"]
    ):
        s = phase_physics(form[names[c]], float(kv), 35.0, float(fw))
        out.append(to_recorded(s / s.sum(), Instrument(float(kv), 35.0, float(fw), o + off, g)) * n)
    return np.array(out)


def test_expected_spectrum_is_the_recorded_physics():
    s = phase_physics("SiO2", 17.5, 35.0, 136.0)
    want = to_recorded(s / s.sum(), Instrument(17.5, 35.0, 136.0, -12.0, 1.002))
    assert np.allclose(expected_spectrum("SiO2", 17.5, 136.0, -12.0, 1.002), want, rtol=1e-12, atol=0)
    si = int(np.argmax(want))  # Si Kα, 1740 eV, seen 12 eV higher and 0.2 % lower on the grid
    assert si == int((1740.0 + 12.0) / 1.002 // 10)


@pytest.fixture(scope="module")
def drawn():
    return instrument_spectra(TWO, per_class=150, seed=3)


def _chi2(x: np.ndarray, lam: np.ndarray) -> tuple[float, float]:
    """(reduced χ², largest |z|) of the summed spectra against the summed expectation, per channel."""
    sx, sl = x.sum(0, dtype=np.float64), lam.sum(0)
    ok = sl > 50.0
    z = (sx[ok] - sl[ok]) / np.sqrt(sl[ok])
    return float((z**2).mean()), float(np.abs(z).max())


def test_mean_of_many_draws_is_the_physics_at_the_drawn_settings(drawn):
    x, y, names, st = drawn
    for c in range(2):
        sel = y == c
        lam = _expected(TWO, names, y[sel], {k: v[sel] for k, v in st.items()})
        red, zmax = _chi2(x[sel], lam)
        assert 0.8 < red < 1.25 and zmax < 5.5, (names[c], red, zmax)
        # the same check finds an expectation 15 eV off, or the other mineral
        red_off, _ = _chi2(
            x[sel], _expected(TWO, names, y[sel], {k: v[sel] for k, v in st.items()}, offset_ev=15.0)
        )
        assert red_off > 5.0, red_off
        other = _expected(TWO, names, 1 - y[sel], {k: v[sel] for k, v in st.items()})
        assert _chi2(x[sel], other)[0] > 50.0


def test_draws_stay_in_their_ranges(drawn):
    x, y, names, st = drawn
    r = JitterRanges()
    assert names == ["quartz", "albite"] and x.shape == (300, 3000) and np.bincount(y).tolist() == [150, 150]
    assert ((st["counts"] >= 300) & (st["counts"] <= 50000)).all()
    # log-uniform: about half of the spectra on each side of the geometric middle
    assert 0.35 < (st["counts"] < np.sqrt(300 * 50000)).mean() < 0.65
    totals = x.sum(1, dtype=np.float64)
    assert (np.abs(totals - st["counts"]) < 6 * np.sqrt(st["counts"]) + 0.01 * st["counts"]).all()
    assert set(np.unique(st["beam_kev"])) <= set(np.arange(15.0, 25.01, r.kev_step))
    assert st["beam_kev"].min() < 16 and st["beam_kev"].max() > 24
    assert ((st["fwhm_mnka_ev"] >= 120) & (st["fwhm_mnka_ev"] <= 150)).all()
    assert (np.abs(st["offset_ev"]) <= 40).all() and np.abs(st["offset_ev"]).max() > 30
    assert (np.abs(st["gain"] - 1) <= 0.003).all()
    narrow = JitterRanges(counts=(1000, 1000), beam_kev=(20, 20), fwhm_ev=(130, 130), offset_ev=0, gain=0)
    _, _, _, s2 = instrument_spectra(TWO[:1], per_class=5, ranges=narrow, seed=0)
    assert np.allclose(s2["counts"], 1000) and (s2["beam_kev"] == 20).all() and (s2["offset_ev"] == 0).all()


def test_reproducible_with_the_seed(drawn):
    x, y, _, st = drawn
    x2, y2, _, st2 = instrument_spectra(TWO, per_class=150, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2) and np.array_equal(st["counts"], st2["counts"])
    x3, _, _, _ = instrument_spectra(TWO, per_class=150, seed=4)
    assert not np.array_equal(x, x3)


def test_a_solid_solution_mixes_its_end_members():
    ss = LibraryMineral("fo-fa", (("fo", "Mg2SiO4"), ("fa", "Fe2SiO4")), ((0.0, 1.0), (0.0, 1.0)))
    narrow = JitterRanges(counts=(1e6, 1e6), beam_kev=(20, 20), fwhm_ev=(130, 130), offset_ev=0, gain=0)
    x, _, _, _ = instrument_spectra([ss], per_class=40, ranges=narrow, seed=0)
    fe = x[:, 630:645].sum(1)  # Fe Kα, 6.40 keV
    assert fe.min() < 0.2 * fe.max()  # compositions from forsterite- to fayalite-rich


def test_fit_encoder_simulate_instruments_miniature(tmp_path):
    lib = tmp_path / "three.csv"
    lib.write_text("name,formula\nquartz,SiO2\ncalcite,CaCO3\nhematite,Fe2O3\n")
    out = tmp_path / "enc.pt"
    args = ["fit-encoder", "--simulate-instruments", "--minerals", str(lib), "--per-class", "40"]
    args += ["--epochs", "2", "--seed", "5", "--counts", "2000,20000", "--beam-kev", "18,22", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    enc = load_encoder(out)
    assert enc.kind == "cnn" and enc.n_classes == 3
    m = enc.meta
    assert m["source"] == "simulated instruments" and m["seed"] == 5 and m["per_class"] == 40
    assert m["ranges"]["counts"] == [2000.0, 20000.0] and m["ranges"]["beam_kev"] == [18.0, 22.0]
    assert m["ranges"]["fwhm_ev"] == [120.0, 150.0] and m["class_names"] == ["quartz", "calcite", "hematite"]
    x, y, _, _ = instrument_spectra(str(lib), per_class=10, seed=99)
    p = class_probabilities(enc, x)
    assert p.shape == (30, 3) and (p.argmax(1) == y).mean() > 0.6  # three easy minerals after 2 epochs


@pytest.mark.parametrize(
    "extra, option",
    [
        (["--counts", "5"], "--counts"),
        (["--counts", "500,100"], "--counts"),
        (["--beam-kev", "15,40"], "--beam-kev"),
        (["--fwhm", "10,150"], "--fwhm"),
        (["--offset-ev", "-5"], "--offset-ev"),
        (["--gain", "0.5"], "--gain"),
        (["--per-class", "0"], "--per-class"),
        (["--kind", "pca"], "--kind"),
    ],
)
def test_fit_encoder_bad_jitter_input_is_one_line(tmp_path, extra, option):
    res = CliRunner().invoke(main, ["fit-encoder", "--simulate-instruments", *extra, str(tmp_path / "e.pt")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], res.output
    assert not (tmp_path / "e.pt").exists()


def test_fit_encoder_jitter_options_need_the_flag(tmp_path):
    res = CliRunner().invoke(main, ["fit-encoder", "--counts", "1,2", str(tmp_path), str(tmp_path / "e.pt")])
    assert res.exit_code == 2 and "--counts: only with --simulate-instruments" in res.output
    res = CliRunner().invoke(main, ["fit-encoder", str(tmp_path)])
    assert res.exit_code == 2 and "OUT" in res.output
