"""Training spectra for the CNN encoder drawn over instrument settings (``fit-encoder --simulate-instruments``).

Each spectrum of each mineral of a list is the simulator's expected spectrum
(:func:`mingraph.acquire.simulate.eds_physics.phase_physics`: xraylib lines, Bethe ionisation,
Philibert absorption, Kramers continuum, detector window and resolution) at its own drawn
instrument, recorded with its own residual energy-calibration error and Poisson counting noise:

* beam kV uniform over ``beam_kev`` (15-25 kV), on a grid of ``kev_step`` (0.5 kV);
* FWHM at Mn Kα uniform over ``fwhm_ev`` (120-150 eV), on a grid of ``fwhm_step`` (2 eV);
* energy offset uniform within ± ``offset_ev`` (40 eV) and gain uniform within 1 ± ``gain``
  (0.003, ± 30 eV at 10 keV), applied as the detector records (``E_true = offset + gain · E_grid``,
  :func:`mingraph.spectra.element_spectra.to_recorded`);
* total counts log-uniform over ``counts`` (300-50,000), Poisson noise per channel.

Why only tens of eV of offset, when files are read from axes that start anywhere (the zero-shot
test's -0.5 to +0.1 keV): every reader puts a spectrum on mingraph's 10 eV grid with the file's
own axis (:func:`mingraph.acquire.calibration.to_grid`), and ``predict`` hands the encoder those
grid spectra as they are (the fitted calibration is the physics' only), so what the encoder must
tolerate is the error the file's calibration leaves: tens of eV after a detector is calibrated
(the chevkinite map: -9 eV and gain 0.9985, i.e. -24 eV at 10 keV; the zero-shot test: +8 eV,
gain 1.0005).  ± 40 eV and ± 0.3 % cover those with margin while keeping neighbouring lines apart
(Na Kα 1041 eV vs. Zn Lα 1012 eV, Si Kα 1740 vs. W Mα 1775).

kV and FWHM are drawn on grids so that the expected spectra of one mineral are computed once per
grid node (21 × 16 of them by default; ~7 ms each) rather than once per spectrum.  A mineral of
two or more end members (a solid solution of a library) takes, per spectrum, a mole-fraction point
of its range (:func:`~mingraph.spectra.mineral_library.composition_grid`) and the end members'
expected spectra mixed by mass.  Everything is drawn from ``numpy.random.default_rng([seed,
class])``: the same seed gives the same spectra, and a class's spectra do not depend on the others.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from mingraph.acquire.fields import N_CHANNELS
from mingraph.common.errors import InputError

SOURCE = "fit-encoder"


@dataclass(frozen=True)
class JitterRanges:
    """The instrument ranges training spectra are drawn over (see the module's docstring)."""

    counts: tuple[float, float] = (300.0, 50000.0)
    beam_kev: tuple[float, float] = (15.0, 25.0)
    fwhm_ev: tuple[float, float] = (120.0, 150.0)
    offset_ev: float = 40.0
    gain: float = 0.003
    kev_step: float = 0.5
    fwhm_step: float = 2.0
    takeoff_deg: float = 35.0

    def __post_init__(self):
        for name, lo_ok, hi_ok in (("counts", 1.0, 1e7), ("beam_kev", 1.0, 30.0), ("fwhm_ev", 40.0, 400.0)):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo_ok <= lo <= hi <= hi_ok):
                raise InputError(
                    SOURCE,
                    "--" + name.replace("_", "-").replace("-ev", ""),
                    f"expected LOW,HIGH with {lo_ok:g} <= LOW <= HIGH <= {hi_ok:g}, got {lo:g},{hi:g}",
                )
        if not (math.isfinite(self.offset_ev) and 0.0 <= self.offset_ev <= 500.0):
            raise InputError(SOURCE, "--offset-ev", f"expected 0-500 eV, got {self.offset_ev:g}")
        if not (math.isfinite(self.gain) and 0.0 <= self.gain <= 0.1):
            raise InputError(SOURCE, "--gain", f"expected a relative jitter 0-0.1, got {self.gain:g}")
        if not (self.kev_step > 0 and self.fwhm_step > 0):
            raise InputError(SOURCE, "step", "expected positive kV and FWHM steps")

    def to_dict(self) -> dict:
        """JSON-able record (what the encoder's meta stores)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def parse_range(text: str | None, option: str, default: tuple[float, float]) -> tuple[float, float]:
    """``"LOW,HIGH"`` -> (LOW, HIGH) floats; None gives ``default``.

    Raises
    ------
    InputError
        Naming ``option`` when the text is not two numbers, LOW <= HIGH.

    Examples
    --------
    >>> parse_range("300,5e4", "--counts", (1.0, 2.0))
    (300.0, 50000.0)
    >>> parse_range("5", "--counts", (1.0, 2.0))
    Traceback (most recent call last):
    ...
    mingraph.common.errors.InputError: fit-encoder: --counts: expected LOW,HIGH (two numbers, LOW <= HIGH), got '5'
    """
    if text is None:
        return default
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise InputError(SOURCE, option, f"expected LOW,HIGH (two numbers, LOW <= HIGH), got {text!r}")
    return lo, hi


def _grid(lo: float, hi: float, step: float) -> np.ndarray:
    """Nodes lo, lo + step, ... up to hi (lo alone where the range is narrower than a step)."""
    n = int(math.floor((hi - lo) / step + 1e-9))
    return lo + step * np.arange(n + 1)


def draw_settings(n: int, ranges: JitterRanges, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(n,) beam kV, FWHM at Mn Kα (eV), offset (eV), gain and total counts of ``n`` spectra."""
    kv = _grid(*ranges.beam_kev, ranges.kev_step)
    fw = _grid(*ranges.fwhm_ev, ranges.fwhm_step)
    lo, hi = np.log(ranges.counts[0]), np.log(ranges.counts[1])
    return {
        "beam_kev": kv[rng.integers(0, kv.size, n)],
        "fwhm_mnka_ev": fw[rng.integers(0, fw.size, n)],
        "offset_ev": rng.uniform(-ranges.offset_ev, ranges.offset_ev, n),
        "gain": 1.0 + rng.uniform(-ranges.gain, ranges.gain, n),
        "counts": np.exp(rng.uniform(lo, hi, n)),
    }


