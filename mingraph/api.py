"""mingraph's Python API: plain functions on arrays, from a BSE image and point spectra to a phase
map and its mineralogy.  Nothing here writes a file; the command line is a layer over it.

The functions take NumPy arrays or HyperSpy signals (an EDS spectrum signal, with its energy
axis and, for a map, its pixel size, read from the signal's axes) and return plain dataclasses.

Examples
--------
A simulated field with EDS at every 8th pixel along each axis (1.6 % of the pixels):

>>> import numpy as np
>>> import mingraph
>>> from mingraph.acquire.simulate import simulate_tile
>>> tile = simulate_tile(3, 96)
>>> rr, cc = np.mgrid[4:96:8, 4:96:8]
>>> rc = np.stack([rr.ravel(), cc.ravel()], 1)
>>> spectra = tile.eds.spectra(rc[:, 0], rc[:, 1])
>>> pm = mingraph.phase_map(tile.bse, rc, spectra, pixel_size_um=1.0)
>>> pm.labels.shape == tile.bse.shape
True
>>> float((pm.labels[tile.valid] == tile.labels[tile.valid]).mean()) > 0.7
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mingraph.acquire.formats.points import check_rc
from mingraph.acquire.signals import bse_array, is_signal, signal_pixel_size_um, spectra_on_grid
from mingraph.common.errors import InputError
from mingraph.learn.bundle import Bundle, load_model, point_classes, point_features

CLASSIFIERS = ("encoder", "physics")
"""Where point classes come from: ``encoder``, the model file's trained spectral encoder."""


@dataclass
class PhaseMap:
    """A field's phase map and what it was made from.

    Attributes
    ----------
    labels : (H, W) int16
        Class id of every pixel; -1 where not classified (outside ``valid``).
    confidence : (H, W) float32
        The model's probability of the chosen class, in [0, 1]; 0 outside ``valid``.
    class_names : list of str
        Name of each class id.
    legend : list of dict
        One row per class: ``id``, ``name``, ``colour`` (``#rrggbb``), ``density`` (g/cm³ or
        None) and ``formula`` (or None), from the mineral list.
    points_rc : (n, 2) int32
        Row and column (px) of each EDS point.
    point_classes : (n,) int64 or None
        The class of each point's spectrum (what nearest-EDS labelling uses); None when the
        classifier gives none.
    valid : (H, W) bool
        The specimen pixels.
    pixel_size_um : float or None
        Pixel size in µm, when known.
    minerals : object
        The :class:`~mingraph.analyse.mineralogy.minerals.ClassMinerals` behind the legend.
    """

    labels: np.ndarray
    confidence: np.ndarray
    class_names: list[str]
    legend: list[dict]
    points_rc: np.ndarray
    point_classes: np.ndarray | None
    valid: np.ndarray
    pixel_size_um: float | None = None
    minerals: Any = field(default=None, repr=False)

    def to_signal(self) -> dict:
        """The phase map and the confidence as HyperSpy signals with µm axes.

        Returns
        -------
        dict
            ``{"labels": Signal2D (int16), "confidence": Signal2D (float32)}``, each with
            ``y`` and ``x`` axes in µm (scale 1 px when the pixel size is unknown) and the class
            names in ``metadata.Sample.phases``.

        Raises
        ------
        ImportError
            When HyperSpy is not installed (``pip install 'mingraph[io]'``).

        Examples
        --------
        >>> import numpy as np
        >>> pm = PhaseMap(np.zeros((2, 3), np.int16), np.ones((2, 3), np.float32), ["quartz"], [],
        ...               np.zeros((0, 2), np.int32), None, np.ones((2, 3), bool), 0.5)
        >>> s = pm.to_signal()["labels"]
        >>> (s.axes_manager[0].scale, s.axes_manager[0].units, s.data.shape)
        (0.5, 'µm', (2, 3))
        """
        import hyperspy.api as hs

        out = {}
        scale = 1.0 if self.pixel_size_um is None else float(self.pixel_size_um)
        units = "px" if self.pixel_size_um is None else "µm"
        for key, data in (("labels", self.labels), ("confidence", self.confidence)):
            s = hs.signals.Signal2D(data)
            for ax, name in zip(s.axes_manager.signal_axes, ("x", "y"), strict=True):
                ax.name, ax.scale, ax.units = name, scale, units
            s.metadata.General.title = f"mingraph {key}"
            s.metadata.set_item("Sample.phases", list(self.class_names))
            out[key] = s
        return out


