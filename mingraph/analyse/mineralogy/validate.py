"""The input checks every mineralogy analysis shares: a phase map and its mask, the pixel size,
the connectivity, densities and class names, and the one rule for unsure pixels
(:func:`classified_labels`).  Each raises :class:`~mingraph.common.errors.InputError` naming the
caller (``where``), the field and what was expected."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mingraph.common.errors import InputError

UNCLASSIFIED = "unclassified"
BACKGROUND = "background"


def check_phase_map(where: str, labels: Any, valid: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A (labels, valid) pair checked and returned as (int32, bool) arrays.

    Parameters
    ----------
    where : str
        The caller, named in an error.
    labels : array-like, (H, W) int
        Class ids in [-1, n_classes - 1]; -1 is unclassified.  Whole-valued floats are accepted.
    valid : array-like, (H, W) bool or 0/1
        The specimen mask.
    n_classes : int
        How many classes the ids index.

    Returns
    -------
    labels : (H, W) int32
    valid : (H, W) bool

    Raises
    ------
    InputError
        Not 2-D, empty, shapes that differ, non-integer ids, a mask that is not boolean, or ids
        out of range.

    Examples
    --------
    >>> lab, ok = check_phase_map("modal", [[0, 1], [-1, 1]], [[1, 1], [1, 0]], 2)
    >>> lab.dtype, ok.dtype
    (dtype('int32'), dtype('bool'))
    >>> check_phase_map("modal", [[0, 2]], [[True, True]], 2)
    Traceback (most recent call last):
    ...
    mingraph.common.errors.InputError: modal: labels: class ids must lie in [-1, 1] (-1 = unclassified), got [0, 2]
    """
    labels = np.asarray(labels)
    valid = np.asarray(valid)
    if labels.ndim != 2:
        raise InputError(where, "labels", f"expected a 2-D (H, W) label map, got shape {labels.shape}")
    if labels.size == 0:
        raise InputError(where, "labels", f"empty image (shape {labels.shape})")
    if valid.shape != labels.shape:
        raise InputError(where, "valid", f"shape {valid.shape} differs from labels {labels.shape}")
    if labels.dtype.kind not in "iub":
        if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
            pass
        else:
            raise InputError(where, "labels", f"expected integer class ids, got dtype {labels.dtype}")
    if valid.dtype != bool:
        if valid.dtype.kind not in "iub" or not np.isin(valid, (0, 1)).all():
            raise InputError(where, "valid", f"expected a boolean mask, got dtype {valid.dtype}")
        valid = valid.astype(bool)
    if n_classes < 1:
        raise InputError(where, "class_names", "expected at least one class")
    labels = labels.astype(np.int32, copy=False)
    lo, hi = int(labels.min()), int(labels.max())
    if lo < -1 or hi >= n_classes:
        raise InputError(
            where,
            "labels",
            f"class ids must lie in [-1, {n_classes - 1}] (-1 = unclassified), got [{lo}, {hi}]",
        )
    return labels, valid


def check_pixel_size(where: str, pixel_size_um: Any) -> float:
    """The pixel size in µm as a positive finite float.

    Raises
    ------
    InputError
        Not a number, or not positive and finite.

    Examples
    --------
    >>> check_pixel_size("grains", "0.5")
    0.5
    """
    try:
        px = float(pixel_size_um)
    except (TypeError, ValueError):
        raise InputError(
            where, "pixel_size_um", f"expected a positive number, got {pixel_size_um!r}"
        ) from None
    if not (math.isfinite(px) and px > 0):
        raise InputError(
            where, "pixel_size_um", f"expected a positive finite size in um, got {pixel_size_um!r}"
        )
    return px


def check_connectivity(where: str, connectivity: int) -> int:
    """4 or 8 (pixel neighbours that join a grain or particle), as an int.

    Raises
    ------
    InputError
        Anything else.

    Examples
    --------
    >>> check_connectivity("particles", 8)
    8
    """
    if connectivity not in (4, 8):
        raise InputError(where, "connectivity", f"expected 4 or 8, got {connectivity!r}")
    return int(connectivity)


