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

On a point-spectra field (``pattern="mask"``: spectra exist at the measured pixels only) the
points of one fraction are a random subset of the measured points (:func:`measured_subset`,
seeded by seed, field and fraction, as :func:`mingraph.graphs.build.draw_rng`), so a curve over
fractions can be drawn from fields measured once at a higher fraction; a fraction above what a
field measured is refused (:func:`check_measured_fractions`).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from mingraph.acquire.fields import Field
from mingraph.acquire.sampling import n_points, sample_points
from mingraph.analyse.classmap import ClassMatch, match_classes
from mingraph.common.errors import InputError
from mingraph.graphs.build import draw_rng, points_graph
from mingraph.graphs.structure import StructuredGraph
from mingraph.spectra.encoder import classify
from mingraph_kernels.nearest import nearest_eds_labels


def measured_pixels(fld: Field) -> np.ndarray:
    """(H, W) bool: the valid pixels of ``fld`` where EDS was measured.

    The field's sampling mask (``eds_mask``), else the pixels its EDS source holds a spectrum of
    (point spectra); InputError when the field has neither (its spectra are not of measured points).

    Examples
    --------
    >>> from mingraph.acquire.simulate import simulate_tile
    >>> import dataclasses
    >>> f = simulate_tile(1, 24).field("t")
    >>> mask = np.zeros(f.shape, bool); mask[::4, ::4] = True
    >>> int(measured_pixels(dataclasses.replace(f, eds_mask=mask)).sum()) == int((mask & f.valid).sum())
    True
    """
    mask = fld.eds_mask if fld.eds_mask is not None else getattr(fld.eds, "measured_mask", None)
    if mask is None:
        raise InputError(
            fld.name,
            "eds_mask",
            "pattern 'mask' needs a field with measured points (a sampling mask or point spectra)",
        )
    return np.asarray(mask, bool) & fld.valid


