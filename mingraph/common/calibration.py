"""Calibration of confidences: reliability bins, expected calibration error, temperature and Platt scaling.

A confidence is calibrated when, of the pixels given confidence c, a share c is right.  The
expected calibration error (ECE) of Naeini, Cooper and Hauskrecht (2015, "Obtaining Well
Calibrated Probabilities Using Bayesian Binning", AAAI) in the form of Guo, Pleiss, Sun and
Weinberger (2017, "On Calibration of Modern Neural Networks", ICML, eq. 3) splits [0, 1] into M
equal-width bins B_m = ((m − 1)/M, m/M] (a confidence of exactly 0 joins the first) and sums
each bin's gap between accuracy and mean confidence, weighted by its share of the samples:

    ECE = Σ_m (|B_m| / n) · |acc(B_m) − conf(B_m)|.

Temperature scaling (Guo et al. 2017, §4.2) divides log-probabilities by one T > 0 fitted by
minimising the negative log-likelihood on validation samples: T > 1 softens overconfident
answers, T = 1 leaves them as they are, and the class chosen never changes.  Platt scaling
(Platt 1999, "Probabilistic Outputs for Support Vector Machines", here of the top-label
confidence, as Guo et al. 2017 §4.1 extend it) maps a confidence c to
σ(a · logit(c) + b), a and b fitted by the log-loss of whether the answer was right: two
parameters, so it can lower high confidences and raise middling ones at once, which one
temperature cannot.
"""

from __future__ import annotations

import numpy as np

from mingraph.common.errors import InputError

DEFAULT_BINS = 15
TEMPERATURE_BOUNDS = (0.05, 20.0)
ROUNDING = 1e-5
"""How far past [0, 1] a confidence may lie (float32 rounding) and still be taken, as 0 or 1."""


