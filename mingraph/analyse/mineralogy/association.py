"""Phase association (shared boundary length) and liberation by free perimeter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from mingraph.analyse.mineralogy.inputs import (
    BACKGROUND,
    UNCLASSIFIED,
    _check_connectivity,
    _check_phase_map,
    _check_pixel_size,
    _pct,
)
from mingraph.errors import InputError


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
    labels: np.ndarray, valid: np.ndarray, n_classes: int, pixel_size_um: float
) -> AssociationResult:
    """Boundary length (um) shared by each pair of phases, from 4-neighbour pixel edges, as TIMA/MLA report.

    Categories are the ``n_classes`` phases, then ``unclassified`` (valid, label -1), then ``background``
    (invalid pixels, whatever their label). Each pair of 4-neighbours in different categories adds one
    pixel edge (``pixel_size_um``) to both [a, b] and [b, a]; the image edge is no boundary.
    """
    where = "association_matrix"
    px = _check_pixel_size(where, pixel_size_um)
    try:
        n = int(n_classes)
    except (TypeError, ValueError):
        raise InputError(where, "n_classes", f"expected a positive integer, got {n_classes!r}") from None
    labels, valid = _check_phase_map(where, labels, valid, n)
    cat = np.where(valid, np.where(labels < 0, n, labels), n + 1)
    m = n + 2
    counts = np.zeros(m * m, dtype=np.int64)
    for a, b in ((cat[:, :-1], cat[:, 1:]), (cat[:-1, :], cat[1:, :])):
        d = a != b
        counts += np.bincount(a[d] * m + b[d], minlength=m * m)
    mat = counts.reshape(m, m)
    mat = (mat + mat.T).astype(np.float64) * px
    return AssociationResult(
        names=[f"class {k}" for k in range(n)] + [UNCLASSIFIED, BACKGROUND], boundary_um=mat
    )


def liberation(
    labels: np.ndarray,
    valid: np.ndarray,
    n_classes: int,
    threshold: float = 0.8,
    connectivity: int = 8,
    particles: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Per phase, the % of its area in particles where it makes up >= ``threshold`` of the particle (liberated).

    Particles are the connected components of ``valid`` (grains mounted in resin), or the given
    ``particles`` id map (0 = none). A field with no resin is one particle: liberation then only
    says which phase dominates the field.
    """
    where = "liberation"
    connectivity = _check_connectivity(where, connectivity)
    n = int(n_classes)
    labels, valid = _check_phase_map(where, labels, valid, n)
    if not (0.0 < float(threshold) <= 1.0):
        raise InputError(where, "threshold", f"expected a fraction in (0, 1], got {threshold!r}")
    if particles is None:
        structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
        particles, n_p = ndimage.label(valid, structure=structure)
    else:
        particles = np.asarray(particles)
        if (
            particles.shape != labels.shape
            or particles.dtype.kind not in "iu"
            or (particles.size and particles.min() < 0)
        ):
            raise InputError(
                where, "particles", f"expected a non-negative integer id map of shape {labels.shape}"
            )
        particles = np.where(valid, particles, 0)
        n_p = int(particles.max())
    sel = (particles > 0) & valid
    p = particles[sel].astype(np.int64)
    lab = labels[sel]
    p_area = np.bincount(p, minlength=n_p + 1)
    cls = lab >= 0
    comp = np.bincount(p[cls] * n + lab[cls], minlength=(n_p + 1) * n).reshape(n_p + 1, n)
    share = np.divide(comp, p_area[:, None], out=np.zeros(comp.shape), where=p_area[:, None] > 0)
    rows = []
    for k in range(n):
        total = float(comp[:, k].sum())
        lib = float(comp[share[:, k] >= threshold * (1 - 1e-12), k].sum())
        free = float(comp[share[:, k] >= 1.0, k].sum())
        rows.append(
            {
                "class_id": k,
                "pixels": int(total),
                "particles": int((comp[:, k] > 0).sum()),
                "liberated_pct": _pct(lib, total),
                "free_pct": _pct(free, total),
            }
        )
    return rows