@dataclass
class SpectrumClasses:
    """Classes of point spectra: ``probabilities`` (n, C) float32 over ``class_names``,
    ``classes`` (n,) int64 (their argmax) and ``confidence`` (n,) float32 (their maximum)."""

    class_names: list[str]
    probabilities: np.ndarray
    classes: np.ndarray
    confidence: np.ndarray


def classify_spectra(
    spectra: Any,
    *,
    model: str | os.PathLike | Bundle | None = None,
    classifier: str = "encoder",
    points_rc: np.ndarray | None = None,
    energy_axis: Any = None,
    beam_kev: float | None = None,
    minerals: str | os.PathLike | None = None,
) -> SpectrumClasses:
    """Class probabilities of point spectra over the model's classes, or a mineral library's.

    Parameters
    ----------
    spectra : (n, C) array or HyperSpy EDS signal
        Counts (see :func:`spectra_on_grid` for axes).
    model : path-like, Bundle or None
        The model whose classifier and class list are used (default: the shipped model).
    classifier : {"encoder", "physics"}
        ``encoder``: the model file's trained CNN spectral encoder.  ``physics``: the physics
        classifier (:class:`~mingraph.spectra.point_classifier.PhysicsClassifier`), calibrated
        on these spectra' sum, over the mineral library ``minerals`` (default: the shipped one),
        with a last class ``"unknown"`` where no mineral fits.
    points_rc, energy_axis
        As in :func:`spectra_on_grid`.
    beam_kev : float, optional
        Beam energy (kV) for the physics; default: what a HyperSpy signal's metadata states.
    minerals : path-like, optional
        The physics classifier's mineral library or list.

    Returns
    -------
    SpectrumClasses

    Raises
    ------
    InputError
        Bad spectra, an unknown classifier, or a model whose encoder has no classifier.

    Examples
    --------
    >>> from mingraph.acquire.simulate.eds_physics import mineral_spectrum
    >>> s = (mineral_spectrum("quartz") * 5000)[None]
    >>> c = classify_spectra(s)
    >>> c.class_names[int(c.classes[0])]
    'quartz'
    """
    if classifier not in CLASSIFIERS:
        raise InputError(
            "classifier", "classifier", f"expected one of {list(CLASSIFIERS)}, got {classifier!r}"
        )
    grid = spectra_on_grid(spectra, points_rc, energy_axis=energy_axis)
    if classifier == "physics":
        from mingraph.spectra.point_classifier import UNKNOWN, PhysicsClassifier, signal_instrument

        clf = PhysicsClassifier(signal_instrument(spectra, beam_kev), minerals)
        p = clf.class_probabilities(grid)
        n = len(clf.library)  # a spectrum's classes are minerals: the group columns (all 0) are left out
        p = np.ascontiguousarray(np.concatenate([p[:, :n], p[:, -1:]], axis=1))
        return SpectrumClasses([*clf.names[:n], UNKNOWN], p, p.argmax(1).astype(np.int64), p.max(1))
    bundle = load_model(model)
    enc = bundle.encoder
    if enc is None or getattr(enc, "kind", None) != "cnn" or not enc.n_classes:
        raise InputError("model", "encoder", "this model's encoder has no classifier (a CNN with classes)")
    from mingraph.spectra.encoder import class_probabilities

    p = np.asarray(class_probabilities(enc, grid), dtype=np.float32)
    return SpectrumClasses(list(bundle.class_names), p, p.argmax(1).astype(np.int64), p.max(1))


