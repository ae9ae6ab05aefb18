"""The simulator's X-ray physics on an instrument's recorded channel grid, one element at a time.

:func:`to_recorded` moves a spectrum on the true 10 eV grid to where an instrument with a given
energy offset and gain records it; :func:`element_spectra` gives each element's line spectrum
(per unit mass fraction) and the continuum of a formula, recorded so.  The classifier's model
(:mod:`mingraph.spectra.physics_model`) and the free-element refit
(:mod:`mingraph.spectra.quantify`) both build on them.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from mingraph.acquire.fields import CHANNEL_EV, N_CHANNELS
from mingraph.acquire.simulate.eds_physics import (
    N_AVOGADRO,
    binned_peaks,
    detector_efficiency,
    element_lines,
    ionisations,
    mu_rho,
    phase_continuum,
    phase_matrix,
    philibert_f,
)
from mingraph.spectra.calibrate import Instrument


def to_recorded(spectrum: np.ndarray, inst: Instrument) -> np.ndarray:
    """(3000,) spectrum on the true 10 eV grid -> where the instrument records it on the grid.

    Grid channel j holds the counts of true energies [offset + gain·10 j, offset + gain·10 (j+1)):
    the true spectrum's cumulative sum, linear within each channel, differenced at those edges.

    >>> s = np.zeros(3000); s[100] = 10.0
    >>> r = to_recorded(s, Instrument(offset_ev=20.0))
    >>> int(np.argmax(r)), float(r.sum())
    (98, 10.0)
    """
    s = np.asarray(spectrum, dtype=np.float64)
    grid = np.arange(N_CHANNELS + 1) * CHANNEL_EV
    cum = np.concatenate([[0.0], np.cumsum(s)])
    return np.diff(np.interp(inst.true_energy(grid), grid, cum))


@cache
def element_spectra(formula: str, inst: Instrument) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """Each element's recorded line spectrum per unit of its mass fraction, and the continuum.

    The same physics as :func:`mingraph.acquire.simulate.eds_physics._phase_physics` (xraylib
    lines, Bethe ionisation over the Joy-Luo stopping power, Philibert absorption in this matrix,
    Kramers continuum, detector efficiency), kept apart per element.

    Returns
    -------
    (Z, ...), lines (n_elements, 3000) photons per electron per steradian per unit mass fraction,
    continuum (3000,); all on the recorded grid of ``inst``.
    """
    beam, takeoff, fw = float(inst.beam_kev), float(inst.takeoff_deg), float(inst.fwhm_mnka_ev)
    m = phase_matrix(formula, takeoff)
    eff = detector_efficiency()
    e_ch = (np.arange(N_CHANNELS) + 0.5) * CHANNEL_EV
    lines = []
    for (z, w), a in zip(m.comp, m.a_s):
        e_line, omega_r, nb, edge = element_lines(z, beam)
        if e_line.size == 0:
            lines.append(np.zeros(N_CHANNELS))
            continue
        n_ion = ionisations(edge, beam, m.z_over_a, m.ln_j) * nb * (N_AVOGADRO / a)  # per unit mass fraction
        area = (
            n_ion * omega_r / (4.0 * math.pi) * philibert_f(mu_rho(m.comp, e_line) * m.cosec, beam, edge, m.h)
        )
        area = area * np.interp(e_line * 1000.0, e_ch, eff)
        lines.append(to_recorded(binned_peaks(e_line * 1000.0, area, fw), inst))
    cont = phase_continuum(m, beam, fw, e_ch, eff)
    return tuple(int(z) for z in m.zs), np.array(lines), to_recorded(cont, inst)
