"""The files beside a prediction that a viewer (``mingraph view``) reads: the BSE image with its
scale, and the EDS points with what the point classifier made of them.

``bse.tif``
    The BSE image as uint16 (1/65535 steps of [0, 1]), its pixel size as X/YResolution in pixels
    per µm and ImageJ's ``unit=micron``, as ``phase_map.tif``.
``points.csv``
    One row a measured point: ``row``, ``col`` (pixels), ``x_um``, ``y_um``, ``class_id`` (-1:
    unknown, or no class from the point classifier), ``mineral``, ``probability`` (the point
    classifier's, else the phase map's confidence at the point) and, when the physics classified
    the points, ``fit_z`` (goodness of fit of the best class: about 0 at counting noise).
``points.npz``
    The points' spectra, sparse (``rc``, ``ptr``, ``channel``, ``count``: the form of
    :func:`mingraph.acquire.formats.points.save_points`, read by :func:`~mingraph.acquire.formats.points.load_points`);
    written only when the field's EDS source still holds them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mingraph.common.errors import InputError
from mingraph.common.files import atomic_file, write_csv

POINT_COLUMNS = ["row", "col", "x_um", "y_um", "class_id", "mineral", "probability"]


def write_bse(path: str | os.PathLike, bse: np.ndarray, pixel_size_um: float) -> Path:
    """``bse`` (H, W) in [0, 1] as a uint16 TIFF with its scale in µm (atomically)."""
    import tifffile

    from mingraph.acquire.fields import bse_to_u16

    px = float(pixel_size_um)
    with atomic_file(path) as tmp:
        tifffile.imwrite(
            tmp,
            bse_to_u16(bse),
            resolution=(1.0 / px, 1.0 / px),
            resolutionunit="NONE",
            imagej=True,
            metadata={"unit": "micron"},
            compression="zlib",
        )
    return Path(path)


def write_points(
    out_dir: str | os.PathLike,
    rc: np.ndarray,
    names: Sequence[str],
    classes: np.ndarray,
    probability: np.ndarray,
    pixel_size_um: float,
    spectra: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    fit_quality: Callable[[np.ndarray], np.ndarray] | None = None,
    chunk: int = 16384,
    held: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> list[Path]:
    """``points.csv`` and (given ``spectra``, an EDS source's ``spectra(rows, cols)``) ``points.npz``
    in ``out_dir``; ``fit_quality`` (spectra -> (n,) z) adds the ``fit_z`` column.  Spectra are read
    ``chunk`` points at a time; ``held``, the CSR rows of ``rc``'s spectra already in memory
    (:func:`held_rows`), is written as it is instead when no ``fit_quality`` needs them dense.
    Returns the paths written."""
    from mingraph.acquire.formats.points import sparse_rows

    out = Path(out_dir)
    rc = np.asarray(rc, np.int64).reshape(-1, 2)
    n = rc.shape[0]
    fit = np.full(n, np.nan, np.float32)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if held is not None and spectra is not None and fit_quality is None:
        parts, spectra_read = [held], False
    else:
        spectra_read = spectra is not None
    for i in range(0, n, chunk) if spectra_read else ():
        y = np.asarray(spectra(rc[i : i + chunk, 0], rc[i : i + chunk, 1]))
        parts.append(sparse_rows(y))
        if fit_quality is not None:
            fit[i : i + chunk] = fit_quality(y)
    px = float(pixel_size_um)
    header = POINT_COLUMNS + (["fit_z"] if fit_quality is not None else [])
    rows: list[list] = [header]
    for k in range(n):
        c = int(classes[k])
        name = names[c] if 0 <= c < len(names) else "unknown"
        row = [int(rc[k, 0]), int(rc[k, 1]), round((rc[k, 1] + 0.5) * px, 4), round((rc[k, 0] + 0.5) * px, 4)]
        row += [c, name, round(float(probability[k]), 4)]
        rows.append(row + ([round(float(fit[k]), 3)] if fit_quality is not None else []))
    written = [write_csv(out / "points.csv", rows)]
    if spectra is not None:
        written.append(_save_sparse(out / "points.npz", rc, parts))
    return written


def _save_sparse(path: Path, rc: np.ndarray, parts: list) -> Path:
    ptrs, channels, counts, start = [np.zeros(1, np.int64)], [], [], 0
    for ptr, channel, count in parts:
        ptrs.append(ptr[1:] + start)
        start += int(ptr[-1])
        channels.append(channel)
        counts.append(count)
    count = np.concatenate(counts) if counts else np.zeros(0, np.float32)
    channel = np.concatenate(channels) if channels else np.zeros(0, np.uint16)
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, rc=rc.astype(np.int32), ptr=np.concatenate(ptrs), channel=channel, count=count)
    return path


def held_rows(eds, rc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The CSR rows (``ptr``, ``channel``, ``count``) of the spectra at ``rc`` exactly as
    :func:`mingraph.acquire.formats.points.sparse_rows` gives them for the EDS source's dense
    float32 spectra, taken from the source's own CSR without making them dense; None unless
    ``eds`` is a :class:`~mingraph.acquire.fields.PointSpectra` holding ``rc``'s points in that
    order with no zero count (in float32) and rising channels in each row.

    Examples
    --------
    >>> from mingraph.acquire.formats.points import spectra_at_points
    >>> s = np.zeros((2, 3000), np.uint8); s[0, 5], s[1, 7] = 3, 1
    >>> rc = np.array([[0, 1], [1, 0]])
    >>> ptr, channel, count = held_rows(spectra_at_points(rc, s, (2, 2), "x"), rc)
    >>> ptr.tolist(), channel.tolist(), count.dtype.name
    ([0, 1, 2], [5, 7], 'float32')
    """
    from mingraph.acquire.fields import N_CHANNELS, PointSpectra

    rc = np.asarray(rc)
    if not isinstance(eds, PointSpectra) or eds.rc.shape != rc.shape or not np.array_equal(eds.rc, rc):
        return None
    from mingraph_kernels.sparse_rows import is_canonical

    ptr, channel = np.asarray(eds.ptr, np.int64), np.asarray(eds.channel)
    count = np.asarray(eds.count)
    if count.dtype != np.float32:
        count = count.astype(np.float32)  # the dense spectra's dtype
    if not is_canonical(ptr, channel, count, N_CHANNELS):  # zero counts in float32 included
        return None
    return ptr.copy(), channel.astype(np.uint16), count


def point_values(
    labels: np.ndarray,
    confidence: np.ndarray,
    rc: np.ndarray,
    classes: np.ndarray | None,
    probability: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(class_id, probability) of each point: the point classifier's where it gives them, else the
    phase map's class and confidence at the point's pixel."""
    rc = np.asarray(rc, np.int64).reshape(-1, 2)
    if rc.size and (rc.min() < 0 or rc[:, 0].max() >= labels.shape[0] or rc[:, 1].max() >= labels.shape[1]):
        raise InputError("points", "rc", "a point lies outside the phase map")
    at = (rc[:, 0], rc[:, 1])
    cls = np.asarray(classes, np.int64) if classes is not None else labels[at].astype(np.int64)
    prob = np.asarray(probability, np.float32) if probability is not None else confidence[at]
    return cls, prob


def write_view_files(
    out_dir: str | os.PathLike, sample, pred, names: Sequence[str], encoder=None
) -> list[Path]:
    """``bse.tif``, ``points.csv`` and ``points.npz`` of a predicted field (``sample``: a
    :class:`~mingraph.acquire.fields.Field`; ``pred``: its prediction, with ``labels``,
    ``confidence``, ``eds_rc``, ``eds_classes`` and ``eds_probability``); ``encoder``: the point
    classifier, whose ``fit_quality`` (the physics') adds the points' goodness of fit."""
    from mingraph.acquire.fields import NoSpectra

    out = Path(out_dir)
    cls, prob = point_values(
        pred.labels, pred.confidence, pred.eds_rc, pred.eds_classes, pred.eds_probability
    )
    source = None if isinstance(sample.eds, NoSpectra) else sample.eds.spectra
    return [write_bse(out / "bse.tif", sample.bse, sample.pixel_size_um)] + write_points(
        out,
        pred.eds_rc,
        names,
        cls,
        prob,
        sample.pixel_size_um,
        source,
        getattr(encoder, "fit_quality", None),
        held=held_rows(sample.eds, pred.eds_rc) if source is not None else None,
    )
