"""The prediction an acquisition session updates every round: class, confidence, entropy and
margin per pixel, from the fusion model (:mod:`mingraph.learn.fusion_model`) or nearest-EDS.

The fusion model's output q_i is a mixture of its EDS points' class probabilities; per pixel
this gives the class argmax q, the confidence max q, the Shannon entropy −Σ q log q (nats) and
the margin q₍₁₎ − q₍₂₎ between the two most probable classes (the uncertainty measures of
active learning, Settles 2009, "Active Learning Literature Survey", §3.1).  Large fields run in
blocks with overlapping margins (:func:`mingraph.learn.tiling.block_probabilities`).
"""

from __future__ import annotations

import numpy as np
import torch

from mingraph.acquisition.state import PredictionMaps
from mingraph.common.errors import InputError
from mingraph.learn.bundle import Bundle, point_classes
from mingraph.learn.tiling import block_probabilities


def _summaries(p: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(labels, confidence, entropy, margin) over the last axis of probabilities ``p``."""
    top = torch.topk(p, 2, dim=-1)
    ent = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)
    return top.indices[..., 0], top.values[..., 0], ent, top.values[..., 0] - top.values[..., 1]


@torch.no_grad()
def fusion_maps(
    bundle: Bundle,
    bse: np.ndarray,
    valid: np.ndarray,
    eds_rc: np.ndarray,
    eds_prob: np.ndarray,
    block: int = 1024,
) -> PredictionMaps:
    """Per-pixel ``labels`` (H, W) int16 (−1 not valid), ``confidence``, ``entropy`` (nats) and
    ``margin`` (H, W) float32 (0 where not valid) of the fusion model.

    ``bse`` (H, W) float in [0, 1], ``valid`` (H, W) bool, ``eds_rc`` (N, 2) int row/col,
    ``eds_prob`` (N, classes) the encoder's class probabilities
    (:func:`mingraph.learn.bundle.point_features`).  Fields larger than ``block`` run in blocks
    with a margin of max(64, 4 EDS spacings).  Raises InputError for a model that is not the
    fusion model (the maps need its class mixture).
    """
    if not bundle.model.mixes_point_classes:
        raise InputError(
            "model",
            "arch",
            f"adaptive acquisition needs a model that mixes its points' classes, got {bundle.arch!r}",
        )
    out = PredictionMaps.empty(bse.shape)
    rc = np.asarray(eds_rc, np.int64).reshape(-1, 2)
    if len(rc) == 0:
        return out
    bundle.model.eval()
    settings = dict(bundle.config, unknown_column=bool(getattr(bundle.encoder, "unknown_column", False)))
    for sl, p in block_probabilities(bundle.model, settings, bse, valid, rc, eds_prob, block):
        if p is None:
            continue
        for name, t in zip(PredictionMaps.names(), _summaries(p)):
            getattr(out, name)[sl] = t.numpy()
    for name in PredictionMaps.names():
        getattr(out, name)[~valid] = -1 if name == "labels" else 0
    return out


def nearest_maps(valid: np.ndarray, eds_rc: np.ndarray, eds_prob: np.ndarray) -> PredictionMaps:
    """The same maps from nearest-EDS labelling: every pixel takes its nearest point's class
    probabilities (ties to the lowest index, :func:`mingraph_kernels.nearest.nearest_eds_labels`)."""
    from mingraph_kernels.nearest import nearest_eds_labels, nearest_eds_map

    h, w = valid.shape
    out = PredictionMaps.empty((h, w))
    if len(eds_rc) == 0:
        return out
    rc = np.asarray(eds_rc, np.int64)
    near = nearest_eds_map(h, w, rc)  # one search for all the maps
    summ = [t.numpy() for t in _summaries(torch.as_tensor(np.asarray(eds_prob, np.float32)))]
    for name, per_point in zip(PredictionMaps.names(), summ):
        fill = -1 if name == "labels" else 0
        lab = nearest_eds_labels(h, w, rc, per_point, fill, nearest=near)
        setattr(out, name, np.where(valid, lab, fill).astype(getattr(out, name).dtype))
    return out


def nearest_point_labels(
    bundle: Bundle, valid: np.ndarray, eds_rc: np.ndarray, point_evidence: np.ndarray
) -> np.ndarray | None:
    """Nearest-EDS labelling of a session's own points, as ``mingraph predict`` and ``mingraph
    evaluate`` score it: every pixel takes the class of its nearest point.

    Parameters
    ----------
    bundle : Bundle
        The model file whose point classifier made ``point_evidence``.
    valid : (H, W) bool
        The specimen mask; pixels outside it are unclassified (-1).
    eds_rc : (N, 2) int
        Row and column of each measured point.
    point_evidence : (N, width) float
        What the model was given for each point (:func:`mingraph.learn.bundle.point_features`).

    Returns
    -------
    (H, W) int64 or None
        Class id per pixel (-1 unclassified: outside ``valid``, or nearest to a point the
        classifier names unknown); None when the point classifier gives no class per point.
        Each point's class is :func:`mingraph.learn.bundle.point_classes`, the nearest point
        :func:`mingraph_kernels.nearest.nearest_eds_labels` (ties to the lowest index).
    """
    from mingraph_kernels.nearest import nearest_eds_labels

    classes = point_classes(bundle, point_evidence)
    if classes is None:
        return None
    h, w = valid.shape
    lab = nearest_eds_labels(h, w, np.asarray(eds_rc, np.int64).reshape(-1, 2), classes)
    return np.where(valid, lab, -1)
