"""``mingraph classify-spectra``: the physics classifier on a point set, a spectrum image or one spectrum.

One CSV row per spectrum, in input order (a map row by row): ``row, col, mineral, probability,
second, second_probability, deviance, counts, mixture``, then the wt % of every element of the
list.  ``mineral`` is a class name or ``unknown: ...`` (why); ``deviance`` is the Poisson
deviance of the fit over what counting noise alone gives at that count (1 = a fit to noise);
``mixture`` names the second phase under the beam, or is empty.  Beside the CSV, ``FILE.json``
records the fitted calibration, the file's starting values and the classifier's settings.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from mingraph.cli.common import user_errors
from mingraph.common.errors import InputError

PRODUCER = "mingraph classify-spectra"


INPUT_KINDS = ("points", "hypermap", "spectrum")
"""The kinds of file (:class:`mingraph.acquire.formats.Reader`) classify-spectra reads."""


def _points_input(path: Path, bin_n: int) -> tuple[np.ndarray, np.ndarray, float | None]:
    from mingraph.acquire.formats import read_points

    if bin_n != 1:
        raise InputError(path, "bin", "binning needs a map (.bcf, .hspy), not a point set")
    rc, spectra = read_points(path)
    return spectra, rc, None


def _map_input(path: Path, bin_n: int) -> tuple[np.ndarray, np.ndarray, float | None]:
    from mingraph.acquire.formats import read_hypermap
    from mingraph.spectra.classify_map import bin_map

    hm = read_hypermap(path)
    cube = np.asarray(hm.cube)
    if bin_n != 1:
        cube = bin_map(cube, bin_n)
    h, w = cube.shape[:2]
    rc = np.stack(np.divmod(np.arange(h * w), w), axis=1).astype(np.int64)
    return cube.reshape(-1, cube.shape[-1]), rc, hm.instrument.get("beam_kev")


def _spectrum_input(path: Path, bin_n: int) -> tuple[np.ndarray, np.ndarray, float | None]:
    from mingraph.acquire.formats import read_spectrum

    counts, _ = read_spectrum(path)
    return np.asarray(counts)[None, :], np.zeros((1, 2), np.int64), None


_INPUTS = {"points": _points_input, "hypermap": _map_input, "spectrum": _spectrum_input}


def read_input(path: Path, bin_n: int) -> tuple[np.ndarray, np.ndarray, float | None]:
    """The spectra of SOURCE, read by the registry's reader of its suffix.

    Parameters
    ----------
    path : Path
        A points .npz/.csv, a map (.bcf, .pts, .hspy, .hdf5) or one spectrum (.msa, .spx, ...):
        :data:`mingraph.acquire.formats.REGISTRY`, kinds :data:`INPUT_KINDS`.
    bin_n : int
        Sum a map over ``bin_n`` x ``bin_n`` pixels first (1: no binning; maps only).

    Returns
    -------
    spectra : (n, 3000) ndarray
        Counts on 10 eV channels from 0 eV (a map row by row).
    rc : (n, 2) int64
        (row, column) of each spectrum (binned pixels for a binned map; (0, 0) for one spectrum).
    beam_kv : float or None
        The beam energy (kV) the file states, or None.

    Raises
    ------
    InputError
        A suffix no reader of these kinds has (listing those it has), binning a point set, or
        what the reader refuses.

    Examples
    --------
    >>> read_input(Path("notes.doc"), 1)
    Traceback (most recent call last):
    ...
    mingraph.common.errors.InputError: notes.doc: format: expected .bcf, .spx, .pts, .hspy, .hdf5, .msa, .ems, .emsa, .txt, .npz or .csv, got '.doc'
    """
    from mingraph.acquire.formats import reader_for

    return _INPUTS[reader_for(path, INPUT_KINDS).kind](path, bin_n)


@click.command("classify-spectra")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="CSV to write (FILE.json beside it)."
)
@click.option(
    "--minerals", type=click.Path(path_type=Path), help="Mineral list or library; default: the shipped one."
)
@click.option("--beam-kev", type=float, help="Beam energy in kV (default: the file's; required for points).")
@click.option(
    "--takeoff", type=float, default=35.0, show_default=True, help="Detector take-off angle, degrees."
)
@click.option(
    "--fwhm", type=float, default=130.0, show_default=True, help="Starting FWHM at Mn Kα, eV (fitted)."
)
@click.option("--bin", "bin_n", type=int, default=1, show_default=True, help="Sum N x N map pixels first.")
@click.option(
    "--overwrite", is_flag=True, help="Replace a table (and its .json) that classify-spectra wrote earlier."
)
@user_errors
def classify_spectra_cmd(
    source: Path, out: Path, minerals, beam_kev, takeoff: float, fwhm: float, bin_n: int, overwrite: bool
):
    """Name the mineral of every spectrum of SOURCE from physics (no training): POINTS.npz, a map, or one spectrum."""
    from mingraph.common.files import check_table_output, file_digest, write_csv, write_text
    from mingraph.spectra.calibrate import Instrument
    from mingraph.spectra.classify_map import classify_counts
    from mingraph.spectra.mineral_library import read_library

    out, record_path = check_table_output(out, PRODUCER, overwrite)
    spectra, rc, file_kv = read_input(source, bin_n)
    kv = beam_kev if beam_kev is not None else file_kv
    if kv is None:
        raise InputError(source, "beam energy", "the file does not state it: give --beam-kev")
    lib = read_library(minerals)
    start = Instrument(kv, takeoff, fwhm, source="metadata" if beam_kev is None else "options")
    res, fit, times = classify_counts(spectra, start, lib)
    n_cls = len(res.names)
    names = res.label_names()
    header = [
        "row",
        "col",
        "mineral",
        "probability",
        "second",
        "second_probability",
        "deviance",
        "counts",
        "mixture",
    ]
    rows = [header + [f"{e}_wt_pct" for e in res.elements]]
    for i in range(len(names)):
        p = res.probabilities[i]
        sec = int(res.second[i])
        rows.append(
            [
                int(rc[i, 0]),
                int(rc[i, 1]),
                names[i],
                f"{float(p[res.label[i]]):.4f}",
                res.names[sec] if sec < n_cls else "",
                f"{float(p[sec]):.4f}",
                f"{res.deviance[i] / max(res.noise_deviance[i], 1e-12):.3f}",
                int(round(res.counts[i])),
                res.names[res.partner[i]] if res.mixture[i] else "",
                *(f"{w:.2f}" for w in res.wt[i]),
            ]
        )
    write_csv(out, rows)
    record = {
        "producer": PRODUCER,
        "table_digest": file_digest(out),
        "source": str(source),
        "spectra": len(names),
        "bin": bin_n,
        "calibration": fit.to_dict(),
        "timings_s": times,
        "dispersion": res.dispersion,
        "minerals": str(minerals) if minerals else "shipped library",
    }
    try:
        write_text(record_path, json.dumps(record, indent=1, default=float) + "\n")
    except BaseException:
        out.unlink(missing_ok=True)  # no table without its record (it would read as a stranger's)
        raise
    unknown = sum(1 for x in res.label if x >= n_cls)
    click.echo(
        f"{len(names)} spectra: {len(names) - unknown} classified, {unknown} unknown; calibration "
        f"offset {fit.instrument.offset_ev:+.1f} eV, gain {fit.instrument.gain:.5f}, "
        f"FWHM(Mn Kα) {fit.instrument.fwhm_mnka_ev:.1f} eV -> {out}"
    )