def true_shape(formula: str, beam_kev: float, fwhm_mnka_ev: float, takeoff_deg: float = 35.0) -> np.ndarray:
    """(3000,) the simulator's expected spectrum of ``formula`` on the true grid, summing to 1."""
    from mingraph.acquire.simulate.eds_physics import phase_physics

    s = phase_physics(formula, float(beam_kev), float(takeoff_deg), float(fwhm_mnka_ev))
    return s / s.sum()


def expected_spectrum(
    formula: str,
    beam_kev: float,
    fwhm_mnka_ev: float,
    offset_ev: float = 0.0,
    gain: float = 1.0,
    takeoff_deg: float = 35.0,
) -> np.ndarray:
    """(3000,) expected counts per unit total of ``formula`` as an instrument with that residual
    calibration error records it (what :func:`instrument_spectra` draws Poisson counts from)."""
    return _recorded(true_shape(formula, beam_kev, fwhm_mnka_ev, takeoff_deg), offset_ev, gain)


def _mineral_entries(minerals) -> list:
    """The mineral list: LibraryMineral entries, a library file, or None (the simulator's 50)."""
    from mingraph.spectra.mineral_library import read_library, simulator_library

    if minerals is None:
        return simulator_library()
    if isinstance(minerals, list):
        return minerals
    return read_library(minerals)