def _samples(confidence, correct, mask) -> tuple[np.ndarray, np.ndarray]:
    """The finite confidences (float64) and their correctness (bool) that ``mask`` keeps."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct)
    if conf.shape != ok.shape:
        raise InputError(
            "calibration", "correct", f"shape {ok.shape} differs from the confidences' {conf.shape}"
        )
    keep = np.isfinite(conf)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != conf.shape:
            raise InputError(
                "calibration", "mask", f"shape {mask.shape} differs from the confidences' {conf.shape}"
            )
        keep &= mask
    conf, ok = conf[keep], ok[keep]
    if conf.size and (conf.min() < -ROUNDING or conf.max() > 1.0 + ROUNDING):
        raise InputError("calibration", "confidence", "expected confidences in [0, 1]")
    return np.clip(conf, 0.0, 1.0), ok.astype(bool)  # float32 rounding: exp(log q) may pass 1 by an ulp


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS, mask: np.ndarray | None = None
) -> dict:
    """Per-bin mean confidence, accuracy and count over equal-width confidence bins.

    Parameters
    ----------
    confidence : numpy.ndarray
        Any shape, float: the probability each sample's answer was given, in [0, 1] (within
        :data:`ROUNDING`); NaN (e.g. a pixel no answer was given for) is left out.
    correct : numpy.ndarray
        The same shape, bool (or 0/1): whether the answer was right.
    n_bins : int
        M, the number of bins ((m − 1)/M, m/M] (module docstring); at least 1.
    mask : numpy.ndarray, optional
        The same shape, bool: the samples to count (e.g. valid, labelled, classified pixels).

    Returns
    -------
    dict
        ``edges`` (M + 1,) float64; ``confidence`` and ``accuracy`` (M,) float64, the bin's mean
        confidence and share right (NaN for an empty bin); ``count`` (M,) int64.

    Raises
    ------
    InputError
        ``correct`` or ``mask`` of another shape than ``confidence``, a finite confidence outside
        [0, 1], or ``n_bins`` < 1.

    Examples
    --------
    >>> b = reliability_bins(np.array([0.1, 0.9, 0.95, 1.0]), np.array([0, 1, 0, 1]), n_bins=2)
    >>> b["count"].tolist(), b["accuracy"].tolist()
    ([1, 3], [0.0, 0.6666666666666666])
    """
    if int(n_bins) < 1:
        raise InputError("calibration", "n_bins", f"expected at least 1 bin, got {n_bins}")
    m = int(n_bins)
    conf, ok = _samples(confidence, correct, mask)
    edges = np.linspace(0.0, 1.0, m + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, m - 1)  # e[m-1] < c <= e[m]; 0: first
    count = np.bincount(idx, minlength=m).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=m) / count
        acc = np.bincount(idx, weights=ok.astype(np.float64), minlength=m) / count
    return {"edges": edges, "confidence": mean_conf, "accuracy": acc, "count": count}


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS, mask: np.ndarray | None = None
) -> float:
    """ECE = Σ_m (|B_m| / n) · |acc(B_m) − conf(B_m)| over equal-width bins (Guo et al. 2017, eq. 3;
    Naeini et al. 2015; module docstring).

    Parameters
    ----------
    confidence, correct, n_bins, mask
        As :func:`reliability_bins` (any shape; NaN confidences and samples ``mask`` drops are left
        out).

    Returns
    -------
    float
        In [0, 1]; NaN when no sample is counted.

    Raises
    ------
    InputError
        As :func:`reliability_bins`.

    Examples
    --------
    Two bins: (0, 0.5] holds 0.1 (wrong), (0.5, 1] holds 0.9, 0.95 and 1.0 (two right):
    (1/4)·|0 − 0.1| + (3/4)·|2/3 − 0.95| = 0.025 + 0.2125.

    >>> round(expected_calibration_error(np.array([0.1, 0.9, 0.95, 1.0]), np.array([0, 1, 0, 1]), 2), 4)
    0.2375
    """
    return bins_ece(reliability_bins(confidence, correct, n_bins, mask))


def bins_ece(bins: dict) -> float:
    """The ECE of :func:`reliability_bins`' (or :func:`pool_bins`') result; NaN when all are empty.

    Examples
    --------
    >>> round(bins_ece(reliability_bins(np.array([0.7, 0.7]), np.array([1, 0]), n_bins=10)), 6)
    0.2
    """
    count = np.asarray(bins["count"])
    n = count.sum()
    if n == 0:
        return float("nan")
    full = count > 0
    gap = np.abs(np.asarray(bins["accuracy"])[full] - np.asarray(bins["confidence"])[full])
    return float((count[full] / n * gap).sum())


def pool_bins(parts: list[dict]) -> dict:
    """One :func:`reliability_bins` result of the samples of several (e.g. one per field, same
    bins): counts summed, means weighted by count.

    Examples
    --------
    >>> a = reliability_bins(np.array([0.7]), np.array([1]), n_bins=2)
    >>> b = reliability_bins(np.array([0.9, 0.2]), np.array([0, 0]), n_bins=2)
    >>> p = pool_bins([a, b])
    >>> p["count"].tolist(), p["confidence"].tolist(), p["accuracy"].tolist()
    ([1, 2], [0.2, 0.8], [0.0, 0.5])
    """
    if not parts:
        raise InputError("calibration", "bins", "nothing to pool")
    edges = np.asarray(parts[0]["edges"])
    if any(np.asarray(p["edges"]).shape != edges.shape or not np.allclose(p["edges"], edges) for p in parts):
        raise InputError("calibration", "bins", "bins of different edges cannot be pooled")
    count = np.sum([p["count"] for p in parts], axis=0).astype(np.int64)
    sums = {
        k: np.sum([np.where(p["count"] > 0, p[k] * p["count"], 0.0) for p in parts], axis=0)
        for k in ("confidence", "accuracy")
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        means = {k: np.where(count > 0, v / count, np.nan) for k, v in sums.items()}
    return {"edges": edges, **means, "count": count}


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def apply_temperature(log_probs: np.ndarray, temperature: float) -> np.ndarray:
    """log softmax(log_probs / T): the log-probabilities of (..., classes) scaled by ``temperature``.

    Examples
    --------
    >>> p = apply_temperature(np.log(np.array([[0.8, 0.2]])), 2.0)
    >>> np.round(np.exp(p), 4).tolist()
    [[0.6667, 0.3333]]
    """
    if not temperature > 0:
        raise InputError("calibration", "temperature", f"expected a temperature > 0, got {temperature}")
    return _log_softmax(np.asarray(log_probs, dtype=np.float64) / float(temperature))


def fit_temperature(
    log_probs: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = TEMPERATURE_BOUNDS
) -> dict:
    """The temperature T minimising the mean negative log-likelihood of ``labels`` under
    softmax(log_probs / T) (Guo et al. 2017, §4.2; scipy's bounded ``minimize_scalar``).

    Parameters
    ----------
    log_probs : numpy.ndarray
        (n, classes) float: log-probabilities (or logits) of validation samples.
    labels : numpy.ndarray
        (n,) int: each sample's true class; samples with a label < 0 are left out.
    bounds : (float, float)
        The interval T is searched in.

    Returns
    -------
    dict
        ``temperature`` (float), ``nll_before`` (at T = 1) and ``nll_after``, ``samples`` (int).

    Raises
    ------
    InputError
        Shapes that do not match, a label ≥ classes, or no labelled sample.

    Examples
    --------
    Answers of 0.99 that are right 3 times in 4 ask for a temperature above 1:

    >>> lp = np.log(np.array([[0.99, 0.01]] * 4))
    >>> fit_temperature(lp, np.array([0, 0, 0, 1]))["temperature"] > 1
    True
    """
    from scipy.optimize import minimize_scalar

    lp = np.asarray(log_probs, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64).ravel()
    if lp.ndim != 2 or lp.shape[0] != y.size:
        raise InputError(
            "calibration", "labels", f"expected (n, classes) and (n,), got {lp.shape}, {y.shape}"
        )
    keep = y >= 0
    lp, y = lp[keep], y[keep]
    if y.size == 0:
        raise InputError("calibration", "labels", "no labelled sample to fit a temperature on")
    if y.max() >= lp.shape[1]:
        raise InputError("calibration", "labels", f"a label ≥ the {lp.shape[1]} classes")
    rows = np.arange(y.size)

    def nll(t: float) -> float:
        return float(-apply_temperature(lp, t)[rows, y].mean())

    res = minimize_scalar(nll, bounds=bounds, method="bounded", options={"xatol": 1e-4})
    t = float(res.x)
    return {"temperature": t, "nll_before": nll(1.0), "nll_after": nll(t), "samples": int(y.size)}


PLATT_EPS = 1e-6
"""Confidences are held in [eps, 1 − eps] before their log-odds are taken."""


def platt_confidence(confidence: np.ndarray, a: float, b: float) -> np.ndarray:
    """σ(a · logit(c) + b) of confidences c (any shape, float64 out); a = 1, b = 0 is c itself
    (within :data:`PLATT_EPS`).

    Examples
    --------
    >>> np.round(platt_confidence(np.array([0.5, 0.9]), 1.0, 0.0), 6).tolist()
    [0.5, 0.9]
    >>> float(platt_confidence(np.array([0.9]), 0.5, 0.0)[0]) < 0.9
    True
    """
    c = np.clip(np.asarray(confidence, dtype=np.float64), PLATT_EPS, 1 - PLATT_EPS)
    return 1.0 / (1.0 + np.exp(-(a * np.log(c / (1 - c)) + b)))


def fit_platt(confidence: np.ndarray, correct: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """a and b of :func:`platt_confidence` minimising the mean log-loss of ``correct``
    (scipy's L-BFGS-B from a = 1, b = 0; a kept > 0, so the map is increasing).

    Parameters
    ----------
    confidence, correct, mask
        As :func:`reliability_bins`: the confidences of validation answers and whether each was right.

    Returns
    -------
    dict
        ``a``, ``b``, ``loss_before`` (a = 1, b = 0), ``loss_after``, ``samples``.

    Raises
    ------
    InputError
        As :func:`reliability_bins`, or no sample.

    Examples
    --------
    Answers at 0.95 right 80 % of the time are brought down to about 0.8:

    >>> fit = fit_platt(np.full(1000, 0.95), np.arange(1000) % 5 != 0)
    >>> round(float(platt_confidence(np.array([0.95]), fit["a"], fit["b"])[0]), 3)
    0.8
    """
    from scipy.optimize import minimize

    conf, ok = _samples(confidence, correct, mask)
    if conf.size == 0:
        raise InputError("calibration", "confidence", "no sample to fit a confidence map on")
    c = np.clip(conf, PLATT_EPS, 1 - PLATT_EPS)
    z, y = np.log(c / (1 - c)), ok.astype(np.float64)

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        s = ab[0] * z + ab[1]
        # log-loss of sigmoid(s): log(1 + e^-s) for a right answer, log(1 + e^s) for a wrong one
        value = np.mean(np.logaddexp(0.0, -s) * y + np.logaddexp(0.0, s) * (1 - y))
        g = 1.0 / (1.0 + np.exp(-s)) - y  # d loss / d s
        return float(value), np.array([np.mean(g * z), np.mean(g)])

    res = minimize(
        loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(1e-3, None), (None, None)]
    )
    a, b = (float(v) for v in res.x)
    return {
        "a": a,
        "b": b,
        "loss_before": loss(np.array([1.0, 0.0]))[0],
        "loss_after": float(res.fun),
        "samples": int(conf.size),
    }
