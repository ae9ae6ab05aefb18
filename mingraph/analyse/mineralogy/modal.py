"""Modal mineralogy: area % and mass % of each phase (conventions in the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mingraph.analyse.mineralogy.validate import (
    check_densities,
    check_phase_map,
    class_names_or_default,
    percent_of,
)
from mingraph.common.errors import InputError


@dataclass
class ModalResult:
    """Modal mineralogy: one row per class, and the pixels left out of it, counted separately."""

    rows: list[dict[str, Any]]
    n_pixels: int
    n_valid: int
    n_classified: int
    n_unclassified: int
    n_low_confidence: int
    min_confidence: float | None

    @property
    def unclassified_fraction(self) -> float:
        """Valid pixels with label -1, as a fraction of valid pixels."""
        return self.n_unclassified / self.n_valid if self.n_valid else 0.0

    @property
    def low_confidence_fraction(self) -> float:
        """Valid labelled pixels with confidence below the threshold, as a fraction of valid pixels."""
        return self.n_low_confidence / self.n_valid if self.n_valid else 0.0

    def summary(self) -> dict[str, Any]:
        """The numbers beside the table, JSON-ready."""
        return {
            "n_pixels": self.n_pixels,
            "n_valid": self.n_valid,
            "n_classified": self.n_classified,
            "n_unclassified": self.n_unclassified,
            "n_low_confidence": self.n_low_confidence,
            "unclassified_fraction": self.unclassified_fraction,
            "low_confidence_fraction": self.low_confidence_fraction,
            "min_confidence": self.min_confidence,
        }


def modal_mineralogy(
    labels: np.ndarray,
    valid: np.ndarray,
    class_names: Sequence[str],
    densities: Sequence[float] | np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    min_confidence: float = 0.5,
) -> ModalResult:
    """Per-phase pixel count, area % and mass % (area x density: Delesse's principle on a polished section).

    Area % is of the classified valid pixels; unclassified (-1) and low-confidence pixels (confidence
    below ``min_confidence``, NaN included) are left out of the percentages and counted separately,
    as fractions of valid pixels (the rule of :func:`~mingraph.analyse.mineralogy.validate.classified_labels`).
    ``densities`` in g/cm3, one per class, NaN = unknown; mass % is of the classes with a density
    (None for the others, and for all without ``densities``).
    """
    where = "modal_mineralogy"
    names = class_names_or_default(where, class_names, labels, None)
    n = len(names)
    labels, valid = check_phase_map(where, labels, valid, n)
    dens = check_densities(where, densities, n)
    lab = labels[valid]
    unclassified = lab < 0
    low = np.zeros(lab.shape, dtype=bool)
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float64)
        if conf.shape != labels.shape:
            raise InputError(where, "confidence", f"shape {conf.shape} differs from labels {labels.shape}")
        t = float(min_confidence)
        if not (0.0 <= t <= 1.0):
            raise InputError(where, "min_confidence", f"expected a value in [0, 1], got {min_confidence!r}")
        low = ~unclassified & ~(conf[valid] >= t)
    counts = np.bincount(lab[~unclassified & ~low], minlength=n)[:n]
    low_counts = np.bincount(lab[low], minlength=n)[:n]
    return modal_from_counts(
        counts,
        low_counts,
        names,
        dens,
        n_pixels=int(labels.size),
        n_valid=int(valid.sum()),
        n_unclassified=int(unclassified.sum()),
        min_confidence=float(min_confidence) if confidence is not None else None,
    )


def modal_from_counts(
    counts: np.ndarray,
    low_counts: np.ndarray,
    names: Sequence[str],
    dens: np.ndarray | None,
    *,
    n_pixels: int,
    n_valid: int,
    n_unclassified: int,
    min_confidence: float | None,
) -> ModalResult:
    """Modal mineralogy from pixel counts (n,) int of classified and of low-confidence pixels per
    class, e.g. summed over the fields of a sample; ``dens`` (n,) g/cm³ (NaN = unknown) or None."""
    counts = np.asarray(counts, dtype=np.int64)
    low_counts = np.asarray(low_counts, dtype=np.int64)
    n_classified = int(counts.sum())
    known = np.isfinite(dens) if dens is not None else None
    mass = np.where(known, counts * np.nan_to_num(dens), 0.0) if dens is not None else None
    total_mass = float(mass.sum()) if mass is not None else 0.0
    rows = []
    for k, name in enumerate(names):
        rows.append(
            {
                "class_id": k,
                "phase": name,
                "pixels": int(counts[k]),
                "area_pct": percent_of(float(counts[k]), n_classified),
                "density_g_cm3": float(dens[k]) if dens is not None and known[k] else None,
                "mass_pct": percent_of(float(mass[k]), total_mass) if mass is not None and known[k] else None,
                "low_confidence_pixels": int(low_counts[k]),
            }
        )
    return ModalResult(
        rows=rows,
        n_pixels=int(n_pixels),
        n_valid=int(n_valid),
        n_classified=n_classified,
        n_unclassified=int(n_unclassified),
        n_low_confidence=int(low_counts.sum()),
        min_confidence=min_confidence,
    )
