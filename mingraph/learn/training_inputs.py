"""What the fusion trainer shows the model of a training crop, as a real instrument gives it: the
specimen mask a user really has (none, a BSE threshold window, a rough hand-drawn mask) and the
BSE detector's gain, offset, contrast, noise, slow drift and charging streaks.

The recipe's ``mask`` names one mode or a list to draw from per item: ``exact`` (the dataset's
valid mask, a simulator's exact specimen), ``none`` (every pixel, as ``predict --bse --points``
without ``--valid``), ``window`` (pixels whose BSE lies at or above a level drawn from
``mask_window``, TIMA's MinBse; the level is a fraction of the crop's BSE range) or ``rough`` (the
exact mask grown or shrunk by up to ``mask_rough_px`` pixels).  Every EDS point's pixel counts as
specimen in every mode (as ``import --tima`` does).  ``bse_augment`` draws, per item: ``gamma``
(contrast, BSE^γ on [0, 1]), ``gain`` and ``offset`` (b·g + o), ``drift`` (a plane across the crop
of at most that amplitude), ``charging`` (the probability of bright streaks along a few scan
lines, decaying to the right) and ``noise`` (Gaussian, σ drawn from the range).  The labels and
the loss keep the exact mask.
"""

from __future__ import annotations

import numpy as np

from mingraph.common.errors import InputError

MASK_MODES = ("exact", "none", "window", "rough")
AUGMENT_KEYS = ("gamma", "gain", "offset", "drift", "charging", "noise")


def _choice(value, rng: np.random.Generator) -> str:
    return value if isinstance(value, str) else str(value[int(rng.integers(len(value)))])


def model_mask(
    valid: np.ndarray,
    bse: np.ndarray,
    rc: np.ndarray,
    mode: str | list[str],
    rng: np.random.Generator,
    window: tuple[float, float] = (0.05, 0.25),
    rough_px: int = 3,
) -> np.ndarray:
    """(H, W) bool specimen mask the model is given for a crop (module docstring).

    Parameters
    ----------
    valid : (H, W) bool
        The exact specimen mask.
    bse : (H, W) float
        The crop's BSE (any scale).
    rc : (N, 2) int
        The EDS points (row, col); their pixels always count as specimen.
    mode : str or list of str
        One of :data:`MASK_MODES`, or a list to draw one from.
    rng : numpy.random.Generator
        Draws the mode, the window level or the rough radius.
    window : (low, high)
        ``window``: the MinBse level, drawn uniformly, as a fraction of the crop's BSE range.
    rough_px : int
        ``rough``: the largest grow (+) or shrink (−), pixels.

    Returns
    -------
    (H, W) bool

    Raises
    ------
    InputError
        An unknown mode.

    Examples
    --------
    >>> v = np.zeros((4, 4), bool); v[1:3, 1:3] = True
    >>> int(model_mask(v, np.ones((4, 4)), np.zeros((0, 2), int), "none", np.random.default_rng(0)).sum())
    16
    """
    m = _choice(mode, rng)
    valid = np.asarray(valid, bool)
    if m == "exact":
        out = valid.copy()
    elif m == "none":
        out = np.ones_like(valid)
    elif m == "window":
        lo, hi = float(bse.min()), float(bse.max())
        level = lo + float(rng.uniform(*window)) * (hi - lo)
        out = np.asarray(bse, np.float64) >= level
    elif m == "rough":
        from scipy import ndimage

        r = int(rng.integers(-rough_px, rough_px + 1))
        out = valid.copy()
        if r:
            disk = _disk(abs(r))
            out = ndimage.binary_dilation(valid, disk) if r > 0 else ndimage.binary_erosion(valid, disk)
    else:
        raise InputError("recipe", "mask", f"expected one of {', '.join(MASK_MODES)}, got {m!r}")
    rc = np.asarray(rc, np.int64).reshape(-1, 2)
    out[rc[:, 0], rc[:, 1]] = True
    return out


def _disk(r: int) -> np.ndarray:
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= r * r


