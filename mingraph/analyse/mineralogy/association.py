"""Phase association: shared boundary length between phases (TIMA / MLA association)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mingraph.analyse.mineralogy.validate import BACKGROUND, UNCLASSIFIED, check_phase_map, check_pixel_size
from mingraph.common.errors import InputError


@dataclass
class AssociationResult:
    """Shared boundary lengths between categories: the classes, then ``unclassified``, then ``background``."""

    names: list[str]
    boundary_um: np.ndarray  # (n + 2, n + 2), symmetric, zero diagonal

    @property
    def total_boundary_um(self) -> float:
        """Total boundary length in the field (each shared edge once)."""
        return float(np.triu(self.boundary_um, 1).sum())

    @property
    def association_pct(self) -> np.ndarray:
        """Row-normalised association (TIMA / MLA): % of row category's boundary shared with each column."""
        tot = self.boundary_um.sum(axis=1, keepdims=True)
        return np.divide(100.0 * self.boundary_um, tot, out=np.zeros_like(self.boundary_um), where=tot > 0)


def association_matrix(
    labels: np.ndarray,
    valid: np.ndarray,
    n_classes: int,
    pixel_size_um: float,
    owned: np.ndarray | None = None,
) -> AssociationResult:
    """Boundary length (um) shared by each pair of phases, from 4-neighbour pixel edges, as TIMA/MLA report.

    Categories are the ``n_classes`` phases, then ``unclassified`` (valid, label -1), then ``background``
    (invalid pixels, whatever their label). Each pair of 4-neighbours in different categories adds one
    pixel edge (``pixel_size_um``) to both [a, b] and [b, a]; the image edge is no boundary.
    ``owned`` (H, W) bool: count only the pairs whose left (resp. upper) pixel is owned, so that
    overlapping fields, each counting its own pixels' pairs, count every shared edge once.
    """
    where = "association_matrix"
    px = check_pixel_size(where, pixel_size_um)
    try:
        n = int(n_classes)
    except (TypeError, ValueError):
        raise InputError(where, "n_classes", f"expected a positive integer, got {n_classes!r}") from None
    labels, valid = check_phase_map(where, labels, valid, n)
    cat = np.where(valid, np.where(labels < 0, n, labels), n + 1)
    m = n + 2
    counts = np.zeros(m * m, dtype=np.int64)
    own = np.ones(cat.shape, bool) if owned is None else np.asarray(owned, dtype=bool)
    if own.shape != cat.shape:
        raise InputError(where, "owned", f"shape {own.shape} differs from labels {cat.shape}")
    for a, b, o in ((cat[:, :-1], cat[:, 1:], own[:, :-1]), (cat[:-1, :], cat[1:, :], own[:-1, :])):
        d = (a != b) & o
        counts += np.bincount(a[d] * m + b[d], minlength=m * m)
    mat = counts.reshape(m, m)
    mat = (mat + mat.T).astype(np.float64) * px
    return AssociationResult(
        names=[f"class {k}" for k in range(n)] + [UNCLASSIFIED, BACKGROUND], boundary_um=mat
    )
