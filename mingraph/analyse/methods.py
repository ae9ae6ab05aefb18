"""The methods ``mingraph evaluate`` scores, one class each, behind one interface.

A :class:`Method` has a ``name`` (its label in ``metrics.csv``), ``fit`` (tuning or fitting on a
dataset's :class:`~mingraph.analyse.shared_points.FittingFields`; a no-op for a method without
parameters) and ``predict`` (class maps of a batch of fields on their
:class:`~mingraph.analyse.shared_points.SharedPoints`: every method sees the same points).  Maps
are in the model's ids, -1 for unclassified.  A method with one parameter (:class:`TunedMethod`)
takes, at each fraction it is scored at, the value that scores best (weighted F1,
:func:`pooled_f1`) on the validation fields drawn at that fraction; its grid is extended
(:func:`tune_parameter`) until the best value is interior, and an optimum still at an edge is
flagged.  A compared model of other classes is matched to the evaluated model's classes by name
(:func:`compared_models`).  Nearest-EDS labelling is the kernel's (``SharedPoints.nearest``);
scores are :mod:`mingraph.common.metrics`'.  ``predict_with_confidence`` gives the maps with each
pixel's confidence where a method has one (the fusion model's max q, nearest EDS's point
probability; None otherwise), what ``evaluate``'s calibration error is computed from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mingraph.analyse.classmap import ClassMatch, match_classes
from mingraph.analyse.shared_points import FittingFields, SharedPoints
from mingraph.common.errors import InputError
from mingraph.common.metrics import confusion, scores
from mingraph.graphs.build import points_graph
from mingraph.learn.baselines import load_unet, predict_unet
from mingraph.learn.bundle import Bundle, default_model_path, load_bundle, resolve_model
from mingraph.learn.candidate_pick import candidate_pick, fit_candidate_pick
from mingraph.learn.classical import GEODESIC_ALPHAS, SEGMENT_SIZES_PX, geodesic_nearest_eds, segment_vote


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

    def predict_with_confidence(self, points: Sequence[SharedPoints]) -> list[tuple]:
        """(class map, confidence (H, W) float32 or None) of each field: the probability the
        method gives its answer at each pixel; here None (a method that gives none)."""
        return [(m, None) for m in self.predict(points)]

    def predict_field(self, p: SharedPoints) -> np.ndarray:
        raise NotImplementedError


class ModelMethod(Method):
    """A trained model (the one evaluated, or one compared with it) on the shared points: its
    class (:mod:`mingraph.learn.registry`) gives the maps from the fields, their points and their
    measured spectra, batched as the model batches them; ``name`` is the model's ``label`` unless
    another is given."""

    def __init__(self, bundle: Bundle, name: str | None = None, classes: ClassMatch | None = None):
        self.bundle, self.classes = bundle, classes
        self.name = bundle.model.label if name is None else name

    def predict(self, points: Sequence[SharedPoints]) -> list[np.ndarray]:
        b = self.bundle
        fields, graphs, spectra = (
            [p.field for p in points],
            [p.graph for p in points],
            [p.spectra for p in points],
        )
        maps = b.model.field_maps(b.encoder, b.config, fields, graphs, spectra)
        return [self._in_classes(m) for m in maps]

    def predict_with_confidence(self, points: Sequence[SharedPoints]) -> list[tuple]:
        """Maps and the model's confidence (max q, :meth:`FusionModel.field_predictions`) where its
        class has one; else the maps with None."""
        b = self.bundle
        if not hasattr(b.model, "field_predictions"):
            return super().predict_with_confidence(points)
        args = ([p.field for p in points], [p.graph for p in points], [p.spectra for p in points])
        out = b.model.field_predictions(b.encoder, b.config, *args)
        return [(self._in_classes(m), c) for m, c in out]

    def _in_classes(self, m: np.ndarray) -> np.ndarray:
        if self.classes is None or self.classes.identical:
            return m
        return self.classes.to_model(m)  # its ids -> the evaluated model's, by name


def compared_models(paths: Sequence[str | os.PathLike], main: str, names: list[str]) -> list[ModelMethod]:
    """The models compared with the one evaluated, on the same points, in its classes.

    Parameters
    ----------
    paths : sequence of path-like
        Model files or run folders.
    main : str
        The evaluated model's label; a compared model of the same kind is told apart by its file's
        name, the shipped model says so.
    names : list of str
        The evaluated model's classes, in id order: the classes every method is scored in.

    Returns
    -------
    list of ModelMethod
        One per path.  A compared model's classes are matched to ``names`` by name (as the
        dataset's labels are): its ids are translated, and a pixel it gives a class that ``names``
        lacks is unclassified (a miss of its true class, no false positive of another);
        ``classes.labels_only`` lists those classes, ``classes.model_only`` the classes of
        ``names`` it never predicts.

    Raises
    ------
    InputError
        A model shares no class name with ``names``.

    Examples
    --------
    >>> from mingraph.learn.bundle import default_model_path, load_bundle
    >>> shipped = load_bundle(default_model_path())
    >>> m, = compared_models([default_model_path()], "GAT (paper)", shipped.class_names[::-1])
    >>> m.name.endswith("shipped (default_model.pt)"), int(m.classes.lut[0]) == len(shipped.class_names) - 1
    (True, True)
    """
    out: list[ModelMethod] = []
    for path in paths:
        other_path = resolve_model(path)
        other = load_bundle(other_path)
        label = other.model.label
        if other_path.resolve() == default_model_path().resolve():
            label = f"{label}, shipped ({other_path.name})"
        elif label == main or label in [m.name for m in out]:  # two models of one kind: name them by file
            label = f"{label} ({Path(path).name})"
        out.append(ModelMethod(other, label, match_classes(names, other.class_names, other_path)))
    return out


def tune_parameter(
    grid: Sequence[float],
    score: Callable[[float], float],
    lower: float | None = None,
    upper: float | None = None,
    max_extensions: int = 4,
) -> dict:
    """The value of ``grid`` with the highest ``score``, the grid extended until that is interior.

    While the best value tried is the smallest or the largest, one more value is tried beyond it,
    a step of the grid's outermost ratio (or difference, from 0) further (rounded to 3 significant
    digits), at most
    ``max_extensions`` times on each side and never past ``lower`` or ``upper`` (the parameter's
    bounds: a step past one tries the bound itself).  Ties go to the smaller value.

    Parameters
    ----------
    grid : sequence of float
        The values tried first (at least one).
    score : callable
        value -> score (higher is better), e.g. validation weighted F1.
    lower, upper : float, optional
        Bounds the extension never passes (None: unbounded on that side).
    max_extensions : int
        Most values added on each side.

    Returns
    -------
    dict
        ``best`` (float), ``scores`` ({value: score}, every value tried, ascending), ``extended``
        (the values added), ``edge`` (None when the best is interior, else ``"lower"`` or
        ``"upper"``: the best is still at that edge of what was tried, a bound or the extension
        limit reached) and ``at_bound`` (True when that edge is ``lower`` or ``upper`` itself).

    Examples
    --------
    >>> r = tune_parameter([1, 10, 100], lambda a: -abs(a - 5000.0))
    >>> r["best"], r["extended"], r["edge"]
    (1000.0, [1000.0, 10000.0], None)
    >>> tune_parameter([0, 3, 10], lambda a: -a, lower=0)["edge"]
    'lower'
    """
    table = {float(v): float(score(float(v))) for v in grid}
    added: list[float] = []

    def best() -> float:
        return max(table, key=lambda v: (table[v], -v))

    def beyond(side: str) -> float | None:
        """The next value past the ``side`` edge: the outermost ratio once more (a step from 0)."""
        vals = sorted(table)
        if side == "upper":
            a, b = vals[-2], vals[-1]
            nxt = b * b / a if a > 0 else 2 * b - a
            nxt = nxt if upper is None else min(nxt, upper)
        else:
            a, b = vals[0], vals[1]
            nxt = a * a / b if a > 0 else 2 * a - b
            nxt = nxt if lower is None else max(nxt, lower)
        nxt = float(f"{nxt:.3g}")  # 3 significant digits: values a user can read and give back
        return None if nxt in table else nxt  # past a bound: the bound itself, once

    counts = {"lower": 0, "upper": 0}
    while len(table) > 1:
        b, vals = best(), sorted(table)
        side = "upper" if b == vals[-1] else "lower" if b == vals[0] else None
        if side is None or counts[side] >= max_extensions:
            break
        nxt = beyond(side)
        if nxt is None:
            break
        counts[side] += 1
        table[nxt] = float(score(nxt))
        added.append(nxt)
    b, vals = best(), sorted(table)
    edge = None if len(vals) < 2 or vals[0] < b < vals[-1] else "upper" if b == vals[-1] else "lower"
    bound = {"lower": lower, "upper": upper}.get(edge or "")
    return {
        "best": b,
        "scores": {v: table[v] for v in vals},
        "extended": added,
        "edge": edge,
        "at_bound": bound is not None and b == bound,
    }


class TunedMethod(Method):
    """A classical baseline with one parameter: at each fraction it is scored at, :meth:`fit`'s
    fields are drawn at that fraction and every value of :meth:`grid` scored on them (weighted
    F1), the grid extended until the best is interior (:func:`tune_parameter`, within ``bounds``);
    ``reports`` holds what each tuning found, ``values`` the value used at each fraction.  Without
    tuning (``tune`` False, or no validation field) ``default`` is used; a ``given`` value is used
    at every fraction, untuned.  :meth:`label` is the map at any value.
    """

    parameter = ""
    default = 0.0
    bounds: tuple[float | None, float | None] = (None, None)

    def __init__(self, n_classes: int, given: float | None = None, tune: bool = True):
        self.n_classes, self.given, self.tune = n_classes, given, tune
        self.fields: FittingFields | None = None
        self.values: dict[float, float] = {}
        self.reports: dict[float, dict] = {}

    def grid(self, fraction: float) -> Sequence[float]:
        """The values tried first at ``fraction``."""
        raise NotImplementedError

    def fit(self, fields: FittingFields | None) -> None:
        self.fields = fields

    def value(self, fraction: float) -> float:
        """The value used at ``fraction`` (tuned when first asked)."""
        f = float(fraction)
        if f not in self.values:
            tune = self.tune and self.given is None and self.fields is not None
            val = self.fields.validation(f) if tune else []
            if val:
                self.reports[f] = tune_parameter(
                    self.grid(f),
                    lambda v: pooled_f1(val, [self.label(p, v) for p in val], self.n_classes),
                    *self.bounds,
                )
            tuned = self.reports[f]["best"] if f in self.reports else self.default
            self.values[f] = float(tuned if self.given is None else self.given)
        return self.values[f]

    def predict(self, points: Sequence[SharedPoints]) -> list[np.ndarray]:
        return [self.label(p, self.value(p.fraction)) for p in points]

    def label(self, p: SharedPoints, value: float) -> np.ndarray:
        raise NotImplementedError


class GeodesicNearestEDS(TunedMethod):
    """BSE-geodesic nearest-EDS (:func:`mingraph.learn.classical.geodesic_nearest_eds`): each pixel
    takes the class of the point it reaches most cheaply, a step across a BSE edge costing more by
    the weight alpha, tuned from :data:`~mingraph.learn.classical.GEODESIC_ALPHAS` upwards
    (alpha 0, the lower bound, is nearest-EDS)."""

    name, parameter, default, bounds = "geodesic nearest EDS", "alpha", 30.0, (0.0, None)

    def grid(self, fraction: float) -> Sequence[float]:
        return GEODESIC_ALPHAS

    def label(self, p: SharedPoints, value: float) -> np.ndarray:
        return geodesic_nearest_eds(p.field.bse, p.field.valid, p.graph.eds_rc, p.classes, value)


class SegmentVote(TunedMethod):
    """BSE-segment vote (:func:`mingraph.learn.classical.segment_vote`): SLIC segments of the BSE
    take the majority class of their points, segments without one the nearest-EDS class; the mean
    segment area in pixels tuned at each fraction over :meth:`grid`, sizes from
    :data:`~mingraph.learn.classical.SEGMENT_SIZES_PX` and from a quarter to 8 times the area per
    point (1 / fraction pixels: segments larger than the point spacing included), at least 4 px."""

    name, parameter, default, bounds = "BSE-segment vote", "segment_px", 64.0, (4.0, None)

    def grid(self, fraction: float) -> Sequence[float]:
        per_point = [round(m / fraction) for m in (0.25, 1.0, 2.0, 4.0, 8.0)] if fraction > 0 else []
        return sorted({float(v) for v in (*SEGMENT_SIZES_PX, *per_point) if v >= self.bounds[0]})

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
    """The GAT trained on kNN graphs (the paper's Fig. 10 ablation): the shared points and their
    spectra, embedded by that model's encoder, in that model's graph (EDS nodes linked to their k
    nearest neighbours).  InputError when its classes are not ``names``."""

    name = "GAT (kNN graph)"

    def __init__(self, path: str | os.PathLike, names: list[str]):
        self.bundle = load_bundle(resolve_model(path))
        if self.bundle.class_names != names:
            raise InputError(path, "class_names", "the kNN model's classes differ from the dataset's")

    def predict(self, points: Sequence[SharedPoints]) -> list[np.ndarray]:
        b, cfg = self.bundle, self.bundle.config
        graphs = [
            points_graph(
                p.field,
                p.graph.eds_rc,
                cfg.get("lift", 1.0),
                b.encoder,
                "knn",
                cfg.get("k", 6),
                spectra=p.spectra,
            )[0]
            for p in points
        ]
        return [m[0] for m in b.model.graph_maps(graphs, cfg)]


class NearestEDS(Method):
    """Nearest-EDS labelling, what a user can do without any fusion: every pixel takes the class
    of its nearest point (a Voronoi map; :func:`mingraph_kernels.nearest.nearest_eds_labels`, the
    one nearest-EDS of the package); unclassified everywhere on a field without a point."""

    name = "nearest EDS"

    def __init__(self, probability: Callable[[np.ndarray], np.ndarray | None] | None = None):
        self.probability = probability

    def predict_field(self, p: SharedPoints) -> np.ndarray:
        return p.nearest

    def predict_with_confidence(self, points: Sequence[SharedPoints]) -> list[tuple]:
        """Maps and, with a ``probability`` ((n, 3000) spectra -> (n,) probability of each point's
        class, e.g. :func:`mingraph.learn.bundle.point_probability`), each pixel's confidence: the
        probability of its nearest point's class (None where it gives none)."""
        out = []
        for p in points:
            prob = self.probability(p.spectra) if self.probability and p.graph.n_eds else None
            near = p.graph.nearest_eds
            conf = None if prob is None else np.where(near >= 0, prob[np.maximum(near, 0)], 0.0)
            out.append((p.nearest, None if conf is None else conf.astype(np.float32)))
        return out


class MeasuredClassesCeiling(Method):
    """An oracle, not a method: the score that no method which never invents a phase can pass.

    Each labelled pixel takes its true class wherever some point of its field was given that
    class (the points' classes as every method sees them, :attr:`SharedPoints.classes`), and is
    left unclassified elsewhere (a miss of its class, no false positive).  So every class has the
    highest recall any such method can reach, with precision 1, and its F1 bounds theirs: weighted
    and macro F1 alike.  A phase that no point of the field measured (a rare phase whose few
    grains hold no point, at a low fraction) cannot be right in any grounded map; this row says
    how much of a score the points allow at a fraction, so that a target above it is seen to be
    out of reach.  It reads the truth: it is reported beside the methods, never tuned or compared
    as one.
    """

    name = "measured-classes ceiling (oracle)"

    def predict_field(self, p: SharedPoints) -> np.ndarray:
        if p.classes is None or p.graph.n_eds == 0:
            return np.full(p.truth.shape, -1, np.int64)
        measured = np.unique(p.classes[p.classes >= 0])
        return np.where((p.truth >= 0) & np.isin(p.truth, measured), p.truth, -1).astype(np.int64)


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
