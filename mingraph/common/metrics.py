"""Segmentation scores over valid pixels: confusion matrix, precision, recall, F1 (weighted and macro)."""

from __future__ import annotations

import numpy as np


def confusion(
    truth: np.ndarray,
    pred: np.ndarray,
    n_classes: int,
    mask: np.ndarray | None = None,
    unclassified: bool = False,
) -> np.ndarray:
    """Int64 counts, rows = truth, columns = prediction; truth < 0 is ignored.

    (n_classes, n_classes), or with ``unclassified`` (n_classes, n_classes + 1) whose last column
    counts pixels predicted -1 (left unclassified): :func:`scores` counts them as misses of their
    true class (recall) and as no prediction of any class (precision).
    """
    t = np.asarray(truth).ravel()
    p = np.asarray(pred).ravel()
    keep = t >= 0
    if mask is not None:
        keep &= np.asarray(mask, bool).ravel()
    t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
    lowest = -1 if unclassified else 0
    if t.size and (t.max() >= n_classes or p.min() < lowest or p.max() >= n_classes):
        raise ValueError(f"class ids must lie in [{lowest}, {n_classes - 1}]")
    cols = n_classes + 1 if unclassified else n_classes
    p = np.where(p < 0, n_classes, p)
    return np.bincount(t * cols + p, minlength=n_classes * cols).reshape(n_classes, cols)


def scores(cm: np.ndarray) -> dict:
    """Per-class and averaged precision/recall/F1 from a confusion matrix (C, C) or (C, C + 1).

    ``weighted`` averages over classes by true support (scikit-learn's ``average="weighted"``);
    ``macro`` is the plain mean over classes present in the truth or the prediction.  Undefined
    ratios count as 0.  A last column of unclassified pixels (:func:`confusion`) lowers recall only.
    """
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.shape[0]
    if cm.shape not in ((n, n), (n, n + 1)):
        raise ValueError(f"expected a (C, C) or (C, C + 1) confusion matrix, got {cm.shape}")
    tp = np.diag(cm[:, :n])
    support = cm.sum(1)
    predicted = cm[:, :n].sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support > 0) | (predicted > 0)
    total = support.sum()
    w = support / total if total > 0 else np.zeros_like(support)
    out = {
        "accuracy": float(tp.sum() / total) if total > 0 else 0.0,
        "support": int(total),
        "per_class": {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support.astype(np.int64),
        },
    }
    for name, arr in (("precision", precision), ("recall", recall), ("f1", f1)):
        out[f"{name}_weighted"] = float((w * arr).sum())
        out[f"{name}_macro"] = float(arr[present].mean()) if present.any() else 0.0
    return out


def tile_mean_scores(cms: list[np.ndarray]) -> dict:
    """The paper's Table 1 figures: the mean over tiles of each tile's support-weighted precision,
    recall and F1 (tiles without a labelled pixel are left out).  ``cms``: one confusion matrix
    per tile, as :func:`confusion` gives."""
    per = [scores(cm) for cm in cms if np.asarray(cm).sum() > 0]
    return {
        f"tile_mean_{k}": float(np.mean([s[f"{k}_weighted"] for s in per])) if per else 0.0
        for k in ("precision", "recall", "f1")
    } | {"tiles_scored": len(per)}
