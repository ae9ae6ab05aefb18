"""What ``mingraph minerals`` shows of a mineral library: its table, one mineral's composition and
expected spectrum, and a picture of that spectrum.

Plain functions on :class:`~mingraph.spectra.mineral_library.LibraryMineral` entries; reading and
validating a list is :func:`~mingraph.spectra.mineral_library.read_library`'s.  The expected
spectrum is the classifier's own physics (:mod:`mingraph.spectra.physics_model`): for a series,
the middle of its composition range (the mean of its composition grid).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mingraph.common.errors import InputError
from mingraph.spectra.calibrate import Instrument
from mingraph.spectra.mineral_library import LibraryMineral, mass_composition
from mingraph.spectra.physics_model import end_member_spectrum


def library_rows(library: list[LibraryMineral]) -> list[dict]:
    """One row a mineral: name, group, formula or end members with their range, density, aliases.

    Examples
    --------
    >>> from mingraph.spectra.mineral_library import read_library
    >>> row = next(r for r in library_rows(read_library()) if r["name"] == "biotite")
    >>> row["composition"]
    'annite 0-1, phlogopite 0.33-0.67'
    """
    rows = []
    for m in library:
        if m.is_series:
            comp = ", ".join(f"{n} {lo:g}-{hi:g}" for (n, _), (lo, hi) in zip(m.end_members, m.bounds))
        else:
            comp = m.formula
        rows.append(
            {
                "name": m.name,
                "group": m.group,
                "composition": comp,
                "density": m.density,
                "aliases": "; ".join(m.aliases),
            }
        )
    return rows


def find_mineral(library: list[LibraryMineral], name: str, source: object = "mineral list") -> LibraryMineral:
    """The mineral named ``name`` (or one of its aliases), case-insensitively.

    Raises
    ------
    InputError
        No mineral of the list has that name or alias.

    Examples
    --------
    >>> from mingraph.spectra.mineral_library import read_library
    >>> find_mineral(read_library(), "Plagioclase").name
    'oligoclase-andesine'
    """
    key = name.strip().lower()
    for m in library:
        if key in {k.strip().lower() for k in (m.name, *m.aliases)}:
            return m
    raise InputError(source, "name", f"no mineral named {name!r} (name or alias)")


def middle_composition(m: LibraryMineral) -> tuple[np.ndarray, dict[int, float]]:
    """Mole fractions (k,) of the middle of ``m``'s range and its element mass fractions {Z: w}.

    Examples
    --------
    >>> from mingraph.spectra.mineral_library import read_library
    >>> x, w = middle_composition(find_mineral(read_library(), "quartz"))
    >>> x.tolist(), round(float(w[14]), 4)
    ([1.0], 0.4675)
    """
    x = m.grid().mean(0)
    _, wt = mass_composition(m, x)
    return x, wt


def expected_spectrum(m: LibraryMineral, inst: Instrument) -> np.ndarray:
    """(3000,) float64 expected spectrum of ``m`` at ``inst``, normalised to sum 1 over 0-30 keV,
    on the recorded 10 eV grid (the middle of a series' range).

    Examples
    --------
    >>> from mingraph.spectra.mineral_library import read_library
    >>> s = expected_spectrum(find_mineral(read_library(), "quartz"), Instrument(beam_kev=20.0))
    >>> int(np.argmax(s[100:])) + 100  # Si Kα, 1.7398 keV: channel 173 holds 1.730-1.740 keV
    173
    """
    x, _ = middle_composition(m)
    mw, _ = mass_composition(m, x)
    s = sum(w * end_member_spectrum(f, inst) for w, (_, f) in zip(mw, m.end_members))
    s = np.maximum(np.asarray(s, np.float64), 0.0)
    return s / s.sum()


def save_expected_spectrum(m: LibraryMineral, inst: Instrument, path: str | os.PathLike) -> Path:
    """A PNG of ``m``'s expected spectrum (log counts against keV) with its elements' main lines
    marked; written atomically.  Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xraylib

    from mingraph.common.files import save_figure

    s = expected_spectrum(m, inst)
    e = (np.arange(s.size) + 0.5) * 0.01
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.semilogy(e, np.maximum(s, 1e-9), lw=0.8, color="k")
    top = float(min(inst.beam_kev, 20.0))
    ax.set_xlim(0, top)
    ax.set_ylim(max(s.max() * 1e-5, 1e-9), s.max() * 3)
    _, wt = middle_composition(m)
    for z, w in sorted(wt.items()):
        if z < 6 or w < 0.005:
            continue
        for line, label in ((xraylib.KA_LINE, "Kα"), (xraylib.LA_LINE, "Lα"), (xraylib.MA1_LINE, "Mα")):
            try:
                kev = xraylib.LineEnergy(z, line)
            except ValueError:
                continue
            if 0.1 < kev < top:
                ax.axvline(kev, color="tab:red", lw=0.4, alpha=0.6)
                ax.text(
                    kev,
                    s.max() * 1.5,
                    f"{xraylib.AtomicNumberToSymbol(z)} {label}",
                    rotation=90,
                    fontsize=6,
                    ha="right",
                    va="top",
                )
                break
    ax.set_xlabel("energy (keV)")
    ax.set_ylabel("expected counts (fraction)")
    ax.set_title(
        f"{m.name}: {inst.beam_kev:g} kV, take-off {inst.takeoff_deg:g}°, FWHM(Mn Kα) {inst.fwhm_mnka_ev:g} eV",
        fontsize=9,
    )
    fig.tight_layout()
    return save_figure(fig, path)
