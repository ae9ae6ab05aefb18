"""Per-class loss weights from class frequencies, shared by the trainers (UNet, fusion model)."""

from __future__ import annotations

import numpy as np
import torch


def frequency_weights(counts: np.ndarray, power: float, cap: float | None = None) -> torch.Tensor:
    """(C,) float32 loss weights ∝ frequency^−``power`` from per-class pixel ``counts`` (C,).

    Classes never seen get weight 0; the weights are normalised to a support-weighted mean of 1
    (so the loss keeps its scale) and, with ``cap``, limited to ``cap`` × the smallest weight of a
    seen class (the frequency balancing of Eigen & Fergus 2015; ``power`` 0.5 softens it).
    """
    counts = np.asarray(counts, dtype=np.float64)
    freq = counts / counts.sum()
    seen = counts > 0
    w = np.where(seen, np.maximum(freq, 1e-12) ** -power, 0.0)
    w = w / (w * freq).sum()
    if cap is not None:
        w = np.minimum(w, cap * w[seen].min())
    return torch.as_tensor(w, dtype=torch.float32)