def _minerals(minerals: Any, names: list[str]):
    from mingraph.analyse.mineralogy.minerals import ClassMinerals, class_minerals, read_mineral_list

    if isinstance(minerals, ClassMinerals):
        return minerals
    if minerals is None:
        from mingraph.workflows.predict import library_densities

        cm = class_minerals(names)
        dens = library_densities(names)
        if dens is not None:
            cm.densities = np.where(np.isfinite(dens), dens, cm.densities)
        return cm
    return class_minerals(names, read_mineral_list(Path(minerals)), str(minerals))


def phase_map(
    bse: Any,
    points_rc: np.ndarray,
    spectra: Any,
    *,
    model: str | os.PathLike | Bundle | None = None,
    classifier: str = "encoder",
    minerals: Any = None,
    valid: np.ndarray | None = None,
    pixel_size_um: float | None = None,
    energy_axis: Any = None,
    block: int = 1024,
    beam_kev: float | None = None,
) -> PhaseMap:
    """Classify every pixel of a field from its BSE image and spectra measured at a few points.

    Parameters
    ----------
    bse : (H, W) array or HyperSpy Signal2D
        BSE grey levels: integers (8- or 16-bit levels) or floats in [0, 1].  A signal's axes
        give the pixel size.
    points_rc : (n, 2) int
        Row and column (px) of each EDS point.
    spectra : (n, C) array or HyperSpy EDS signal
        The points' counts; a hypermap signal (H, W | C) is read at ``points_rc``.  Energy axis
        as in :func:`spectra_on_grid`.
    model : path-like, Bundle or None
        The model (default: the shipped fusion model).
    classifier : {"encoder", "physics"}
        Where the points' class evidence comes from (:data:`CLASSIFIERS`).  With ``physics``
        the classes are the mineral library's (``minerals``, default the shipped library) and
        points no mineral fits make unclassified (-1) pixels; the model must mix its points'
        classes (the fusion model).
    minerals : path-like, ClassMinerals or None
        A mineral list (names, formulas, densities, colours) for the legend; default: the
        shipped list matched to the model's classes.  With ``physics``, the library it
        classifies with (a path, or None).
    valid : (H, W) bool, optional
        Specimen pixels (default: all).
    pixel_size_um : float, optional
        Pixel size in µm (default: from a BSE or hypermap signal, else unknown).
    beam_kev : float, optional
        Beam energy (kV) for the physics; default: what a HyperSpy signal's metadata states.
    energy_axis : dict or array, optional
        The spectra's energy axis when they are arrays not on mingraph's grid.
    block : int
        Fields larger than ``block`` px a side are predicted in overlapping blocks.

    Returns
    -------
    PhaseMap

    Raises
    ------
    InputError
        Shapes that disagree, points outside the image, bad counts or axes, an unknown
        classifier.

    Examples
    --------
    See the module's example.
    """
    from mingraph.analyse.plots import hex_colour
    from mingraph.workflows.predict import check_points, predict_field

    if classifier not in CLASSIFIERS:
        raise InputError(
            "classifier", "classifier", f"expected one of {list(CLASSIFIERS)}, got {classifier!r}"
        )
    img, px_sig = bse_array(bse)
    if valid is None:
        valid = np.ones(img.shape, bool)
    valid = np.asarray(valid)
    if valid.shape != img.shape or valid.dtype != np.bool_:
        raise InputError(
            "valid", "valid", f"expected a bool mask of shape {img.shape}, got {valid.dtype} {valid.shape}"
        )
    rc = check_points(check_rc(np.asarray(points_rc), "points_rc"), img.shape, "points_rc")
    grid = spectra_on_grid(spectra, rc, energy_axis=energy_axis)
    if grid.shape[0] != rc.shape[0]:
        raise InputError("spectra", "spectra", f"{grid.shape[0]} spectra for {rc.shape[0]} points")
    if pixel_size_um is None:
        pixel_size_um = (
            px_sig if px_sig is not None else (signal_pixel_size_um(spectra) if is_signal(spectra) else None)
        )
    bundle = load_model(model)
    if classifier == "physics":
        from mingraph.analyse.mineralogy.minerals import class_minerals, classifier_entries
        from mingraph.learn.bundle import with_classifier
        from mingraph.spectra.point_classifier import signal_instrument

        bundle = with_classifier(bundle, "physics", signal_instrument(spectra, beam_kev), minerals)
    feats = point_features(bundle, grid)
    pred = predict_field(bundle, img, valid, rc, feats, block=block, progress=False)
    if classifier == "physics" and hasattr(bundle.encoder, "library"):  # the library's classes and groups
        enc = bundle.encoder  # (a GAT trained on physics shards keeps its own classes: no library here)
        minerals = class_minerals(
            bundle.class_names, classifier_entries(enc.library, enc.groups, pred.group_weights)
        )
    cm = _minerals(minerals, list(bundle.class_names))
    legend = [
        {
            "id": i,
            "name": cm.names[i],
            "colour": hex_colour(cm.colours[i]),
            "density": None if not np.isfinite(cm.densities[i]) else float(cm.densities[i]),
            "formula": cm.formulas[i],
        }
        for i in range(len(cm.names))
    ]
    return PhaseMap(
        labels=pred.labels,
        confidence=pred.confidence,
        class_names=list(bundle.class_names),
        legend=legend,
        points_rc=rc,
        point_classes=point_classes(bundle, feats),
        valid=valid,
        pixel_size_um=pixel_size_um,
        minerals=cm,
    )


