"""The EDS nodes' features a shard stores, chosen by ``build-graphs --classifier``, and their record.

- no ``--classifier`` (as before the option): the ``--encoder``'s 64-value embeddings, or the raw
  spectra without one (a shard then records nothing more: it is read as ``encoder`` or ``spectra``);
- ``encoder``: the ``--encoder``'s embeddings (the same features);
- ``onnx``: the authors' ONNX encoder's embeddings (``--encoder`` an ``.onnx`` file or an encoder
  artifact of kind ``onnx``);
- ``physics``: the physics classifier's class probabilities over a mineral list, one column a
  class and a last one for **unknown**, calibrated on each graph's EDS points as ``predict``
  calibrates on a field's points (:class:`~mingraph.spectra.point_classifier.PhysicsClassifier`,
  its instrument chosen by :func:`~mingraph.spectra.point_classifier.choose_classifier`).

Given ``--classifier``, a shard's job records the choice (``point_classifier``) and its metadata
a ``point_features`` entry: the classifier, its class names, the feature width and, for the
physics, each graph's fitted calibration (:func:`features_record`); ``train`` reads the width
from it and refuses a folder whose shards disagree.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mingraph.acquire.simulate.eds import measured_spectra
from mingraph.common.errors import InputError
from mingraph.spectra.point_classifier import UNKNOWN, PhysicsClassifier, choose_classifier
from mingraph.spectra.window import EMBED_DIM


def physics_choice(minerals: str | os.PathLike | None, beam_kev: float | None) -> dict:
    """The job record of ``--classifier physics``: the mineral list (its path and a digest of its
    bytes, so that an edited list rebuilds the shards), ``--beam-kev`` and the class names.

    Raises
    ------
    InputError
        An unreadable mineral list (naming the file, the row and the column).

    Examples
    --------
    >>> c = physics_choice(None, 20.0)
    >>> c["classifier"], c["beam_kev"], len(c["class_names"]) >= 150
    ('physics', 20.0, True)
    """
    from mingraph.spectra.calibrate import Instrument

    names = PhysicsClassifier(Instrument(), minerals).names  # reads (and checks) the list now
    digest = None if minerals is None else hashlib.sha256(Path(minerals).read_bytes()).hexdigest()[:16]
    return {
        "classifier": "physics",
        "minerals": None if minerals is None else str(minerals),
        "minerals_digest": digest,
        "beam_kev": None if beam_kev is None else float(beam_kev),
        "class_names": list(names),
    }


def label_columns(label_names: Sequence[str], class_names: Sequence[str], source: object) -> list[int]:
    """The physics column of each dataset class, matched by exact name as ``evaluate`` matches a
    model's classes (-1 where the list does not name it).

    Raises
    ------
    InputError
        When the list names none of the dataset's classes (a wrong list, or names spelt otherwise).

    Examples
    --------
    >>> label_columns(["quartz", "ore"], ["albite", "quartz"], "ds")
    [1, -1]
    """
    index = {n: i for i, n in enumerate(class_names)}
    cols = [index.get(n, -1) for n in label_names]
    if label_names and all(c < 0 for c in cols):
        raise InputError(
            source,
            "class_names",
            f"no class of the dataset ({list(label_names)[:4]}...) is named by the mineral list "
            f"({list(class_names)[:4]}...): give --minerals a list that names them",
        )
    return cols


def field_instrument(sample, beam_kev: float | None, source: object):
    """The physics' starting instrument for a dataset's field: ``--beam-kev``, else what the field
    states (the simulator's beam, take-off and resolution for a simulated one), as ``predict`` chooses it.

    Raises
    ------
    InputError
        Neither states the beam energy, or it lies outside 1-30 kV.
    """
    measured, params = measured_spectra(sample)
    return choose_classifier("physics", measured, params, beam_kev, source)[1]


class PhysicsEvidence:
    """The physics classifier as a graph's EDS features: :meth:`embed` calibrates a fresh
    classifier on the summed spectrum of the points it is given (as ``predict``'s
    ``measure_points`` does for a field's points) and returns their (n, C + 1) probabilities;
    :attr:`calibration` is what that calibration fitted (None for no points)."""

    kind = "physics"

    def __init__(self, start, minerals: str | os.PathLike | None):
        self.start, self.minerals = start, minerals
        self.calibration: dict | None = None

    def embed(self, spectra: np.ndarray) -> np.ndarray:
        clf = PhysicsClassifier(self.start, self.minerals)
        y = np.asarray(spectra)
        self.calibration = None
        if len(y):
            clf.calibrate(y.sum(0, dtype=np.float64))
            self.calibration = finite(clf.fit.to_dict()) | ({"note": clf.note} if clf.note else {})
        return clf.class_probabilities(y)


def finite(obj):
    """``obj`` with every non-finite float made None (JSON has no NaN).

    Examples
    --------
    >>> finite({"a": [1.0, float("nan")], "b": "x"})
    {'a': [1.0, None], 'b': 'x'}
    """
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return float(obj) if isinstance(obj, float) else obj


def features_record(choice: dict, calibrations: list | None = None) -> dict:
    """The ``point_features`` metadata of a shard built with ``choice`` (a job's
    ``point_classifier``): classifier, class names, feature width, and for the physics the
    unknown column, the dataset classes' columns and each row's calibration.

    Examples
    --------
    >>> features_record({"classifier": "onnx"})
    {'classifier': 'onnx', 'class_names': None, 'feature_width': 64}
    """
    if choice["classifier"] != "physics":
        return {"classifier": choice["classifier"], "class_names": None, "feature_width": EMBED_DIM}
    return {
        "classifier": "physics",
        "class_names": list(choice["class_names"]),
        "unknown_column": UNKNOWN,
        "feature_width": len(choice["class_names"]) + 1,
        "minerals": choice.get("minerals") or "shipped library",
        "beam_kev": choice.get("beam_kev"),
        "label_columns": list(choice.get("label_columns") or []),
        "calibrations": list(calibrations or []),
    }


def implied_record(job: dict) -> dict:
    """The ``point_features`` of a shard built without ``--classifier``: the encoder's 64-value
    embeddings where it records an encoder, else raw spectra (that an encoder embeds at training).

    Examples
    --------
    >>> implied_record({"encoder_digest": None})["classifier"]
    'spectra'
    """
    return {
        "classifier": "encoder" if job.get("encoder_digest") else "spectra",
        "class_names": None,
        "feature_width": EMBED_DIM,
    }
