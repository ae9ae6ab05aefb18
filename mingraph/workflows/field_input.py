"""What a command is given to predict, made into one field, its EDS points and their evidence.

``predict`` takes one of three inputs: a dataset's field (``INPUT --tile``), a simulated field
(``--simulate SIZE``) or a measured field's files (``--bse IMAGE --points FILE``);
``predict-sample`` and ``acquire`` take a sample or a field.  Each needs the same two choices
made the same way: which point classifier reads the spectra
(:func:`mingraph.spectra.point_classifier.choose_classifier`: the physics for measured spectra
of known beam energy, else the model's encoder) and, for the physics, which mineral list names
the classes.  The command line (``mingraph.cli``) only parses options and prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mingraph.acquire.fields import Field
from mingraph.acquire.simulate.eds import measured_spectra
from mingraph.common.errors import InputError
from mingraph.learn.bundle import Bundle, physics_record, with_classifier
from mingraph.spectra.point_classifier import choose_classifier


@dataclass
class FieldInput:
    """One field to predict: the field, its EDS points (``rc`` (N, 2) int row/col), their point
    evidence (``evidence`` (N, width) float32), the input's description, the point classifier
    chosen, the model fed by it, and the notices to show once the prediction is written."""

    sample: Field
    rc: np.ndarray
    evidence: np.ndarray
    label: str
    classifier: str
    bundle: Bundle
    notices: list[str] = field(default_factory=list)


def classify_with(
    bundle: Bundle,
    classifier: str | None,
    *,
    measured: bool,
    params: dict | None,
    beam_kev: float | None,
    source: object,
    minerals: str | os.PathLike | None = None,
    say: Callable[[str], None] | None = None,
) -> tuple[str, Bundle]:
    """The point classifier chosen for a field and the model fed by it.

    ``classifier`` as given (``--classifier``) or None for the default (the physics for a model
    trained on its probabilities, :func:`mingraph.learn.bundle.physics_record`); ``measured`` and
    ``params`` as :func:`measured_spectra` gives them; ``beam_kev`` (kV) overrides the file's;
    ``minerals`` the physics' mineral list (default: the shipped library); ``say`` receives the
    notice shown when the physics is the default but the beam energy is unknown.

    Raises
    ------
    InputError
        ``--classifier physics`` without a known beam energy, or a classifier the model cannot
        take (:func:`mingraph.learn.bundle.with_classifier`).

    Examples
    --------
    >>> from mingraph.learn.bundle import load_model
    >>> classify_with(load_model(), None, measured=False, params=None, beam_kev=None, source="x")[0]
    'encoder'
    """
    if classifier is None and physics_record(bundle) is not None:  # a GAT trained on physics shards
        classifier = "physics"  # reads nothing else, a simulated field's spectra too
    chosen, start = choose_classifier(classifier, measured, params, beam_kev, source, say)
    return chosen, with_classifier(bundle, chosen, start, minerals)


def open_field(
    bundle: Bundle,
    *,
    dataset: str | os.PathLike | None = None,
    tile: str | None = None,
    simulate: int | None = None,
    bse: str | os.PathLike | None = None,
    points: str | os.PathLike | None = None,
    valid: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    classes: str | os.PathLike | None = None,
    pixel_size_um: float | None = None,
    fraction: float = 0.01,
    pattern: str = "random",
    seed: int = 0,
    classifier: str | None = None,
    beam_kev: float | None = None,
    minerals: str | os.PathLike | None = None,
    say: Callable[[str], None] = print,
) -> FieldInput:
    """The field ``predict`` runs on, from exactly one of ``dataset`` (with ``tile``),
    ``simulate`` (a SIZE² simulated field of ``seed``) or ``bse`` with ``points``.

    Points are drawn at ``fraction`` by ``pattern`` for a dataset's or a simulated field, and
    are the measured ones for ``bse``/``points``; ``valid``, ``labels``, ``classes`` and
    ``pixel_size_um`` (µm; 1 µm with a notice to ``say`` when None) go with ``bse``.  The field's
    labels come back in the model's class ids, matched by name (the unmatched are told to
    ``say``).

    Raises
    ------
    InputError
        Not exactly one input, ``bse`` without ``points``, ``labels``/``classes`` without ``bse``,
        or any file or classifier error.

    Examples
    --------
    >>> from mingraph.learn.bundle import load_model
    >>> f = open_field(load_model(), simulate=48, fraction=0.02)
    >>> f.sample.shape, f.rc.shape[1], f.classifier
    ((48, 48), 2, 'encoder')
    """
    from mingraph.workflows.predict import labels_in_model_classes, measure_points, measured_field

    if sum(x is not None for x in (dataset, simulate, bse)) != 1:
        raise InputError(
            "predict", "input", "give exactly one of INPUT, --simulate SIZE or --bse IMAGE --points FILE"
        )
    notices: list[str] = []  # shown once the prediction is written (an error stays one line)

    def evidence(measured: bool, params: dict | None, source: object) -> tuple[str, Bundle]:
        return classify_with(
            bundle,
            classifier,
            measured=measured,
            params=params,
            beam_kev=beam_kev,
            source=source,
            minerals=minerals,
            say=notices.append,
        )

    if simulate is not None:
        from mingraph.acquire.simulate import simulate_tile

        sample = simulate_tile(seed, simulate).field(f"simulated-{simulate}-seed{seed}")
        chosen, fed = evidence(*measured_spectra(sample), "--simulate")  # its simulator's instrument
        rc, emb = measure_points(sample, fed, fraction, pattern, seed)
        label = f"simulated {simulate}x{simulate} field, seed {seed}"
    elif bse is not None:
        if points is None:
            raise InputError(
                "predict", "--points", "a measured field needs its point spectra (--points FILE.npz)"
            )
        if pixel_size_um is None:
            say("pixel size: not given; using 1 µm (grain sizes and areas in these units): pass --pixel-size")
            pixel_size_um = 1.0
        chosen, fed = evidence(True, None, points)
        sample, rc, emb = measured_field(bse, points, valid, pixel_size_um, fed, labels, classes)
        label = f"{bse} + {points}"
    else:
        from mingraph.acquire.dataset import open_dataset

        ds = open_dataset(dataset)
        sample = ds.field(ds.find(tile))
        measured, params = measured_spectra(sample)
        chosen, fed = evidence(measured, params, f"{dataset} tile {sample.name}")
        rc, emb = measure_points(sample, fed, fraction, pattern, seed)
        label = f"{dataset} tile {sample.name}"
    if (labels is not None or classes is not None) and bse is None:
        raise InputError(
            "predict", "--labels", "--labels/--classes go with --bse (a dataset has its own labels)"
        )
    sample, notes = labels_in_model_classes(sample, fed)
    for line in notes:
        say(line)
    return FieldInput(sample, rc, emb, label, chosen, fed, notices)


def sample_classifier(
    sample: str | os.PathLike,
    classifier: str | None,
    beam_kev: float | None,
    minerals: str | os.PathLike | None,
    model: str | os.PathLike | None,
) -> tuple[str | None, bool, list[str]]:
    """The point classifier of a ``predict-sample`` run, whether it is the physics, and the class
    names its mineralogy reports.

    The physics when asked, when ``beam_kev`` is given, or by default for a dataset sample whose
    every field states its beam energy (:func:`mingraph.workflows.sample.states_beam`); then the
    classes are those of the mineral list ``minerals`` (None: the shipped library), which names
    the physics' classes.  Otherwise the model's classes, and ``minerals`` is only the
    mineralogy's list.  A GAT trained on physics shards takes the physics over its recorded list
    (``minerals`` must name the same classes) and reports its own (the dataset's) classes.

    Raises
    ------
    InputError
        An unreadable sample, mineral list or model file.
    """
    from mingraph.learn.bundle import load_model

    bundle = load_model(model)
    if physics_record(bundle) is not None:  # a GAT trained on physics shards: its own classes out
        return classifier or "physics", True, list(bundle.class_names)
    if classifier is None and beam_kev is None:  # a dataset whose fields state their beam: physics
        from mingraph.acquire.sample import open_sample
        from mingraph.workflows.sample import states_beam

        if states_beam(open_sample(sample)):
            classifier = "physics"
    if classifier == "physics" or (classifier is None and beam_kev is not None):
        from mingraph.spectra.mineral_library import read_library

        return classifier, True, [m.name for m in read_library(minerals)]
    return classifier, False, list(bundle.class_names)
