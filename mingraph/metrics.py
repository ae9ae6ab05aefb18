"""Segmentation scores over valid pixels: confusion matrix, precision, recall, F1 (weighted and macro)."""

from __future__ import annotations

import numpy as np


def confusion(
    truth: np.ndarray, pred: np.ndarray, n_classes: int, mask: np.ndarray | None = None
) -> np.ndarray:
    """(n_classes, n_classes) int64 counts, rows = truth, columns = prediction; truth < 0 is ignored."""
    t = np.asarray(truth).ravel()
    p = np.asarray(pred).ravel()
    keep = t >= 0
    if mask is not None:
        keep &= np.asarray(mask, bool).ravel()
    t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
    if t.size and (t.max() >= n_classes or p.min() < 0 or p.max() >= n_classes):
        raise ValueError(f"class ids must lie in [0, {n_classes - 1}]")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def scores(cm: np.ndarray) -> dict:
    """Per-class and averaged precision/recall/F1 from a confusion matrix.

    ``weighted`` averages over classes by true support (the paper's Table 1); ``macro`` is the
    plain mean over classes present in the truth or the prediction.  Undefined ratios count as 0.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(1)
    predicted = cm.sum(0)
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
