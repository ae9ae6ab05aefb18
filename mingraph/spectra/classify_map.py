"""Classify a real spectrum image or point set end to end: calibration from its summed spectrum, then
the physics classifier; binning of low-count maps.

:func:`classify_counts` is what a command calls with spectra on the 10 eV grid and the file's
conditions: it fits the calibration (:mod:`mingraph.spectra.calibrate`) to the summed spectrum,
builds the expected spectra of the mineral library at the fitted instrument, classifies against
it with the rest of the shipped library as reference minerals (a spectrum one of those explains
better is unknown, not the nearest listed mineral) and returns the result with the fitted
calibration.  :func:`bin_map` sums n × n neighbours, for maps whose pixels hold too few counts.
"""

from __future__ import annotations

import time

import numpy as np
import xraylib

from mingraph.common.errors import InputError
from mingraph.spectra.calibrate import CalibrationFit, Instrument, fit_calibration
from mingraph.spectra.mineral_library import LibraryMineral, read_library
from mingraph.spectra.physics import classify_spectra
from mingraph.spectra.physics_model import build_model, fit_continuum_scale, with_continuum
from mingraph.spectra.physics_result import PhysicsResult, Settings
from mingraph.spectra.reference_minerals import reference_model


def bin_map(cube: np.ndarray, n: int) -> np.ndarray:
    """(H, W, C) counts -> (H // n, W // n, C): each output pixel the sum of an n × n block.

    Rows and columns beyond the last whole block are dropped.  Integer counts are summed in
    uint32 (no overflow below 2³² counts a channel).

    Raises
    ------
    InputError
        For n < 1, a map smaller than one block, or not (H, W, C).

    Examples
    --------
    >>> bin_map(np.arange(16).reshape(4, 4, 1), 2)[..., 0].tolist()
    [[10, 18], [42, 50]]
    """
    a = np.asarray(cube)
    if a.ndim != 3:
        raise InputError("map", "shape", f"expected (height, width, channels), got {a.shape}")
    if not isinstance(n, (int, np.integer)) or n < 1 or n > min(a.shape[:2]):
        raise InputError("map", "bin", f"expected 1 <= bin <= {min(a.shape[:2])}, got {n!r}")
    h, w = a.shape[0] // n * n, a.shape[1] // n * n
    dt = np.uint32 if np.issubdtype(a.dtype, np.integer) else np.float64
    b = a[:h, :w].astype(dt).reshape(h // n, n, w // n, n, a.shape[2])
    return b.sum(axis=(1, 3), dtype=dt)


def library_elements(library: list[LibraryMineral]) -> list[int]:
    """Atomic numbers in any formula of the library (the lines the calibration may fit)."""
    return sorted(
        {int(z) for m in library for _, f in m.end_members for z in xraylib.CompoundParser(f)["Elements"]}
    )


def classify_counts(
    spectra: np.ndarray,
    start: Instrument,
    library: list[LibraryMineral] | None = None,
    settings: Settings | None = None,
    reference: bool = True,
    fit_continuum: bool = False,
) -> tuple[PhysicsResult, CalibrationFit, dict]:
    """Calibrate from the summed spectrum, then classify every spectrum.

    Parameters
    ----------
    spectra
        (n, 3000) counts on the 10 eV grid, in the file's calibration.
    start
        Beam, take-off and the detector's resolution as the file states them (or defaults).
    library
        Classes to name (default: the shipped library).
    settings
        Classifier thresholds.
    reference
        Use the shipped library's other minerals as reference minerals.
    fit_continuum
        Fit the instrument's continuum level (one factor on the physics' Kramers continuum) to the
        spectra as a first pass assigns them, then classify with it.

    Returns
    -------
    (result, calibration fit, {"calibration", "model", "classify"} seconds and the fitted
    "continuum_scale")

    Raises
    ------
    InputError
        For spectra that are not (n, 3000), or whose sum holds too few counts to calibrate.
    """
    y = np.asarray(spectra)
    if y.ndim != 2 or y.shape[1] != 3000 or y.shape[0] == 0:
        raise InputError("spectra", "shape", f"expected (n, 3000) counts, got {y.shape}")
    lib = read_library() if library is None else list(library)
    t0 = time.perf_counter()
    fit = fit_calibration(y.sum(0, dtype=np.float64), start, library_elements(lib))
    t1 = time.perf_counter()
    model = build_model(lib, fit.instrument)
    if fit_continuum:  # the instrument's continuum level, from a first pass's assignments
        first = classify_spectra(y, model, Settings(refine="never"))
        use = first.counts >= (settings or Settings()).min_counts
        if use.any():
            model = with_continuum(model, fit_continuum_scale(model, model.bin(y[use]), first.candidate[use]))
    ref = reference_model(model) if reference else None
    t2 = time.perf_counter()
    res = classify_spectra(y, model, settings, reference=ref)
    t3 = time.perf_counter()
    timings = {"calibration": t1 - t0, "model": t2 - t1, "classify": t3 - t2}
    return res, fit, timings | {"continuum_scale": model.continuum_scale}
