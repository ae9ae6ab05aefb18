"""The methods ``mingraph evaluate`` scores, one class each, behind one interface.

A :class:`Method` has a ``name`` (its label in ``metrics.csv``), ``fit`` (tuning or fitting on a
dataset's :class:`~mingraph.analyse.shared_points.FittingFields`; a no-op for a method without
parameters) and ``predict`` (class maps of a batch of fields on their
:class:`~mingraph.analyse.shared_points.SharedPoints`: every method sees the same points).  Maps
are in the model's ids, -1 for unclassified.  A method with one parameter (:class:`TunedMethod`)
takes the value of its grid that scores best (weighted F1, :func:`pooled_f1`) on the validation
fields.  Nearest-EDS labelling is the kernel's (``SharedPoints.nearest``); scores are
:mod:`mingraph.common.metrics`'.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mingraph.analyse.shared_points import FittingFields, SharedPoints
from mingraph.common.errors import InputError
from mingraph.common.metrics import confusion, scores
from mingraph.graphs.build import field_graph
from mingraph.learn.baselines import load_unet, predict_unet
from mingraph.learn.bundle import Bundle, default_model_path, load_bundle, resolve_model
from mingraph.learn.candidate_pick import candidate_pick, fit_candidate_pick
from mingraph.learn.classical import (
    GEODESIC_ALPHAS,
    SEGMENT_SIZES_PX,
    choose_parameter,
    geodesic_nearest_eds,
    segment_vote,
)


def tile_confusions(points: Sequence[SharedPoints], maps: Sequence[np.ndarray], n_classes: int) -> list:
    """One confusion matrix per field of ``maps`` against the points' truth; an unclassified pixel
    (-1) is a miss of its true class, no false positive (:func:`mingraph.common.metrics.confusion`)."""
    return [confusion(p.truth, m, n_classes, unclassified=True) for p, m in zip(points, maps)]


def pooled_f1(points: Sequence[SharedPoints], maps: Sequence[np.ndarray], n_classes: int) -> float:
    """Support-weighted F1 of ``maps`` pooled over the fields, as ``mingraph evaluate`` scores."""
    return scores(sum(tile_confusions(points, maps, n_classes)))["f1_weighted"]


class Method:
    """A method of an evaluation: ``name`` labels its scores; ``fit`` tunes or fits it on a
    dataset's fields (here a no-op); ``predict`` gives the (H, W) class map of each field of a
    batch on its shared points (here :meth:`predict_field` field by field); ``available`` is
    False when fitting found nothing to fit on (the method is then not reported)."""

    name = ""
    available = True

    def fit(self, fields: FittingFields | None) -> None:
        """Tune or fit on ``fields`` (None: a dataset's fields are not read, no method that needs
        them is run); nothing to do for a method without parameters."""

    def predict(self, points: Sequence[SharedPoints]) -> list[np.ndarray]:
        return [self.predict_field(p) for p in points]

    def predict_field(self, p: SharedPoints) -> np.ndarray:
        raise NotImplementedError


class ModelMethod(Method):
    """A trained model (the one evaluated, or one compared with it) on the shared points: its
    class (:mod:`mingraph.learn.registry`) gives the maps from the fields, their points and their
    measured spectra, batched as the model batches them; ``name`` is the model's ``label`` unless
    another is given."""

    def __init__(self, bundle: Bundle, name: str | None = None):
        self.bundle = bundle
        self.name = bundle.model.label if name is None else name

    def predict(self, points: Sequence[SharedPoints]) -> list[np.ndarray]:
        b = self.bundle
        fields, graphs, spectra = (
            [p.field for p in points],
            [p.graph for p in points],
            [p.spectra for p in points],
        )
        return b.model.field_maps(b.encoder, b.config, fields, graphs, spectra)


def compared_models(paths: Sequence[str | os.PathLike], main: str, names: list[str]) -> list[ModelMethod]:
    """The models compared with the one evaluated (named ``main``), each labelled by its kind; the
    shipped model says so, and two models of one kind are told apart by their file's name.
    InputError when a model's classes are not ``names``."""
    out: list[ModelMethod] = []
    for path in paths:
        other_path = resolve_model(path)
        other = load_bundle(other_path)
        if other.class_names != names:
            raise InputError(path, "class_names", "this model's classes differ from the dataset's")
        label = other.model.label
        if other_path.resolve() == default_model_path().resolve():
            label = f"{label}, shipped ({other_path.name})"
        elif label == main or label in [m.name for m in out]:  # two models of one kind: name them by file
            label = f"{label} ({Path(path).name})"
        out.append(ModelMethod(other, label))
    return out


class TunedMethod(Method):
    """A classical baseline with one parameter, ``value``: :meth:`fit` scores every value of
    ``grid`` on the validation fields (weighted F1) and keeps the best (:func:`choose_parameter`),
    the scores in ``table``, unless ``tune`` is False; a ``given`` value is kept whatever the
    tuning found.  :meth:`label` is the map at any value."""

    grid: Sequence[float] = ()
    default = 0.0

    def __init__(self, n_classes: int, given: float | None = None, tune: bool = True):
        self.n_classes, self.given, self.tune, self.table = n_classes, given, tune, None
        self.value = float(self.default if given is None else given)

    def fit(self, fields: FittingFields) -> None:
        val = fields.validation if self.tune else []
        if val:
            self.value, self.table = choose_parameter(
                self.grid, lambda v: pooled_f1(val, [self.label(p, v) for p in val], self.n_classes)
            )
        self.value = float(self.value if self.given is None else self.given)

    def predict_field(self, p: SharedPoints) -> np.ndarray:
        return self.label(p, self.value)

    def label(self, p: SharedPoints, value: float) -> np.ndarray:
        raise NotImplementedError