def augment_bse(bse: np.ndarray, aug: dict | None, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 BSE as another detector might give it (module docstring); ``bse`` itself
    when ``aug`` is empty or None.

    Parameters
    ----------
    bse : (H, W) float
        BSE on [0, 1].
    aug : dict or None
        :data:`AUGMENT_KEYS`: ``gamma``, ``gain``, ``offset``, ``noise`` as [low, high] ranges,
        ``drift`` an amplitude, ``charging`` a probability.
    rng : numpy.random.Generator
        Draws every value (nothing is drawn for an absent key).

    Returns
    -------
    (H, W) float32

    Examples
    --------
    >>> b = np.full((2, 2), 0.25, np.float32)
    >>> augment_bse(b, {"gamma": [0.5, 0.5], "gain": [2, 2], "offset": [0.1, 0.1]}, np.random.default_rng(0))
    array([[1.1, 1.1],
           [1.1, 1.1]], dtype=float32)
    """
    if not aug:
        return bse
    b = np.asarray(bse, np.float64)
    h, w = b.shape
    if "gamma" in aug:
        b = np.clip(b, 0, None) ** rng.uniform(*aug["gamma"])
    if "gain" in aug:
        b = b * rng.uniform(*aug["gain"])
    if "offset" in aug:
        b = b + rng.uniform(*aug["offset"])
    if aug.get("drift"):
        theta, amp = rng.uniform(0, 2 * np.pi), rng.uniform(-1, 1) * float(aug["drift"])
        yy, xx = np.mgrid[0:h, 0:w]
        plane = (np.cos(theta) * xx / max(w - 1, 1) + np.sin(theta) * yy / max(h - 1, 1)) / np.sqrt(2)
        b = b + amp * plane
    if aug.get("charging") and rng.random() < float(aug["charging"]):
        rows = rng.choice(h, size=max(1, h // 32), replace=False)
        for r in rows:
            c0, strength = int(rng.integers(w)), rng.uniform(0.1, 0.4)
            tail = np.arange(w - c0)
            b[r, c0:] += strength * np.exp(-tail / max(w / 8, 1))
    if "noise" in aug:
        b = b + rng.normal(0, rng.uniform(*aug["noise"]), b.shape)
    return b.astype(np.float32)


def check_inputs(values: dict, source: object) -> None:
    """Refuse bad ``mask``, ``mask_window``, ``mask_rough_px`` and ``bse_augment`` recipe values in
    one line (InputError naming ``source`` and the field)."""

    def bad(field: str, what: str, got) -> InputError:
        import json

        return InputError(source, field, f"expected {what}, got {json.dumps(got)}")

    if "mask" in values:
        m = values["mask"]
        modes = [m] if isinstance(m, str) else m
        if not isinstance(modes, list) or not modes or any(x not in MASK_MODES for x in modes):
            raise bad("mask", f"one of {', '.join(MASK_MODES)} or a list of them", m)
    if "mask_window" in values:
        v = values["mask_window"]
        if not (_pair(v) and 0 <= v[0] <= v[1] <= 1):
            raise bad("mask_window", "[low, high] with 0 <= low <= high <= 1", v)
    if "mask_rough_px" in values:
        v = values["mask_rough_px"]
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            raise bad("mask_rough_px", "an integer >= 0", v)
    if "bse_augment" in values:
        a = values["bse_augment"]
        if not isinstance(a, dict) or set(a) - set(AUGMENT_KEYS):
            raise bad("bse_augment", f"an object of {', '.join(AUGMENT_KEYS)}", a)
        for key in ("gamma", "gain", "noise"):
            if key in a and not (_pair(a[key]) and 0 <= a[key][0] <= a[key][1]):
                raise bad(f"bse_augment.{key}", "[low, high] with 0 <= low <= high", a[key])
        if "offset" in a and not (_pair(a["offset"]) and a["offset"][0] <= a["offset"][1]):
            raise bad("bse_augment.offset", "[low, high] with low <= high", a["offset"])
        if "drift" in a and not (_num(a["drift"]) and a["drift"] >= 0):
            raise bad("bse_augment.drift", "a number >= 0", a["drift"])
        if "charging" in a and not (_num(a["charging"]) and 0 <= a["charging"] <= 1):
            raise bad("bse_augment.charging", "a probability in [0, 1]", a["charging"])


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pair(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_num(x) for x in v)
