"""Post-hoc calibration of the fusion model's confidence: a temperature or a Platt map fitted on
labelled validation fields, written into a calibrated copy of the model file
(``mingraph calibrate-model``).

The fusion model's answer q is a mixture of its points' class probabilities; its confidence is
max q.  Two calibrations, both applied when predicting (:func:`mingraph.learn.fusion_model.calibrated_log_q`)
and neither changing the class:

* ``temperature`` (Guo et al. 2017): q becomes softmax(log q / T), the one T minimising the mean
  negative log-likelihood of the true classes (:func:`mingraph.common.calibration.fit_temperature`);
* ``platt`` (Platt 1999, on the top-label confidence): max q = c becomes σ(a · logit(c) + b), a and
  b minimising the log-loss of whether each answer was right
  (:func:`mingraph.common.calibration.fit_platt`), the other classes scaled to share the rest.

Either is fitted over the labelled pixels of a dataset's validation fields, drawn at each of
``fractions`` under each of ``patterns`` as ``mingraph evaluate`` draws them (its seed), so one
file serves every fraction and point pattern.  The weights are not touched: the copy's ``meta``
gains ``temperature``, ``platt`` and ``calibration`` (what was fitted on what, and the ECE of the
fitting pixels before and after).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mingraph.analyse.classmap import match_classes
from mingraph.analyse.shared_points import SharedPoints
from mingraph.common.calibration import DEFAULT_BINS, expected_calibration_error, fit_platt, fit_temperature
from mingraph.common.errors import InputError
from mingraph.learn.bundle import Bundle, load_bundle, resolve_model, save_calibrated
from mingraph.learn.fusion_model import batch_inputs, calibrated_log_q

CALIBRATION_SEED = 20_240_601  # mingraph evaluate's draws (analyse/evaluate.py EVAL_SEED)
MAX_PIXELS = 200_000
METHODS = ("platt", "temperature")


@torch.no_grad()
def validation_samples(
    bundle: Bundle,
    ds,
    split: str = "val",
    fractions: Sequence[float] = (0.01, 0.05),
    patterns: Sequence[str] = ("random", "grid"),
    seed: int = CALIBRATION_SEED,
    max_fields: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The fusion model's log q at T = 1 and the true class of labelled pixels of ``split``.

    Returns
    -------
    (log_probs, labels, fields)
        ``log_probs`` (n, classes) float32, ``labels`` (n,) int64 (the model's ids), at most
        ``max_pixels`` pixels drawn evenly (seeded) from every field, fraction and pattern;
        ``fields`` the number of fields read.
    """
    model = bundle.model
    tiles = ds.indices(split)[:max_fields] if max_fields else ds.indices(split)
    if not tiles:
        raise InputError(ds.path, "split", f"no fields in split {split!r} to fit a temperature on")
    match = match_classes(bundle.class_names, ds.class_names, ds.path)
    cfg = bundle.config
    graph = {
        "lift": cfg.get("lift", 1.0),
        "encoder": bundle.encoder,
        "eds_edges": cfg.get("eds_edges", "delaunay"),
        "k": cfg.get("k", 6),
        "convention": cfg.get("convention", "paper"),
    }
    saved = model.temperature, model.platt
    model.temperature, model.platt = 1.0, None  # the raw log q
    lps, ys = [], []
    try:
        for t in tiles:
            fld = ds.field(t)
            for pattern in patterns:
                for f in fractions:
                    p = SharedPoints.draw(
                        fld, t, f, match, bundle.encoder, None, seed, pattern=pattern, **graph
                    )
                    keep = p.truth >= 0
                    if p.graph.n_eds == 0 or not keep.any():
                        continue
                    g = model.graph(fld.bse, fld.valid, p.graph.eds_rc)
                    feats = model.point_features(bundle.encoder, p.spectra)
                    logp, _ = model(*batch_inputs([g], [feats]))
                    lps.append(logp[0].numpy()[keep])
                    ys.append(p.truth[keep].astype(np.int64))
    finally:
        model.temperature, model.platt = saved
    if not lps:
        raise InputError(ds.path, "labels", f"no labelled pixel in split {split!r} to fit a temperature on")
    lp, y = np.concatenate(lps), np.concatenate(ys)
    if len(y) > max_pixels:
        pick = np.sort(np.random.default_rng(seed).choice(len(y), max_pixels, replace=False))
        lp, y = lp[pick], y[pick]
    return lp.astype(np.float32), y, len(tiles)