class GeodesicNearestEDS(TunedMethod):
    """BSE-geodesic nearest-EDS (:func:`mingraph.learn.classical.geodesic_nearest_eds`): each pixel
    takes the class of the point it reaches most cheaply, a step across a BSE edge costing more by
    the weight alpha, tuned over :data:`~mingraph.learn.classical.GEODESIC_ALPHAS`."""

    grid, default = GEODESIC_ALPHAS, 30.0

    @property
    def name(self) -> str:
        return f"geodesic nearest EDS (alpha {self.value:g})"

    def label(self, p: SharedPoints, value: float) -> np.ndarray:
        return geodesic_nearest_eds(p.field.bse, p.field.valid, p.graph.eds_rc, p.classes, value)


class SegmentVote(TunedMethod):
    """BSE-segment vote (:func:`mingraph.learn.classical.segment_vote`): SLIC segments of the BSE
    take the majority class of their points, segments without one the nearest-EDS class; the mean
    segment area in pixels tuned over :data:`~mingraph.learn.classical.SEGMENT_SIZES_PX`."""

    grid, default = SEGMENT_SIZES_PX, 64.0

    @property
    def name(self) -> str:
        return f"BSE-segment vote ({self.value:g} px)"

    def label(self, p: SharedPoints, value: float) -> np.ndarray:
        return segment_vote(p.field.bse, p.field.valid, p.graph.eds_rc, p.classes, p.nearest, value)


class CandidatePick(Method):
    """The learnt candidate pick (:mod:`mingraph.learn.candidate_pick`): a gradient-boosted
    classifier lets each pixel pick one of its nearest points' classes; fitted on the training
    fields (:attr:`FittingFields.training`), not available without a labelled one."""

    name = "learnt candidate pick"

    def __init__(self, seed: int):
        self.seed, self.model = seed, None

    @property
    def available(self) -> bool:
        return self.model is not None

    def fit(self, fields: FittingFields) -> None:
        train = fields.training
        if train:
            pts = [(p.graph.eds_rc, p.classes) for p in train]
            self.model = fit_candidate_pick([p.field for p in train], pts, seed=self.seed)

    def predict_field(self, p: SharedPoints) -> np.ndarray:
        return candidate_pick(self.model, p.field.bse, p.field.valid, p.graph.eds_rc, p.classes)


class KnnGAT(Method):
    """The GAT trained on kNN graphs (the paper's Fig. 10 ablation): the same points drawn again
    (same ``pattern`` and ``seed``) into that model's graph, EDS nodes linked to their k nearest
    neighbours, embedded by that model's encoder.  InputError when its classes are not ``names``."""

    name = "GAT (kNN graph)"

    def __init__(self, path: str | os.PathLike, names: list[str], pattern: str, seed: int):
        self.bundle = load_bundle(resolve_model(path))
        if self.bundle.class_names != names:
            raise InputError(path, "class_names", "the kNN model's classes differ from the dataset's")
        self.pattern, self.seed = pattern, seed

    def predict(self, points: Sequence[SharedPoints]) -> list[np.ndarray]:
        b, cfg = self.bundle, self.bundle.config
        graphs = [
            field_graph(
                p.field,
                p.tile,
                p.fraction,
                0,
                self.pattern,
                self.seed,
                cfg.get("lift", 1.0),
                b.encoder,
                "knn",
                cfg.get("k", 6),
            )[0]
            for p in points
        ]
        return [m[0] for m in b.model.graph_maps(graphs, cfg)]


class NearestEDS(Method):
    """Nearest-EDS labelling, what a user can do without any fusion: every pixel takes the class
    of its nearest point (a Voronoi map; :func:`mingraph_kernels.nearest.nearest_eds_labels`, the
    one nearest-EDS of the package); unclassified everywhere on a field without a point."""

    name = "nearest EDS"

    def predict_field(self, p: SharedPoints) -> np.ndarray:
        return p.nearest


class UNetBSE(Method):
    """The paper's UNet on the BSE image alone (:mod:`mingraph.learn.baselines`): it sees no EDS
    point, so a field's map is computed once and kept for every fraction.  InputError when its
    classes are not ``names``."""

    name = "UNet (BSE only)"

    def __init__(self, path: str | os.PathLike, names: list[str]):
        self.net, unet_names = load_unet(path)
        if unet_names != names:
            raise InputError(path, "class_names", "the UNet's classes differ from the dataset's")
        self.cache: dict[int, np.ndarray] = {}

    def predict_field(self, p: SharedPoints) -> np.ndarray:
        if p.tile not in self.cache:
            self.cache[p.tile] = predict_unet(self.net, p.field.bse).astype(np.int16)
        return self.cache[p.tile]
