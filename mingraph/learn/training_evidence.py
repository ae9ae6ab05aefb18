"""The point evidence a fusion model trains on: which classifier turns a training item's spectra
into class probabilities, and in which columns its labels are then scored (issue 23, item 2).

The fusion model's attention never reads the classes: it mixes its points' probability vectors,
whatever their width.  So it can train on the evidence it will be given when predicting:

* ``"encoder"``: the recipe's CNN encoder, one column per dataset class (the labels as they are);
* ``"physics"``: the physics classifier (:class:`~mingraph.spectra.point_classifier.PhysicsClassifier`)
  over the shipped mineral library, the evidence `predict` gives real maps: one column per
  library mineral, then the library's mineral groups (never given to a point), then unknown.
  Each dataset class is scored in the column of the library mineral of the same name; the last
  column, unknown, never enters the palette (``palette_skip`` 1) and a pixel the model gives it
  is unclassified.

The physics needs the beam energy: a dataset's fields record it (a simulated field, the
simulator's; an imported one, its file's).  Simulated fields are classified with the
simulator's exact instrument (a perfect calibration); measured ones with the instrument their
points' summed spectrum calibrates (:meth:`PhysicsClassifier.calibrate`), fitted once for the
dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mingraph.common.errors import InputError

CLASSIFIERS = ("encoder", "physics")


@dataclass
class PointEvidence:
    """The class probabilities a fusion model trains on, and the columns its labels are in.

    Attributes
    ----------
    kind : str
        ``"encoder"`` or ``"physics"``.
    probabilities : callable
        (n, 3000) count spectra -> (n, width) float32 class probabilities.
    columns : (dataset classes,) int64
        The evidence column of each dataset class (no class is without one).
    width : int
        Columns of the probabilities (the model's output classes while training).
    palette_skip : int
        The last that many columns never enter the palette (the physics' unknown: 1).
    record : dict
        What the model file records of it (the physics: its library and instrument).

    Examples
    --------
    >>> ev = PointEvidence("encoder", None, np.arange(3), 3, 0, {"classifier": "encoder"})
    >>> ev.labels(np.array([[2, -1], [0, 1]])).tolist()
    [[2, -1], [0, 1]]
    """

    kind: str
    probabilities: Callable[[np.ndarray], np.ndarray]
    columns: np.ndarray
    width: int
    palette_skip: int
    record: dict

    @property
    def scored(self) -> int:
        """Columns a prediction is scored in: ``width`` less the skipped unknown column."""
        return self.width - self.palette_skip

    def labels(self, labels: np.ndarray) -> np.ndarray:
        """``labels`` (any shape, int; -1 = unlabelled) in the evidence's columns."""
        lab = np.asarray(labels, np.int64)
        return np.where(lab >= 0, self.columns[np.maximum(lab, 0)], -1)


def encoder_evidence(encoder, n_classes: int) -> PointEvidence:
    """The CNN ``encoder``'s class probabilities (:func:`mingraph.spectra.encoder.class_probabilities`),
    one column per dataset class.

    Raises
    ------
    InputError
        When the encoder's classes are not the dataset's ``n_classes``.
    """
    from mingraph.spectra.encoder import class_probabilities

    if encoder.n_classes != n_classes:
        raise InputError(
            "encoder", "n_classes", f"expected {n_classes} classes (the dataset's), got {encoder.n_classes}"
        )
    return PointEvidence(
        "encoder",
        lambda spectra: class_probabilities(encoder, spectra),
        np.arange(n_classes, dtype=np.int64),
        n_classes,
        0,
        {"classifier": "encoder"},
    )


def physics_evidence(
    class_names: Sequence[str], instrument, source: object, summed: np.ndarray | None = None
) -> PointEvidence:
    """The physics classifier's probabilities over the shipped library, the dataset's classes in
    its minerals' columns.

    Parameters
    ----------
    class_names : sequence of str
        The dataset's classes: each must be a library mineral (matched by exact name).
    instrument : Instrument
        The fields' beam energy, take-off angle and resolution (:func:`instrument_of`).
    source : object
        Named in an error (the dataset).
    summed : (3000,) array or None
        Measured fields: the summed spectrum the calibration is fitted on; None (simulated
        fields): the instrument as given.

    Raises
    ------
    InputError
        When a dataset class is no mineral of the library (its pixels could never be right).

    Examples
    --------
    >>> from mingraph.spectra.calibrate import Instrument
    >>> ev = physics_evidence(["quartz", "albite"], Instrument(beam_kev=25.0), "ds")
    >>> ev.kind, ev.palette_skip, ev.width == len(ev.record["class_names"]) + 1
    ('physics', 1, True)
    >>> [ev.record["class_names"][c] for c in ev.columns]
    ['quartz', 'albite']
    """
    from mingraph.spectra.point_classifier import PhysicsClassifier

    clf = PhysicsClassifier(instrument)
    if summed is not None:
        clf.calibrate(summed)
    index = {n: c for c, n in enumerate(clf.names)}
    missing = [n for n in class_names if n not in index]
    if missing:
        raise InputError(
            source,
            "class_names",
            f"training on the physics needs every class in its mineral library; not there: {', '.join(missing)}",
        )
    record = {"classifier": "physics", "class_names": list(clf.names)} | {"physics": clf.record()}
    return PointEvidence(
        "physics",
        clf.class_probabilities,
        np.array([index[n] for n in class_names], np.int64),
        len(clf.names) + 1,
        1,
        record,
    )


def instrument_of(params: dict | None, simulated: bool, source: object):
    """The :class:`~mingraph.spectra.calibrate.Instrument` a dataset's field states: a simulated
    field's (``simulated``: its EDS parameters ``params``, as
    :func:`~mingraph.acquire.simulate.eds.simulated_instrument` reads them), or what an imported
    file recorded (``params["instrument"]``).

    Raises
    ------
    InputError
        When the field states no beam energy (:func:`~mingraph.spectra.point_classifier.instrument_from`).

    Examples
    --------
    >>> instrument_of({"beam_kev": 15.0}, True, "ds").beam_kev
    15.0
    """
    from mingraph.acquire.simulate.eds import simulated_instrument
    from mingraph.spectra.point_classifier import instrument_from

    params = simulated_instrument(params) if simulated else params
    return instrument_from(params, None, source)
