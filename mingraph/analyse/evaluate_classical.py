"""The classes of the EDS points in ``mingraph evaluate``, and the baselines fitted or tuned on them.

Every method of an evaluation is scored in the model's classes (its bundle's names), the labels of
a dataset translated into them by name (:func:`mingraph.analyse.classmap.match_classes`).  The
classical baselines and the learnt candidate pick label pixels with the classes the encoder gives
the EDS points; those are the encoder's ids, named in its metadata, and are translated into the
model's ids by name too (:func:`point_class_lut`), before the baselines are tuned on the
validation split, fitted on the training split or scored.  A dataset may have other classes, in
another order, than the model: a labelled class the model lacks is left out of the scores, a
class the model predicts and the labels never use is wrong wherever it is predicted, and a point
class the model lacks labels no pixel (the point counts as unclassified).  No id of one list is
ever read as an id of another.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mingraph.analyse.classmap import ClassMatch, match_classes
from mingraph.common.metrics import confusion, scores
from mingraph.graphs.build import field_graph


def point_class_lut(encoder, model_names: list[str]) -> np.ndarray | None:
    """Model id of each class of the encoder's classifier head, matched by name.

    Parameters
    ----------
    encoder : mingraph.spectra.encoder.Encoder
        The encoder whose classes the EDS points get (``classify``).
    model_names : list of str
        The model's classes, in id order.

    Returns
    -------
    numpy.ndarray or None
        (n_encoder_classes,) int64, -1 where the model lacks the encoder's class; None when the
        encoder has no classifier head, or its classes are not named and are not as many as the
        model's (an unnamed head of the model's size is taken to be in the model's order).
    """
    if hasattr(encoder, "class_probabilities"):  # physics (or a gated encoder): its classes are the model's
        return np.arange(len(model_names), dtype=np.int64)
    if encoder is None or encoder.kind != "cnn" or not encoder.n_classes:
        return None
    names = (encoder.meta or {}).get("class_names")
    if names is None or len(names) != encoder.n_classes:
        return np.arange(encoder.n_classes, dtype=np.int64) if encoder.n_classes == len(model_names) else None
    index = {n: i for i, n in enumerate(model_names)}
    return np.array([index.get(n, -1) for n in names], np.int64)


def point_classes(encoder, spectra: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(n,) int64 model id of each spectrum's class (:func:`point_class_lut`; -1 where the model
    lacks it)."""
    from mingraph.spectra.encoder import classify

    if len(spectra) == 0:
        return np.zeros(0, np.int64)
    if hasattr(encoder, "class_probabilities"):  # the unknown column (last) gives -1
        c = encoder.class_probabilities(spectra).argmax(1).astype(np.int64)
        return np.where(c < len(lut), lut[np.minimum(c, len(lut) - 1)], -1)
    return lut[classify(encoder, spectra)]


def in_model_classes(fld, match: ClassMatch, model_names: list[str]):
    """The field with its labels in the model's ids (-1 where the model lacks the class)."""
    if fld.labels is None:
        return fld
    labels = match.to_model(fld.labels).astype(np.int32)
    return dataclasses.replace(fld, labels=labels, class_names=list(model_names))


def fit_pick(ds, encoder, seed: int, model_names: list[str], max_tiles: int = 20, pattern: str = "random"):
    """The learnt candidate pick (:mod:`mingraph.learn.candidate_pick`) fitted on up to
    ``max_tiles`` training fields of ``ds``, one EDS draw each at 1 % and 5 %, the labels and the
    points' classes both in the model's ids; None without any labelled training field (or when
    the encoder's classes cannot be matched to the model's)."""
    from mingraph.learn.candidate_pick import fit_candidate_pick

    lut = point_class_lut(encoder, model_names)
    tiles = ds.indices("train")[:max_tiles]
    if lut is None or not tiles:
        return None
    match = match_classes(model_names, ds.class_names, ds.path)
    fields, points = [], []
    for t in tiles:
        fld = ds.field(t)
        if fld.labels is None:
            continue
        fld = in_model_classes(fld, match, model_names)
        for f in (0.01, 0.05) if pattern != "mask" else (1.0,):  # mask: the measured points, once
            g, sp = field_graph(fld, t, f, 0, pattern, seed + 11, 1.0, None)
            fields.append(fld)
            points.append((g.eds_rc, point_classes(encoder, sp, lut)))
    return fit_candidate_pick(fields, points, seed=seed) if fields else None


def tune_classical(
    ds,
    encoder,
    seed: int,
    model_names: list[str],
    fraction: float = 0.01,
    max_tiles: int = 12,
    pattern: str = "random",
) -> dict:
    """The classical baselines' parameters that score best on the validation split of ``ds`` at
    ``fraction`` (weighted F1 in the model's classes, as :func:`mingraph.analyse.evaluate.evaluate`
    scores them): geodesic cost weight alpha and segment size; defaults without a val split."""
    from mingraph.learn.baselines import nearest_eds_labels
    from mingraph.learn.classical import (
        GEODESIC_ALPHAS,
        SEGMENT_SIZES_PX,
        choose_parameter,
        geodesic_nearest_eds,
        segment_vote,
    )

    tiles = ds.indices("val")[:max_tiles]
    lut = point_class_lut(encoder, model_names)
    if not tiles or lut is None:
        return {"alpha": 30.0, "segment_px": 64.0, "tuning": "defaults (no validation split)"}
    match = match_classes(model_names, ds.class_names, ds.path)
    fields, points = [], []
    for t in tiles:
        fld = ds.field(t)
        g, sp = field_graph(fld, t, fraction, 0, pattern, seed + 7, 1.0, None)
        if g.n_eds and fld.labels is not None:
            c = point_classes(encoder, sp, lut)
            fields.append(in_model_classes(fld, match, model_names))
            points.append((g, c, nearest_eds_labels(g, c)))
    if not fields:
        return {"alpha": 30.0, "segment_px": 64.0, "tuning": "defaults (no labelled validation field)"}
    C = len(model_names)

    def f1(maps) -> float:
        cm = sum(
            confusion(np.where(f.valid, f.labels, -1), m, C, unclassified=True) for f, m in zip(fields, maps)
        )
        return scores(cm)["f1_weighted"]

    alpha, t_alpha = choose_parameter(
        GEODESIC_ALPHAS,
        lambda a: f1(
            [geodesic_nearest_eds(f.bse, f.valid, g.eds_rc, c, a) for f, (g, c, _) in zip(fields, points)]
        ),
    )
    seg, t_seg = choose_parameter(
        SEGMENT_SIZES_PX,
        lambda s: f1(
            [segment_vote(f.bse, f.valid, g.eds_rc, c, nm, s) for f, (g, c, nm) in zip(fields, points)]
        ),
    )
    return {
        "alpha": alpha,
        "segment_px": seg,
        "tuning": {
            "split": "val",
            "tiles": len(fields),
            "fraction": fraction,
            "alpha": t_alpha,
            "segment_px": t_seg,
        },
    }
