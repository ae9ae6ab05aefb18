"""What an acquisition strategy sees: the session's state and the model's latest prediction.

Both are typed records: every strategy reads the same named fields, and what one strategy
computes once a session (a lattice, a segmentation, BSE maps) has a named slot of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property

import numpy as np


@dataclass
class PredictionMaps:
    """The per-pixel prediction a session updates every round (:mod:`.predictions`).

    ``labels`` (H, W) int16 class ids (−1 where not valid or unclassified); ``confidence``
    max_c q_c, ``entropy`` −Σ_c q_c log q_c (nats) and ``margin`` q₍₁₎ − q₍₂₎ (the two most
    probable classes), each (H, W) float32 and 0 where not valid.

    Examples
    --------
    >>> m = PredictionMaps.empty((2, 3))
    >>> m.labels.tolist(), float(m.confidence.sum())
    ([[-1, -1, -1], [-1, -1, -1]], 0.0)
    """

    labels: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray
    margin: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> PredictionMaps:
        """Maps of a field with no prediction yet: every label −1, every other map 0."""
        zeros = [np.zeros(shape, np.float32) for _ in range(3)]
        return cls(np.full(shape, -1, np.int16), *zeros)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The maps' names, in field order."""
        return tuple(f.name for f in fields(cls))


@dataclass
class AcquisitionState:
    """The session so far.

    ``bse`` (H, W) float32 in [0, 1]; ``valid`` (H, W) bool, the pixels that may be measured;
    ``measured`` (H, W) bool; ``points`` (n, 2) int32 row/col measured so far, in order;
    ``n_total`` the session's budget in points; ``n_classes`` the model's number of classes;
    ``maps`` the latest prediction (None before the first, or without a model).

    The remaining fields are what strategies compute once a session and reuse: ``lattice`` the
    grid's nodes (``grid``, ``bright``), ``segmentation`` and ``segment_points`` (``segments``),
    ``bright_level`` (``bright``), and the BSE maps of :mod:`.bse_maps` and :mod:`.slads`
    (``bse_std``, ``bse_smooth``, ``gradient``, ``structure``) and the SLADS regressor's
    ``erd_weights``.
    """

    bse: np.ndarray
    valid: np.ndarray
    measured: np.ndarray
    points: np.ndarray
    n_total: int
    n_classes: int = 50
    maps: PredictionMaps | None = None
    lattice: np.ndarray | None = field(default=None, repr=False)
    segmentation: np.ndarray | None = field(default=None, repr=False)
    segment_points: np.ndarray | None = field(default=None, repr=False)
    bright_level: float | None = field(default=None, repr=False)
    bse_std: np.ndarray | None = field(default=None, repr=False)
    bse_smooth: np.ndarray | None = field(default=None, repr=False)
    gradient: np.ndarray | None = field(default=None, repr=False)
    structure: np.ndarray | None = field(default=None, repr=False)
    erd_weights: dict | None = field(default=None, repr=False)

    @cached_property
    def n_valid(self) -> int:
        """Valid pixels of the field (counted once)."""
        return int(self.valid.sum())

    @property
    def spacing(self) -> float:
        """Mean distance (px) between points when the whole budget is spread evenly: √(valid / n)."""
        return float(np.sqrt(self.n_valid / max(self.n_total, 1)))

    def free(self) -> np.ndarray:
        """(H, W) bool: valid pixels not yet measured."""
        return self.valid & ~self.measured


Strategy = Callable[[AcquisitionState, int, np.random.Generator], np.ndarray]
"""``choose(state, n, rng) -> (n, 2) int32`` row/col of ``n`` free pixels (exactly ``n`` while
that many remain), deterministic for a given ``rng``."""