def calibrate_model(
    model: str | os.PathLike,
    dataset: str | os.PathLike,
    out: str | os.PathLike,
    method: str = "platt",
    split: str = "val",
    fractions: Sequence[float] = (0.01, 0.05),
    patterns: Sequence[str] = ("random", "grid"),
    seed: int = CALIBRATION_SEED,
    max_fields: int | None = None,
) -> dict:
    """Fit ``method`` (:data:`METHODS`) on ``dataset``'s ``split`` and write ``model`` with it to ``out``.

    Parameters
    ----------
    model : path-like
        A fusion model file or run folder (its ``best.pt``).
    dataset : path-like
        A labelled dataset; its ``split`` fields must not be the fields the model is tested on.
    out : path-like
        The calibrated copy (the model file is never changed).
    method : {"platt", "temperature"}
        Module docstring.
    fractions, patterns : sequences
        The EDS fractions and point patterns (``random``, ``grid``: TIMA's dots) the pixels are
        drawn under, pooled.
    seed, max_fields
        The draws' seed; read at most this many fields.

    Returns
    -------
    dict
        The ``calibration`` record written into the file's meta: ``method``, ``temperature``,
        ``platt`` ({"a", "b"} or None), the fit's losses, ``ece_before`` and ``ece_after`` (on the
        fitting pixels), ``samples``, ``fields``, ``split``, ``dataset``, ``fractions``,
        ``patterns``, ``seed``; and ``out``.

    Raises
    ------
    InputError
        An unknown method, a model whose class takes no calibration (only the fusion model
        does), no field or labelled pixel in the split.
    """
    from mingraph.acquire.dataset import open_dataset

    if method not in METHODS:
        raise InputError("calibrate-model", "method", f"expected one of {METHODS}, got {method!r}")
    path = resolve_model(model)
    bundle = load_bundle(path)
    if not hasattr(bundle.model, "platt"):
        raise InputError(
            path, "arch", f"a {bundle.arch!r} model takes no calibration (the fusion model does)"
        )
    if bundle.encoder is None:
        raise InputError(path, "encoder", "this model file holds no spectral encoder")
    ds = open_dataset(dataset)
    lp, y, n_fields = validation_samples(bundle, ds, split, fractions, patterns, seed, max_fields)
    conf = np.exp(lp.max(1).astype(np.float64))
    right = lp.argmax(1) == y
    temperature, platt = 1.0, None
    if method == "temperature":
        fit = fit_temperature(lp, y)
        temperature = fit["temperature"]
    else:
        fit = fit_platt(conf, right)
        platt = (fit["a"], fit["b"])
    with torch.no_grad():
        after = calibrated_log_q(torch.as_tensor(lp), temperature, platt).max(-1).values.exp().numpy()
    record = {
        "method": method,
        **fit,
        "temperature": temperature,
        "platt": None if platt is None else {"a": platt[0], "b": platt[1]},
        "ece_before": expected_calibration_error(conf, right, DEFAULT_BINS),
        "ece_after": expected_calibration_error(after, right, DEFAULT_BINS),
        "fields": n_fields,
        "split": split,
        "dataset": Path(ds.path).name,
        "fractions": [float(f) for f in fractions],
        "patterns": list(patterns),
        "seed": seed,
    }
    written = save_calibrated(path, out, record, temperature, platt)
    return record | {"out": str(written)}
