"""Learnt candidate pick: a gradient-boosted classifier lets each pixel pick one of its k nearest
EDS points (the baseline of issue 10; no graph network, no BSE context beyond the segment).

For every (pixel, candidate) pair the first 7 segment features of
:mod:`mingraph_kernels.candidates` (distance, rank, distance ratio to the nearest, BSE contrast
between pixel and point, maximum and mean BSE gradient along the segment, largest BSE departure
from the pixel's) are the input; the target is "this point's class is the pixel's true class".
The pixel takes the class of the candidate with the highest probability.  Classifier:
scikit-learn's ``HistGradientBoostingClassifier`` (200 iterations, learning rate 0.1), fitted
on pixels sampled from a dataset's training fields with the EDS classes the encoder gives.
"""

from __future__ import annotations

import numpy as np

from mingraph.graphs.candidates import build_candidate_graph
from mingraph_kernels.nearest import nearest_eds_labels

K = 6
N_USED = 7  # the features of the classifier


def _pairs(graph, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features (P, k, 7), candidate classes (P, k), −1 where no candidate)."""
    feats = graph.features[..., :N_USED].reshape(-1, graph.idx.shape[-1], N_USED)
    cand = np.where(graph.idx >= 0, cls[graph.idx.clip(0)], -1).reshape(-1, graph.idx.shape[-1])
    return feats, cand


def fit_candidate_pick(
    fields: list, points: list[tuple[np.ndarray, np.ndarray]], per_field: int = 800, seed: int = 0
):
    """Fit the classifier on labelled ``fields`` with their EDS points ``(eds_rc (N, 2), classes (N,))``.

    Returns the fitted classifier, or None when no pixel has a candidate of its true class.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for f, (rc, cls) in zip(fields, points):
        if len(rc) == 0 or f.labels is None:
            continue
        feats, cand = _pairs(build_candidate_graph(f.bse, f.valid, rc, K), cls)
        truth = np.where(f.valid, f.labels, -1).reshape(-1)
        ok = np.flatnonzero(truth >= 0)
        pick = rng.choice(ok, min(per_field, ok.size), replace=False)
        has = cand[pick] >= 0
        xs.append(feats[pick][has])
        ys.append((cand[pick] == truth[pick, None])[has])
    if not xs or not np.concatenate(ys).any():
        return None
    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed).fit(
        np.concatenate(xs), np.concatenate(ys)
    )


def candidate_pick(
    model, bse: np.ndarray, valid: np.ndarray, eds_rc: np.ndarray, eds_classes: np.ndarray
) -> np.ndarray:
    """(H, W) int64 classes picked by the fitted classifier; −1 where the field has no point."""
    if len(eds_rc) == 0:
        return np.full(np.shape(bse), -1, np.int64)
    if model is None:  # nothing learnt: nearest-EDS
        return nearest_eds_labels(*np.shape(bse), eds_rc, np.asarray(eds_classes, np.int64))
    graph = build_candidate_graph(bse, valid, eds_rc, K)
    feats, cand = _pairs(graph, np.asarray(eds_classes, np.int64))
    p = model.predict_proba(feats.reshape(-1, N_USED))[:, 1].reshape(cand.shape)
    p = np.where(cand >= 0, p, -1.0)
    return np.take_along_axis(cand, p.argmax(1)[:, None], 1)[:, 0].reshape(graph.shape)