def measured_subset(
    fld: Field, fraction: float, rng: np.random.Generator, strict: bool = True, source: object = None
) -> np.ndarray:
    """A random subset of a field's measured points at ``fraction`` of its valid pixels.

    Parameters
    ----------
    fld : Field
        A field with measured points (:func:`measured_pixels`).
    fraction : float
        Points per valid pixel, in [0, 1]: ``round(fraction * n_valid)`` points (at least one
        when ``fraction > 0``), as :func:`mingraph.acquire.sampling.n_points`.
    rng : numpy.random.Generator
        Picks the subset (uniform, without replacement).
    strict : bool
        True: a fraction that needs more points than were measured raises InputError; False:
        every measured point is taken then.
    source : object, optional
        The file named in the error (default: the field's name).

    Returns
    -------
    numpy.ndarray
        (n, 2) int32 row, col, sorted row-major, all measured valid pixels.

    Raises
    ------
    InputError
        ``strict`` and the fraction is above the field's measured share.

    Examples
    --------
    >>> from mingraph.acquire.simulate import simulate_tile
    >>> import dataclasses
    >>> f = simulate_tile(1, 40).field("t")
    >>> mask = np.zeros(f.shape, bool); mask[::3, ::3] = True
    >>> f = dataclasses.replace(f, eds_mask=mask)
    >>> rc = measured_subset(f, 0.01, np.random.default_rng(0))
    >>> len(rc) == round(0.01 * f.valid.sum()) and bool(mask[rc[:, 0], rc[:, 1]].all())
    True
    """
    measured = measured_pixels(fld)
    pool = np.flatnonzero(measured)
    n_valid = int(fld.valid.sum())
    n = n_points(n_valid, fraction)
    if n > pool.size:
        if strict:
            share = pool.size / max(n_valid, 1)
            raise InputError(
                source if source is not None else fld.name,
                f"field {fld.name}",
                f"EDS was measured at {100 * share:.2f} % of its valid pixels ({pool.size} points): "
                f"expected fractions of at most {share:.4f}, got {fraction:g} (a subset of the measured "
                "points is scored, none is invented)",
            )
        n = pool.size
    pick = np.sort(rng.choice(pool, size=n, replace=False)) if n else pool[:0]
    w = fld.shape[1]
    return np.stack([pick // w, pick % w], axis=1).astype(np.int32).reshape(-1, 2)


def check_measured_fractions(ds, tiles, fractions) -> None:
    """Refuse (InputError, before any work) a fraction above what a field of ``tiles`` measured.

    ``ds`` a dataset (:func:`mingraph.acquire.dataset.open_dataset`), ``tiles`` its indices,
    ``fractions`` the fractions asked; every field is read once.
    """
    top = max(fractions, default=0.0)
    for t in tiles:
        fld = ds.field(t)
        measured_subset(fld, top, np.random.default_rng(0), strict=True, source=ds.path)


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
        cls,
        fld: Field,
        tile: int,
        fraction: float,
        match: ClassMatch,
        classifier,
        lut,
        seed: int,
        strict: bool = True,
        **graph,
    ) -> SharedPoints:
        """The points drawn on ``fld`` as :func:`mingraph.graphs.build.field_graph` draws them
        (``seed``; ``graph``: its pattern, lift, encoder, edges, k and convention), except that
        ``pattern="mask"`` takes a random subset of the measured points at ``fraction``
        (:func:`measured_subset`; ``strict``: refuse a fraction above what was measured, else take
        them all); classes by the encoder ``classifier`` through ``lut`` (none without it), the
        labels translated by ``match``."""
        pattern = graph.pop("pattern", "random")
        rng = draw_rng(seed, tile, fraction, 0)
        if pattern == "mask":
            rc = measured_subset(fld, fraction, rng, strict)
        else:
            rc = sample_points(fld.valid, fraction, pattern, rng, fld.eds_mask)
        g, sp = points_graph(fld, rc, **graph)
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

    :meth:`validation` gives, at one fraction, up to ``val_tiles`` labelled validation fields with
    at least one point, one draw each (a tuned baseline is tuned at each fraction it is scored
    at); ``training``: up to ``train_tiles`` labelled training fields, one draw each at each of
    ``train_fractions``, their labels in the model's ids.  With ``pattern="mask"`` every draw is a
    subset of the measured points (all of them where fewer were measured).  Draws are made once,
    when first read.
    """

    val_fraction = 0.01
    val_tiles = 12
    train_tiles = 60
    train_fractions = (0.01, 0.05)

    def __init__(self, ds, encoder, seed: int, model_names: list[str], pattern: str = "random"):
        self.ds, self.encoder, self.seed, self.names, self.pattern = ds, encoder, seed, model_names, pattern
        self.lut = point_class_lut(encoder, model_names)
        self._validation: dict[float, list[SharedPoints]] = {}

    @functools.cached_property
    def match(self) -> ClassMatch:
        return match_classes(self.names, self.ds.class_names, self.ds.path)

    @functools.cached_property
    def val_indices(self) -> list[int]:
        return self.ds.indices("val")[: self.val_tiles]

    def validation(self, fraction: float | None = None) -> list[SharedPoints]:
        """The validation draws at ``fraction`` (default ``val_fraction``); [] without any."""
        f = self.val_fraction if fraction is None else float(fraction)
        if not self.val_indices or self.lut is None:
            return []
        if f not in self._validation:
            out = []
            for t in self.val_indices:
                p = self._draw(self.ds.field(t), t, f, self.seed + 7)
                if p.graph.n_eds and p.field.labels is not None:
                    out.append(p)
            self._validation[f] = out
        return self._validation[f]

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
            for f in self.train_fractions:
                out.append(self._draw(fld, t, f, self.seed + 11))
        return out

    def _draw(self, fld, t: int, fraction: float, seed: int) -> SharedPoints:
        """The points of one draw (a measured field: all its points where fewer were measured),
        the field's labels in the model's ids."""
        p = SharedPoints.draw(
            fld, t, fraction, self.match, self.encoder, self.lut, seed, strict=False, pattern=self.pattern
        )
        return dataclasses.replace(p, field=in_model_classes(fld, self.match, self.names))

    def tuning(self, tuned: dict) -> dict | str:
        """What the tuning of methods on the validation split was, for ``metrics.json``: the split,
        fields and, per parameter and fraction, the scores of every value tried, the best and
        whether it lies at an edge of what was tried (``tuned``: parameter -> fraction -> report of
        :func:`mingraph.analyse.methods.tune_parameter`), or why the defaults were kept."""
        if not self.val_indices or self.lut is None:
            return "defaults (no validation split)"
        if not self.validation():
            return "defaults (no labelled validation field)"
        return {"split": "val", "tiles": len(self.validation())} | tuned
