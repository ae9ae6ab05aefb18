"""The point classifiers a phase model can take its EDS evidence from, chosen by ``--classifier``.

- ``physics`` (:class:`PhysicsClassifier`): the physics classifier of
  :mod:`mingraph.spectra.physics` over a mineral library, calibrated to the instrument from the
  summed spectrum of the points it is given.  Its class probabilities have one column more than
  the library has minerals: **unknown**, for a spectrum that no mineral of the list fits.  It
  needs no training, and any library (any names, any number of classes) feeds a model that only
  mixes its points' classes (the fusion model).
- ``encoder``: the spectral encoder the model file holds (the CNN trained with the model, whose
  classes are the model's).
- ``onnx``: the same, where the model file's encoder is the authors' ONNX network (the paper's
  GAT converted from the authors' checkpoint).

:func:`default_classifier` picks ``physics`` for measured spectra and ``encoder`` for the
simulator's, whose spectra the encoder was trained on.
"""

from __future__ import annotations

import os

import numpy as np

from mingraph.common.errors import InputError
from mingraph.spectra.calibrate import CalibrationFit, Instrument, fit_calibration
from mingraph.spectra.mineral_groups import mineral_groups

CLASSIFIERS = ("physics", "encoder", "onnx")
"""The point classifiers ``--classifier`` takes."""
UNKNOWN = "unknown"
"""The name of the physics classifier's last column: no mineral of the list fits."""