def mineralogy(pm: PhaseMap, *, minerals: Any = None, min_confidence: float = 0.5, **options: Any):
    """Modal mineralogy, grains, particles, liberation, assay and deportment of a phase map.

    Parameters
    ----------
    pm : PhaseMap
        From :func:`phase_map`; its pixel size is needed (µm).
    minerals : path-like, ClassMinerals or None
        Another mineral list than the phase map's.
    min_confidence : float
        Pixels below this confidence count as low confidence, not as a phase.
    **options
        Passed to :func:`mingraph.analyse.mineralogy.sample_mineralogy` (``targets``,
        ``split_touching``, ``n_boot``, ``seed`` ...).

    Returns
    -------
    SampleMineralogy
        ``area_pct`` and ``mass_pct`` per class with 95 % intervals (``area_ci``, ``mass_ci``),
        ``assay_wt_pct``, ``deportment_pct``, ``grains``, ``particles``, ``targets``
        (liberation) ... (docs/mineralogy.md).

    Raises
    ------
    InputError
        The phase map has no pixel size, or bad options.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((40, 40), np.int16); lab[:, 20:] = 1
    >>> pm = PhaseMap(lab, np.ones((40, 40), np.float32), ["quartz", "pyrite"], [],
    ...               np.zeros((0, 2), np.int32), None, np.ones((40, 40), bool), 2.0)
    >>> m = mineralogy(pm, n_boot=0)
    >>> [round(float(a), 1) for a in m.area_pct]
    [50.0, 50.0]
    """
    from mingraph.analyse.mineralogy import sample_mineralogy

    if pm.pixel_size_um is None:
        raise InputError("phase map", "pixel_size_um", "unknown: give pixel_size_um to phase_map")
    cm = _minerals(minerals, pm.class_names) if minerals is not None or pm.minerals is None else pm.minerals
    return sample_mineralogy(
        pm.labels,
        pm.valid,
        pm.pixel_size_um,
        cm,
        confidence=pm.confidence,
        min_confidence=min_confidence,
        **options,
    )