def check_densities(where: str, densities: Any, n_classes: int) -> np.ndarray | None:
    """(n_classes,) float64 densities in g/cm³ (NaN = unknown), or None when none are given.

    Raises
    ------
    InputError
        Not one density a class, or one that is not positive and finite (NaN aside).

    Examples
    --------
    >>> check_densities("modal", [2.65, float("nan")], 2)
    array([2.65,  nan])
    """
    if densities is None:
        return None
    d = np.asarray(densities, dtype=np.float64).ravel()
    if d.shape[0] != n_classes:
        raise InputError(
            where, "densities", f"expected {n_classes} densities (one per class), got {d.shape[0]}"
        )
    if not np.all(np.isnan(d) | (np.isfinite(d) & (d > 0))):
        raise InputError(where, "densities", "expected positive finite densities in g/cm3 (NaN = unknown)")
    return d


def class_names_or_default(
    where: str, class_names: Sequence[str] | None, labels: np.ndarray, n_classes: int | None
) -> list[str]:
    """The class names as strings, or ``class 0``, ``class 1`` … (as many as ``n_classes``, else
    as the largest id in ``labels`` needs) when none are given.

    Raises
    ------
    InputError
        No names, or not ``n_classes`` of them.

    Examples
    --------
    >>> class_names_or_default("modal", None, np.array([[0, 2]]), None)
    ['class 0', 'class 1', 'class 2']
    """
    if class_names is not None:
        names = [str(c) for c in class_names]
        if n_classes is not None and len(names) != n_classes:
            raise InputError(where, "class_names", f"{len(names)} names for {n_classes} classes")
        if len(names) == 0:
            raise InputError(where, "class_names", "expected at least one class")
        return names
    if n_classes is None:
        a = np.asarray(labels)
        n_classes = int(a.max()) + 1 if a.size and a.max() >= 0 else 1
    return [f"class {k}" for k in range(n_classes)]


def percent_of(num: float, den: float) -> float:
    """A percentage, 0 when the denominator is 0 (an empty image has 0 % of everything).

    Examples
    --------
    >>> percent_of(1, 4), percent_of(3, 0)
    (25.0, 0.0)
    """
    return 100.0 * num / den if den > 0 else 0.0


def classified_labels(
    labels: np.ndarray,
    valid: np.ndarray,
    n_classes: int,
    confidence: np.ndarray | None = None,
    min_confidence: float = 0.5,
    where: str = "mineralogy",
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The one rule for unsure pixels, applied before every analysis: (labels, valid, n_unclassified, n_low).

    A valid pixel is *classified* when its label is >= 0 and (when ``confidence`` is given) its
    confidence is >= ``min_confidence`` (NaN counts as low). Every other valid pixel becomes -1
    (unclassified) in the returned labels: it stays part of the specimen (it belongs to its
    particle, whose size it counts in), but it counts in no phase's area, mass, grain, particle
    composition, liberation or locking, and is reported as a fraction of valid pixels.
    Returns int32 labels (-1 also outside ``valid``), the bool mask, and the two pixel counts.
    """
    labels, valid = check_phase_map(where, labels, valid, n_classes)
    unclassified = valid & (labels < 0)
    low = np.zeros(labels.shape, dtype=bool)
    if confidence is not None:
        conf = np.asarray(confidence)
        if conf.shape != labels.shape:
            raise InputError(where, "confidence", f"shape {conf.shape} differs from labels {labels.shape}")
        t = float(min_confidence)
        if not (0.0 <= t <= 1.0):
            raise InputError(where, "min_confidence", f"expected a value in [0, 1], got {min_confidence!r}")
        low = valid & (labels >= 0) & ~(conf >= t)
    out = np.where(valid & ~low, labels, -1)
    return out, valid, int(unclassified.sum()), int(low.sum())