def unclassified_beyond(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``labels`` with every id from ``n_classes`` up (a classifier's unknown column) set to -1,
    the unclassified id of maps and tables.

    Examples
    --------
    >>> unclassified_beyond(np.array([0, 2, 3, -1]), 3).tolist()
    [0, 2, -1, -1]
    """
    return np.where(labels >= n_classes, -1, labels)


def default_classifier(measured: bool) -> str:
    """``physics`` for measured spectra (a hypermap, point spectra, a TIMA field), else ``encoder``.

    Examples
    --------
    >>> default_classifier(True), default_classifier(False)
    ('physics', 'encoder')
    """
    return "physics" if measured else "encoder"


def choose_classifier(
    classifier: str | None,
    measured: bool,
    params: dict | None,
    beam_kev: float | None,
    source: object,
    say=None,
) -> tuple[str, Instrument | None]:
    """The point classifier of a field and its starting instrument (None where the physics is not run).

    The instrument is given for the physics, and for the encoder on measured spectra whose beam
    energy is known: there the physics gates the encoder's answer (:class:`GatedEncoder`).

    ``classifier`` as given (``--classifier``), else :func:`default_classifier`.  Where the physics
    is only the default and neither ``--beam-kev`` nor the file states the beam energy (point
    spectra in an .npz, a TIMA field), the model's encoder is used and ``say`` tells the user how
    to get the physics; given explicitly, the physics without a beam energy is an error.

    Raises
    ------
    InputError
        ``--classifier physics`` where the beam energy is unknown.

    Examples
    --------
    >>> choose_classifier(None, True, {"instrument": {"beam_kev": 20.0}}, None, "f")[0]
    'physics'
    >>> choose_classifier(None, True, {}, None, "f", say=print)[0]  # doctest: +ELLIPSIS
    f: the beam energy is not stated, so the model's encoder classifies the spectra...
    'encoder'
    """
    chosen = classifier or default_classifier(measured)
    known = beam_kev is not None or (params or {}).get("instrument", {}).get("beam_kev") is not None
    if chosen != "physics":  # measured spectra with a known beam: the physics gates the encoder
        return chosen, instrument_from(params, beam_kev, source) if (measured and known) else None
    if classifier is None and not known:
        if say is not None:
            say(
                f"{source}: the beam energy is not stated, so the model's encoder classifies the spectra; "
                "give --beam-kev for the physics classifier (no training, any mineral list, unknowns)"
            )
        return "encoder", None
    return "physics", instrument_from(params, beam_kev, source)


class PhysicsClassifier:
    """The physics classifier as a model's point evidence: (n, C + 1) probabilities, last = unknown.

    Parameters
    ----------
    start : Instrument
        The conditions the file states (beam kV, take-off angle; offset, gain and FWHM at Mn Kα
        are starting values): :meth:`calibrate` refines offset, gain and FWHM from the data.
    minerals : path-like or None
        A mineral library or plain mineral list (:func:`mingraph.spectra.mineral_library.read_library`);
        None: the shipped library.

    Attributes
    ----------
    kind : str
        ``"physics"``.
    names : list of str
        The class names, the ids of the probabilities' first C columns: the library's mineral
        names in its order, then its groups' (:attr:`groups`).
    groups : list of MineralGroup
        The library's groups of two or more minerals (:func:`~mingraph.spectra.mineral_groups.mineral_groups`):
        their columns are always 0 (no spectrum is given a group); a pixel takes one by
        :func:`~mingraph.spectra.mineral_groups.name_by_group`.
    unknown_column : bool
        True: the probabilities' last column is unknown.
    fit : CalibrationFit or None
        The fitted calibration, once :meth:`calibrate` has run.

    Examples
    --------
    >>> clf = PhysicsClassifier(Instrument(beam_kev=20.0))
    >>> len(clf.names) >= 150, clf.unknown_column
    (True, True)
    """

    kind = "physics"
    unknown_column = True

    def __init__(self, start: Instrument, minerals: str | os.PathLike | list | None = None):
        from mingraph.spectra.mineral_library import read_library

        self.start = start
        if isinstance(minerals, list):  # LibraryMineral entries already read
            self.minerals, self.library = f"{len(minerals)} minerals given", list(minerals)
        else:
            self.minerals = None if minerals is None else str(minerals)
            self.library = read_library(minerals)
        self.groups = mineral_groups(self.library)
        self.names = [m.name for m in self.library] + [g.name for g in self.groups]
        self.fit: CalibrationFit | None = None
        self.note = ""
        self._model = self._reference = None

    def calibrate(self, summed: np.ndarray) -> CalibrationFit:
        """Fit offset, gain and FWHM to the (3000,) summed spectrum of the points, then build the
        library's expected spectra at the fitted instrument (and the shipped library's other
        minerals as reference minerals, so a spectrum one of them explains better is unknown).

        A sum with fewer counts than a calibration needs (``MIN_CALIBRATION_COUNTS``) keeps the
        file's values, and :attr:`note` says so; spectra of too few counts each come out
        "unknown: too few counts" (sum neighbouring pixels first: ``classify-spectra --bin``).
        """
        from mingraph.spectra.calibrate import MIN_CALIBRATION_COUNTS, calibration_counts
        from mingraph.spectra.classify_map import library_elements
        from mingraph.spectra.physics_model import build_model
        from mingraph.spectra.reference_minerals import reference_model

        n = calibration_counts(summed, self.start)
        if n < MIN_CALIBRATION_COUNTS:  # e.g. a few points of a low-count map: the file's values stand
            self.fit = CalibrationFit(self.start, self.start, (), float("nan"), 0)
            self.note = (
                f"{n:.0f} counts in the points' summed spectrum, too few to calibrate "
                f"({MIN_CALIBRATION_COUNTS} needed): the file's calibration is used"
            )
        else:
            self.fit = fit_calibration(
                np.asarray(summed, np.float64), self.start, library_elements(self.library)
            )
        self._model = build_model(self.library, self.fit.instrument)
        self._reference = reference_model(self._model)
        return self.fit

    def class_probabilities(self, spectra: np.ndarray) -> np.ndarray:
        """(n, C + 1) float32 class probabilities of (n, 3000) count spectra; the last column is
        unknown.  Calibrates on these spectra first when :meth:`calibrate` has not run."""
        from mingraph.spectra.physics import classify_spectra

        y = np.asarray(spectra)
        if y.ndim != 2 or y.shape[1] != 3000:
            raise InputError("spectra", "shape", f"expected (n, 3000) counts, got {y.shape}")
        if len(y) == 0:
            return np.zeros((0, len(self.names) + 1), np.float32)
        if self._model is None:
            self.calibrate(y.sum(0, dtype=np.float64))
        res = classify_spectra(y, self._model, reference=self._reference)
        p = np.asarray(res.probabilities, np.float32)  # minerals, unknown: the group columns go between
        return np.insert(p, [p.shape[1] - 1] * len(self.groups), 0.0, axis=1)

    def fit_quality(self, spectra: np.ndarray) -> np.ndarray:
        """(n,) goodness of fit z of each (n, 3000) count spectrum's best class (about 0 where
        the physics explains the counts to counting noise; :class:`~mingraph.spectra.physics.PhysicsResult`)."""
        from mingraph.spectra.physics import classify_spectra

        y = np.asarray(spectra)
        if len(y) == 0:
            return np.zeros(0, np.float32)
        if self._model is None:
            self.calibrate(y.sum(0, dtype=np.float64))
        return np.asarray(classify_spectra(y, self._model, reference=self._reference).z, np.float32)

    def record(self) -> dict:
        """What outputs store: the classifier, its list and the fitted calibration."""
        return {
            "classifier": "physics",
            "minerals": self.minerals or "shipped library",
            "classes": len(self.library),
            "groups": [g.name for g in self.groups],
            "calibration": None if self.fit is None else self.fit.to_dict(),
            **({"note": self.note} if self.note else {}),
        }


def instrument_from(params: dict | None, beam_kev: float | None, source: object) -> Instrument:
    """The starting :class:`Instrument` of a measured field: ``--beam-kev`` if given, else what its
    file recorded at import (``params["instrument"]``: ``beam_kev``, ``takeoff_deg``,
    ``fwhm_mnka_ev``).

    Raises
    ------
    InputError
        When neither gives the beam energy (the physics cannot be computed without it), or it lies
        outside an SEM's 1-30 kV (a TEM map's thin-film physics is not the classifier's).

    Examples
    --------
    >>> instrument_from({"instrument": {"beam_kev": 15.0}}, None, "f").beam_kev
    15.0
    >>> instrument_from({}, 25.0, "f").source
    'options'
    """
    rec = dict((params or {}).get("instrument") or {})
    if beam_kev is not None:
        rec["beam_kev"] = float(beam_kev)
    if rec.get("beam_kev") is None:
        raise InputError(
            source,
            "beam energy",
            "the physics classifier needs the beam kV, which the file does not state: "
            "give --beam-kev (or --classifier encoder)",
        )
    if not 1.0 <= float(rec["beam_kev"]) <= 30.0:
        raise InputError(
            source,
            "beam energy",
            f"{float(rec['beam_kev']):g} kV: the physics classifier models a bulk specimen under an SEM "
            "beam (1-30 kV), not a thin film in a TEM: give --classifier encoder",
        )
    kw = {k: float(rec[k]) for k in ("beam_kev", "takeoff_deg", "fwhm_mnka_ev") if rec.get(k) is not None}
    return Instrument(**kw, source="options" if beam_kev is not None else "metadata")


class GatedEncoder:
    """A trained CNN encoder whose answer the physics checks: a point whose encoder class the
    physics finds no fit for becomes unknown (an extra last column), never a confident mineral.

    The physics classifies each point over the model's own classes (those the shipped library
    names, by name or alias; the rest of the library are reference minerals).  The encoder's
    class is kept where the physics gives it at least ``min_share`` of its probability; else
    the point's probabilities move to unknown.  Classes the library does not name are not gated.

    Parameters
    ----------
    encoder : Encoder
        The model file's CNN encoder (kind ``cnn`` with classes).
    class_names : list of str
        The model's classes (the encoder's columns).
    start : Instrument
        As for :class:`PhysicsClassifier`.
    min_share : float
        The least physics probability of the encoder's class that keeps it.

    Examples
    --------
    >>> from mingraph.learn.bundle import load_model
    >>> b = load_model()
    >>> g = GatedEncoder(b.encoder, b.class_names, Instrument(beam_kev=20.0))
    >>> g.unknown_column, len(g.names) == len(b.class_names)
    (True, True)
    """

    kind = "gated"
    unknown_column = True

    def __init__(self, encoder, class_names: list[str], start: Instrument, min_share: float = 0.01):
        from mingraph.spectra.mineral_library import read_library

        self.encoder, self.names, self.min_share = encoder, list(class_names), float(min_share)
        index = {k.strip().lower(): m for m in read_library() for k in (m.name, *m.aliases)}
        self.gated = [index.get(n.strip().lower()) for n in self.names]
        listed = [m for m in self.gated if m is not None]
        self.physics = PhysicsClassifier(start, listed)
        self._col = {m.name: j for j, m in enumerate(listed)}

    def calibrate(self, summed: np.ndarray) -> CalibrationFit:
        """Calibrate the physics (:meth:`PhysicsClassifier.calibrate`)."""
        return self.physics.calibrate(summed)

    def class_probabilities(self, spectra: np.ndarray) -> np.ndarray:
        """(n, C + 1) float32: the encoder's probabilities where the physics agrees, else unknown."""
        from mingraph.spectra.encoder import class_probabilities

        p = class_probabilities(self.encoder, spectra)
        out = np.zeros((len(p), len(self.names) + 1), np.float32)
        out[:, :-1] = p
        if len(p) == 0:
            return out
        phys = self.physics.class_probabilities(spectra)
        top = p.argmax(1)
        share = np.ones(len(p), np.float32)
        for c, m in enumerate(self.gated):
            rows = top == c
            if m is not None and rows.any():
                share[rows] = phys[rows, self._col[m.name]]
        bad = share < self.min_share
        out[bad, :-1] = 0.0
        out[bad, -1] = 1.0
        self.rejected = int(bad.sum())
        return out

    def record(self) -> dict:
        """The physics' record, with the gate."""
        rec = self.physics.record()
        rec.update(
            classifier="encoder, gated by the physics",
            classes=len(self.names),
            minerals="the model's classes",
        )
        return rec


def signal_instrument(spectra, beam_kev: float | None) -> Instrument:
    """The physics' starting instrument for the Python API: ``beam_kev``, else what a HyperSpy
    signal's metadata states (:func:`~mingraph.acquire.formats.hypermaps.instrument_metadata`).

    Raises
    ------
    InputError
        Neither states the beam energy (:func:`instrument_from`).
    """
    from mingraph.acquire.formats.hypermaps import instrument_metadata
    from mingraph.acquire.signals import is_signal

    params = {}
    if is_signal(spectra):
        params = {"instrument": instrument_metadata({"metadata": spectra.metadata.as_dictionary()})}
    return instrument_from(params, beam_kev, "spectra")
