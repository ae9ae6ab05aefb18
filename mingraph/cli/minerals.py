"""``mingraph minerals``: list, check and show a mineral list (the physics classifier's classes)."""

from __future__ import annotations

from pathlib import Path

import click

from mingraph.cli.common import user_errors


@click.command("minerals")
@click.argument("minerals", required=False, type=click.Path(path_type=Path))
@click.option("--show", "name", help="One mineral (name or alias): its composition and expected spectrum.")
@click.option("--beam-kev", type=click.FloatRange(1, 30), default=20.0, show_default=True, help="Beam, kV.")
@click.option("--takeoff", type=float, default=35.0, show_default=True, help="Take-off angle, degrees.")
@click.option("--fwhm", type=float, default=130.0, show_default=True, help="FWHM at Mn Kα, eV.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="With --show: write the expected spectrum as a PNG (a new file).",
)
@user_errors
def minerals_cmd(minerals, name, beam_kev, takeoff, fwhm, out) -> None:
    """List and check MINERALS (a library or plain list, CSV/JSON; default: the shipped library).

    Every row is checked as the classifier reads it (one line naming file, row and column on
    error, exit 2).  With --show NAME, the mineral's composition in wt % and, with --out, a
    picture of its expected spectrum at the given instrument."""
    import xraylib

    from mingraph.common.errors import InputError
    from mingraph.common.files import check_new_file
    from mingraph.spectra.calibrate import Instrument
    from mingraph.spectra.library_view import (
        find_mineral,
        library_rows,
        middle_composition,
        save_expected_spectrum,
    )
    from mingraph.spectra.mineral_library import read_library

    if out is not None and name is None:
        raise InputError("--out", "out", "a picture is of one mineral: give --show NAME")
    out = None if out is None else check_new_file(out)
    source = minerals or "shipped library"
    lib = read_library(minerals)
    if name is None:
        for r in library_rows(lib):
            d = "" if r["density"] is None else f"{r['density']:g}"
            click.echo(f"{r['name']}\t{r['group']}\t{r['composition']}\t{d}\t{r['aliases']}")
        series = sum(m.is_series for m in lib)
        click.echo(f"{source}: {len(lib)} minerals ({series} solid-solution series), all rows valid")
        return
    m = find_mineral(lib, name, source)
    inst = Instrument(beam_kev, takeoff, fwhm, source="options")
    x, wt = middle_composition(m)
    click.echo(
        f"{m.name} ({m.group or 'no group'}), density {m.density if m.density is not None else 'unknown'} g/cm³"
    )
    if m.is_series:
        for (n, f), (lo, hi), xi in zip(m.end_members, m.bounds, x):
            click.echo(f"  {n}: {f}, mole fraction {lo:g}-{hi:g} (middle {xi:.3f})")
    else:
        click.echo(f"  formula {m.formula}")
    parts = ", ".join(f"{xraylib.AtomicNumberToSymbol(z)} {100 * w:.2f}" for z, w in sorted(wt.items()))
    click.echo(f"  wt % (middle of the range): {parts}")
    if out is not None:
        click.echo(f"wrote {save_expected_spectrum(m, inst, out)}")