def instrument_spectra(
    minerals=None,
    per_class: int = 1000,
    ranges: JitterRanges | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, np.ndarray]]:
    """Poisson spectra of every mineral at drawn instrument settings.

    Parameters
    ----------
    minerals
        A mineral library file, a list of LibraryMineral, or None: the simulator's 50 minerals
        (``mingraph/data/minerals.csv``), whose class ids the shipped model uses.
    per_class
        Spectra of each mineral.
    ranges
        :class:`JitterRanges` (default: the module docstring's).
    seed
        Seeds every draw (``default_rng([seed, class])``).

    Returns
    -------
    spectra (n, 3000) float32 counts, labels (n,) int64 class ids, class names, and the drawn
    settings (``draw_settings``' arrays, (n,) each, in the spectra's order).
    """
    from tqdm import tqdm

    from mingraph.spectra.mineral_library import composition_grid, mass_composition

    ranges = ranges or JitterRanges()
    if per_class < 1:
        raise InputError(SOURCE, "--per-class", f"expected at least 1 spectrum a class, got {per_class}")
    entries = _mineral_entries(minerals)
    n = len(entries) * per_class
    out = np.zeros((n, N_CHANNELS), np.float32)
    labels = np.repeat(np.arange(len(entries), dtype=np.int64), per_class)
    settings: dict[str, list] = {}
    for c, m in enumerate(tqdm(entries, desc="simulate spectra", unit="mineral", disable=not progress)):
        rng = np.random.default_rng([seed, c])
        st = draw_settings(per_class, ranges, rng)
        formulas = [f for _, f in m.end_members]
        if len(formulas) > 1:
            pts = composition_grid(m.bounds)
            mass = np.array([mass_composition(m, x)[0] for x in pts])[rng.integers(0, len(pts), per_class)]
        else:
            mass = np.ones((per_class, 1))
        cache: dict[tuple, np.ndarray] = {}
        lam = np.zeros((per_class, N_CHANNELS))
        for i in range(per_class):
            key = (float(st["beam_kev"][i]), float(st["fwhm_mnka_ev"][i]))
            if key not in cache:
                cache[key] = np.array([true_shape(f, *key, ranges.takeoff_deg) for f in formulas])
            shape = mass[i] @ cache[key]
            lam[i] = _recorded(shape / shape.sum(), st["offset_ev"][i], st["gain"][i])
        lam *= st["counts"][:, None]
        out[c * per_class : (c + 1) * per_class] = rng.poisson(np.maximum(lam, 0.0))
        for k, v in st.items():
            settings.setdefault(k, []).append(v)
    return out, labels, [m.name for m in entries], {k: np.concatenate(v) for k, v in settings.items()}


def _recorded(shape: np.ndarray, offset_ev: float, gain: float) -> np.ndarray:
    """``shape`` on the true grid recorded with that offset and gain (to_recorded, without the
    Instrument's checks of beam and FWHM)."""
    from mingraph.spectra.calibrate import Instrument
    from mingraph.spectra.element_spectra import to_recorded

    return to_recorded(shape, Instrument(offset_ev=float(offset_ev), gain=float(gain)))


def fit_encoder_on_instruments(
    out,
    minerals=None,
    per_class: int = 1000,
    ranges: JitterRanges | None = None,
    epochs: int = 8,
    seed: int = 0,
    progress: bool = True,
):
    """Fit the CNN encoder on :func:`instrument_spectra` and save it to ``out``; the meta records
    the source, its ranges, the seed and the class names."""
    from mingraph.spectra.encoder import fit_cnn, save_encoder

    ranges = ranges or JitterRanges()
    x, y, names, _ = instrument_spectra(minerals, per_class, ranges, seed, progress)
    enc = fit_cnn(x, y, len(names), epochs=epochs, seed=seed, progress=progress)
    enc.meta.update(
        {
            "source": "simulated instruments",
            "minerals": "simulator's 50" if minerals is None else str(minerals),
            "per_class": per_class,
            "ranges": ranges.to_dict(),
            "seed": seed,
            "class_names": names,
        }
    )
    return save_encoder(enc, out)
