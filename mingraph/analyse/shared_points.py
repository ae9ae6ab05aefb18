"""The EDS points every method of ``mingraph evaluate`` sees, their classes, and the fields methods fit on.

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
import functools

import numpy as np

from mingraph.acquire.fields import Field
from mingraph.analyse.classmap import ClassMatch, match_classes
from mingraph.graphs.build import field_graph
from mingraph.graphs.structure import StructuredGraph
from mingraph.spectra.encoder import classify
from mingraph_kernels.nearest import nearest_eds_labels


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


@dataclasses.dataclass
class SharedPoints:
    """One field's EDS points at one fraction, as every method of an evaluation sees them.

    ``graph`` holds the points (``graph.eds_rc``) and ``spectra`` their measured spectra;
    ``classes`` the model id of each point's class (:func:`point_classes`; None when the encoder's
    classes cannot be matched to the model's); ``truth`` the (H, W) true class in the model's ids,
    -1 where the pixel is not valid or not labelled.
    """

    field: Field
    tile: int
    fraction: float
    graph: StructuredGraph
    spectra: np.ndarray
    classes: np.ndarray | None
    truth: np.ndarray

    @classmethod
    def draw(
        cls, fld: Field, tile: int, fraction: float, match: ClassMatch, classifier, lut, seed: int, **graph
    ) -> SharedPoints:
        """The points drawn on ``fld`` by :func:`mingraph.graphs.build.field_graph` (``seed``;
        ``graph``: its pattern, lift, encoder, edges, k and convention), classes by the encoder
        ``classifier`` through ``lut`` (none without it), the labels translated by ``match``."""
        g, sp = field_graph(fld, tile, fraction, 0, seed=seed, **graph)
        truth = (
            np.where(fld.valid, match.to_model(fld.labels), -1)
            if fld.labels is not None
            else np.full(fld.shape, -1)
        )
        classes = None if lut is None else point_classes(classifier, sp, lut)
        return cls(fld, tile, fraction, g, sp, classes, truth)

    @functools.cached_property
    def nearest(self) -> np.ndarray:
        """(H, W) int64 nearest-EDS labelling by the points' classes, on the graph's own nearest
        map (:func:`mingraph_kernels.nearest.nearest_eds_labels`); -1 everywhere without a point."""
        g = self.graph
        return nearest_eds_labels(
            g.height, g.width, g.eds_rc, np.asarray(self.classes, np.int64), nearest=g.nearest_eds
        )


class FittingFields:
    """The fields of a dataset that methods are tuned (validation split) or fitted (training split)
    on, with the EDS classes the model's ``encoder`` gives their points, in the model's ids.

    ``validation``: up to ``val_tiles`` labelled validation fields with at least one point, one
    draw at ``val_fraction`` each; ``training``: up to ``train_tiles`` labelled training fields,
    one draw each at 1 % and 5 % (with ``pattern="mask"`` the measured points, once), their
    labels in the model's ids.  Both are drawn once, when first read.
    """

    val_fraction = 0.01
    val_tiles = 12
    train_tiles = 20

    def __init__(self, ds, encoder, seed: int, model_names: list[str], pattern: str = "random"):
        self.ds, self.encoder, self.seed, self.names, self.pattern = ds, encoder, seed, model_names, pattern
        self.lut = point_class_lut(encoder, model_names)

    @functools.cached_property
    def match(self) -> ClassMatch:
        return match_classes(self.names, self.ds.class_names, self.ds.path)

    @functools.cached_property
    def val_indices(self) -> list[int]:
        return self.ds.indices("val")[: self.val_tiles]

    @functools.cached_property
    def validation(self) -> list[SharedPoints]:
        if not self.val_indices or self.lut is None:
            return []
        out = []
        for t in self.val_indices:
            p = self._draw(self.ds.field(t), t, self.val_fraction, self.seed + 7)
            if p.graph.n_eds and p.field.labels is not None:
                out.append(p)
        return out

    @functools.cached_property
    def training(self) -> list[SharedPoints]:
        tiles = self.ds.indices("train")[: self.train_tiles]
        if self.lut is None or not tiles:
            return []
        out = []
        for t in tiles:
            fld = self.ds.field(t)
            if fld.labels is None:
                continue
            for f in (0.01, 0.05) if self.pattern != "mask" else (1.0,):  # mask: the measured points, once
                out.append(self._draw(fld, t, f, self.seed + 11))
        return out

    def _draw(self, fld, t: int, fraction: float, seed: int) -> SharedPoints:
        """The points of one draw, the field's labels in the model's ids."""
        p = SharedPoints.draw(
            fld, t, fraction, self.match, self.encoder, self.lut, seed, pattern=self.pattern
        )
        return dataclasses.replace(p, field=in_model_classes(fld, self.match, self.names))

    def tuning(self, tuned: dict) -> dict | str:
        """What the tuning of methods on the validation split was, for ``metrics.json``: the split,
        fields, fraction and each parameter's scores (``tuned``: parameter -> candidate -> score),
        or why the defaults were kept."""
        if not self.val_indices or self.lut is None:
            return "defaults (no validation split)"
        if not self.validation:
            return "defaults (no labelled validation field)"
        return {"split": "val", "tiles": len(self.validation), "fraction": self.val_fraction} | tuned
