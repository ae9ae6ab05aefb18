"""95 % intervals by the bootstrap over particles (or grains): resample units with replacement.

Every figure of the report is a function of per-unit sums (pixels of each phase, target pixels in
each liberation class, …), so one resampling serves all: a replicate's sums are ``w @ U`` with
``w`` (n_units,) the multiplicities of a draw of n_units units with replacement and ``U``
(n_units, q) the unit matrix. The interval is the percentile interval (Efron & Tibshirani 1993,
ch. 13) of the figure over ``n_boot`` replicates.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def bootstrap_sums(unit_matrix, n_boot: int = 200, seed: int = 0, chunk: int = 25) -> np.ndarray:
    """(n_boot, q) column sums of ``unit_matrix`` (n_units, q; dense or scipy.sparse) over resampled units."""
    u = sparse.csr_matrix(unit_matrix) if not sparse.issparse(unit_matrix) else unit_matrix.tocsr()
    n = u.shape[0]
    rng = np.random.default_rng(seed)
    out = np.zeros((int(n_boot), u.shape[1]))
    if n == 0:
        return out
    ut = u.T.tocsr()
    for b0 in range(0, int(n_boot), chunk):
        b1 = min(int(n_boot), b0 + chunk)
        w = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(b0, b1)]).astype(
            np.float64
        )
        out[b0:b1] = (ut @ w.T).T
    return out


def interval(replicates: np.ndarray, level: float = 0.95) -> np.ndarray:
    """(2, ...) percentile interval over axis 0 of ``replicates`` (NaN where every replicate is NaN)."""
    a = (1.0 - level) / 2.0
    r = np.asarray(replicates, dtype=np.float64)
    with np.errstate(all="ignore"):
        if np.isnan(r).all(axis=0).any():
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return np.nanpercentile(r, [100 * a, 100 * (1 - a)], axis=0)
        return np.nanpercentile(r, [100 * a, 100 * (1 - a)], axis=0)


def percent(sums: np.ndarray) -> np.ndarray:
    """Rows of sums as % of their row total (0 where the total is 0)."""
    s = np.asarray(sums, dtype=np.float64)
    tot = s.sum(axis=-1, keepdims=True)
    return np.divide(100.0 * s, tot, out=np.zeros_like(s), where=tot > 0)
