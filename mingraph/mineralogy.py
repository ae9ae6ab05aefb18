"""Automated-mineralogy outputs from a phase map: modal mineralogy, grain sizes, associations, liberation.

Plain functions on arrays (scikit-image style). A phase map is ``labels`` (H, W) of integer class ids
(``-1`` = unclassified) with a ``valid`` (H, W) mask; pixels outside ``valid`` (resin, holes, outside
the scanned area) are background and never counted as mineral. Tables are lists of dicts (one dict
per row, keys = CSV columns), so they print, write to CSV and load into pandas as they are.

Conventions used throughout (and in the CSVs):

- area % is of the *classified* valid pixels: valid, label >= 0 and, when a confidence map is given,
  confidence >= ``min_confidence``. Unclassified and low-confidence pixels are reported separately,
  as fractions of all valid pixels, never hidden inside a phase.
- mass % = area x density, renormalised. For a polished section of a randomly oriented sample, the
  area fraction of a phase estimates its volume fraction (Delesse's principle), so mass follows
  through the density; this is the standard approximation of TIMA / MLA / QEMSCAN modal reports.
- ECD (equivalent circle diameter) = 2 sqrt(area / pi).
- D10 / D50 / D90 are area-weighted (by mass for one phase, as sieve "% passing"): the ECD of the
  grain at which the cumulative area of grains with ECD <= that grain first reaches 10 / 50 / 90 %
  of the phase's area. The number-weighted mean and median ECD are reported beside them.
- Grain-size classes are sqrt(2) progressions anchored at 1 um (1, 1.41, 2, 2.83, 4, ... um), like a
  sieve series.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from .errors import InputError
from .files import save_figure, write_text

__all__ = [
    "ModalResult",
    "GrainResult",
    "AssociationResult",
    "modal_mineralogy",
    "grain_statistics",
    "association_matrix",
    "liberation",
    "size_classes_um",
    "write_mineralogy",
]

UNCLASSIFIED = "unclassified"
BACKGROUND = "background"


# ----------------------------------------------------------------------------------------------
# validation


def _check_phase_map(where: str, labels: Any, valid: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (labels, valid) pair and return them as (int64, bool) arrays."""
    labels = np.asarray(labels)
    valid = np.asarray(valid)
    if labels.ndim != 2:
        raise InputError(where, "labels", f"expected a 2-D (H, W) label map, got shape {labels.shape}")
    if labels.size == 0:
        raise InputError(where, "labels", f"empty image (shape {labels.shape})")
    if valid.shape != labels.shape:
        raise InputError(where, "valid", f"shape {valid.shape} differs from labels {labels.shape}")
    if labels.dtype.kind not in "iub":
        if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
            pass
        else:
            raise InputError(where, "labels", f"expected integer class ids, got dtype {labels.dtype}")
    if valid.dtype != bool:
        if valid.dtype.kind not in "iub" or not np.isin(valid, (0, 1)).all():
            raise InputError(where, "valid", f"expected a boolean mask, got dtype {valid.dtype}")
        valid = valid.astype(bool)
    if n_classes < 1:
        raise InputError(where, "class_names", "expected at least one class")
    labels = labels.astype(np.int64)
    lo, hi = int(labels.min()), int(labels.max())
    if lo < -1 or hi >= n_classes:
        raise InputError(where, "labels", f"class ids must lie in [-1, {n_classes - 1}] (-1 = unclassified), got [{lo}, {hi}]")
    return labels, valid


def _check_pixel_size(where: str, pixel_size_um: Any) -> float:
    try:
        px = float(pixel_size_um)
    except (TypeError, ValueError):
        raise InputError(where, "pixel_size_um", f"expected a positive number, got {pixel_size_um!r}") from None
    if not (math.isfinite(px) and px > 0):
        raise InputError(where, "pixel_size_um", f"expected a positive finite size in um, got {pixel_size_um!r}")
    return px


def _check_connectivity(where: str, connectivity: int) -> int:
    if connectivity not in (4, 8):
        raise InputError(where, "connectivity", f"expected 4 or 8, got {connectivity!r}")
    return int(connectivity)


def _check_densities(where: str, densities: Any, n_classes: int) -> np.ndarray | None:
    if densities is None:
        return None
    d = np.asarray(densities, dtype=np.float64).ravel()
    if d.shape[0] != n_classes:
        raise InputError(where, "densities", f"expected {n_classes} densities (one per class), got {d.shape[0]}")
    if not (np.all(np.isfinite(d)) and np.all(d > 0)):
        raise InputError(where, "densities", "expected positive finite densities in g/cm3")
    return d


def _class_names(where: str, class_names: Sequence[str] | None, labels: np.ndarray, n_classes: int | None) -> list[str]:
    if class_names is not None:
        names = [str(c) for c in class_names]
        if n_classes is not None and len(names) != n_classes:
            raise InputError(where, "class_names", f"{len(names)} names for {n_classes} classes")
        if len(names) == 0:
            raise InputError(where, "class_names", "expected at least one class")
        return names
    if n_classes is None:
        a = np.asarray(labels)
        n_classes = int(a.max()) + 1 if a.size and a.max() >= 0 else 1
    return [f"class {k}" for k in range(n_classes)]


def _pct(num: float, den: float) -> float:
    """A percentage, 0 when the denominator is 0 (an empty image has 0 % of everything)."""
    return 100.0 * num / den if den > 0 else 0.0


# ----------------------------------------------------------------------------------------------
# modal mineralogy


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
    as fractions of valid pixels. ``densities`` in g/cm3, one per class; without them mass % is None.
    """
    where = "modal_mineralogy"
    names = _class_names(where, class_names, labels, None)
    n = len(names)
    labels, valid = _check_phase_map(where, labels, valid, n)
    dens = _check_densities(where, densities, n)
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
    n_classified = int(counts.sum())
    mass = counts * dens if dens is not None else None
    total_mass = float(mass.sum()) if mass is not None else 0.0
    rows = []
    for k, name in enumerate(names):
        rows.append(
            {
                "class_id": k,
                "phase": name,
                "pixels": int(counts[k]),
                "area_pct": _pct(float(counts[k]), n_classified),
                "density_g_cm3": float(dens[k]) if dens is not None else None,
                "mass_pct": _pct(float(mass[k]), total_mass) if mass is not None else None,
                "low_confidence_pixels": int(low_counts[k]),
            }
        )
    return ModalResult(
        rows=rows,
        n_pixels=int(labels.size),
        n_valid=int(valid.sum()),
        n_classified=n_classified,
        n_unclassified=int(unclassified.sum()),
        n_low_confidence=int(low.sum()),
        min_confidence=float(min_confidence) if confidence is not None else None,
    )


# ----------------------------------------------------------------------------------------------
# grains


def size_classes_um(ecd_um: np.ndarray) -> np.ndarray:
    """Grain-size class edges (um): a sqrt(2) progression anchored at 1 um that spans all ``ecd_um``."""
    e = np.asarray(ecd_um, dtype=np.float64)
    e = e[np.isfinite(e) & (e > 0)]
    if e.size == 0:
        return np.array([1.0, math.sqrt(2.0)])
    lo = math.floor(2 * math.log2(e.min()) + 1e-9)
    hi = math.floor(2 * math.log2(e.max()) + 1e-9) + 1
    return 2.0 ** (np.arange(lo, hi + 1) / 2.0)


def _crofton_transitions(grain: np.ndarray, n_grains: int) -> np.ndarray:
    """Per grain, boundary crossings along lines of pixel centres in 4 directions (for Crofton's formula).

    Returns (n_grains + 1, 2): crossings along rows + columns, and along the two diagonals.
    """
    g = np.pad(grain, 1, constant_values=0)
    out = np.zeros((n_grains + 1, 2), dtype=np.int64)
    pairs = [
        (g[:, :-1], g[:, 1:], 0),  # along rows
        (g[:-1, :], g[1:, :], 0),  # along columns
        (g[:-1, :-1], g[1:, 1:], 1),  # diagonal
        (g[:-1, 1:], g[1:, :-1], 1),  # anti-diagonal
    ]
    for a, b, col in pairs:
        d = a != b
        out[:, col] += np.bincount(a[d], minlength=n_grains + 1)
        out[:, col] += np.bincount(b[d], minlength=n_grains + 1)
    return out


@dataclass
class GrainResult:
    """Grain tables: one row per grain, one per phase, and the size distribution (phase x size class)."""

    grains: list[dict[str, Any]]
    phases: list[dict[str, Any]]
    distribution: list[dict[str, Any]]
    bin_edges_um: np.ndarray
    grain_map: np.ndarray = field(repr=False)  # (H, W) grain id, 0 = no grain; grain_id k is row k-1


def _step_quantile(sorted_x: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Smallest x at which the cumulative weight (x sorted ascending) reaches fraction q of the total."""
    c = np.cumsum(weights)
    i = int(np.searchsorted(c, q * c[-1] * (1 - 1e-12), side="left"))
    return float(sorted_x[min(i, len(sorted_x) - 1)])


def grain_statistics(
    labels: np.ndarray,
    valid: np.ndarray,
    pixel_size_um: float,
    connectivity: int = 8,
    *,
    class_names: Sequence[str] | None = None,
    bin_edges_um: Sequence[float] | np.ndarray | None = None,
) -> GrainResult:
    """Grains (connected pixels of one phase) with area, ECD, perimeter, box; per-phase size statistics.

    A grain touching the image edge is flagged (``touches_border``): it was cut by the field and its
    size is a lower bound. Perimeter is Crofton's estimate from boundary crossings in 4 directions
    (unbiased for round shapes, where counting pixel edges overestimates by 4/pi).
    """
    where = "grain_statistics"
    px = _check_pixel_size(where, pixel_size_um)
    connectivity = _check_connectivity(where, connectivity)
    names = _class_names(where, class_names, labels, None)
    n = len(names)
    labels, valid = _check_phase_map(where, labels, valid, n)
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)

    grain_map = np.zeros(labels.shape, dtype=np.int64)
    grain_phase = [np.zeros(0, dtype=np.int64)]
    offset = 0
    present = np.bincount(labels[valid] + 1, minlength=n + 1)[1:] > 0
    for k in np.flatnonzero(present):
        k = int(k)
        mask = valid & (labels == k)
        comp, m = ndimage.label(mask, structure=structure)
        grain_map[mask] = comp[mask] + offset
        grain_phase.append(np.full(m, k, dtype=np.int64))
        offset += m
    n_grains = offset
    phase_of = np.concatenate(grain_phase)

    flat = grain_map.ravel()
    area_px = np.bincount(flat, minlength=n_grains + 1)
    rr, cc = np.indices(labels.shape)
    sum_r = np.bincount(flat, weights=rr.ravel(), minlength=n_grains + 1)
    sum_c = np.bincount(flat, weights=cc.ravel(), minlength=n_grains + 1)
    edge = np.concatenate([grain_map[0], grain_map[-1], grain_map[:, 0], grain_map[:, -1]])
    on_border = np.bincount(edge, minlength=n_grains + 1) > 0
    trans = _crofton_transitions(grain_map, n_grains)
    # Cauchy-Crofton: P = 1/2 * integral over directions and offsets of crossings; lines along rows and
    # columns are 1 pixel apart, along diagonals 1/sqrt(2) apart; 4 directions share pi.
    perim_px = (math.pi / 8.0) * (trans[:, 0] + trans[:, 1] / math.sqrt(2.0))
    boxes = ndimage.find_objects(grain_map) if n_grains else []

    area_um2 = area_px * px * px
    ecd_um = 2.0 * np.sqrt(area_um2 / math.pi)
    grains = []
    for g in range(1, n_grains + 1):
        sl = boxes[g - 1]
        k = int(phase_of[g - 1])
        grains.append(
            {
                "grain_id": g,
                "class_id": k,
                "phase": names[k],
                "area_px": int(area_px[g]),
                "area_um2": float(area_um2[g]),
                "ecd_um": float(ecd_um[g]),
                "perimeter_um": float(perim_px[g] * px),
                "centroid_row": float(sum_r[g] / area_px[g]),
                "centroid_col": float(sum_c[g] / area_px[g]),
                "row_min": int(sl[0].start),
                "col_min": int(sl[1].start),
                "row_max": int(sl[0].stop - 1),
                "col_max": int(sl[1].stop - 1),
                "touches_border": bool(on_border[g]),
            }
        )

    g_ecd = ecd_um[1:]
    g_area = area_um2[1:]
    if bin_edges_um is None:
        edges = size_classes_um(g_ecd)
    else:
        edges = np.asarray(bin_edges_um, dtype=np.float64).ravel()
        if edges.size < 2 or not np.all(np.diff(edges) > 0) or edges[0] < 0:
            raise InputError(where, "bin_edges_um", "expected at least 2 increasing, non-negative edges")

    phases = []
    distribution = []
    for k, name in enumerate(names):
        sel = phase_of == k
        e, a = g_ecd[sel], g_area[sel]
        row: dict[str, Any] = {
            "class_id": k,
            "phase": name,
            "grains": int(sel.sum()),
            "border_grains": int(on_border[1:][sel].sum()),
            "area_um2": float(a.sum()),
        }
        if e.size:
            order = np.argsort(e, kind="stable")
            es, as_ = e[order], a[order]
            row.update(
                ecd_mean_um=float(e.mean()),
                ecd_median_um=float(np.median(e)),
                d10_um=_step_quantile(es, as_, 0.10),
                d50_um=_step_quantile(es, as_, 0.50),
                d90_um=_step_quantile(es, as_, 0.90),
            )
        else:
            row.update(ecd_mean_um=None, ecd_median_um=None, d10_um=None, d50_um=None, d90_um=None)
        phases.append(row)
        if not e.size:
            continue
        idx = np.searchsorted(edges, e, side="right") - 1
        inside = (idx >= 0) & (idx < len(edges) - 1)
        cnt = np.bincount(idx[inside], minlength=len(edges) - 1)
        ar = np.bincount(idx[inside], weights=a[inside], minlength=len(edges) - 1)
        below_n = int((idx < 0).sum())
        below_a = float(a[idx < 0].sum())
        cum_n = below_n + np.cumsum(cnt)
        cum_a = below_a + np.cumsum(ar)
        tot_n, tot_a = float(e.size), float(a.sum())
        for b in range(len(edges) - 1):
            distribution.append(
                {
                    "class_id": k,
                    "phase": name,
                    "ecd_min_um": float(edges[b]),
                    "ecd_max_um": float(edges[b + 1]),
                    "grains": int(cnt[b]),
                    "area_um2": float(ar[b]),
                    "area_pct": _pct(float(ar[b]), tot_a),
                    "cum_area_pct_passing": _pct(float(cum_a[b]), tot_a),
                    "cum_number_pct_passing": _pct(float(cum_n[b]), tot_n),
                }
            )
    return GrainResult(grains=grains, phases=phases, distribution=distribution, bin_edges_um=edges, grain_map=grain_map)


# ----------------------------------------------------------------------------------------------
# association


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


def association_matrix(labels: np.ndarray, valid: np.ndarray, n_classes: int, pixel_size_um: float) -> AssociationResult:
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
    return AssociationResult(names=[f"class {k}" for k in range(n)] + [UNCLASSIFIED, BACKGROUND], boundary_um=mat)


# ----------------------------------------------------------------------------------------------
# liberation


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
        if particles.shape != labels.shape or particles.dtype.kind not in "iu" or (particles.size and particles.min() < 0):
            raise InputError(where, "particles", f"expected a non-negative integer id map of shape {labels.shape}")
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


# ----------------------------------------------------------------------------------------------
# writers


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return v


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    cols = columns if columns is not None else (list(rows[0]) if rows else [])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_csv_value(r.get(c)) for c in cols])
    return write_text(path, buf.getvalue())


def _modal_plot(path: Path, modal: ModalResult, colours: np.ndarray) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted((r for r in modal.rows if r["pixels"] > 0), key=lambda r: -r["area_pct"])
    has_mass = bool(rows) and rows[0]["mass_pct"] is not None
    h = max(2.2, 0.38 * len(rows) + 1.3)
    fig, ax = plt.subplots(figsize=(7.5, h))
    y = np.arange(len(rows))
    bar_h = 0.38 if has_mass else 0.7
    cols = [colours[r["class_id"]] for r in rows]
    area = [r["area_pct"] for r in rows]
    ax.barh(y - (bar_h / 2 if has_mass else 0), area, height=bar_h, color=cols, edgecolor="black", linewidth=0.5, label="area %")
    if has_mass:
        mass = [r["mass_pct"] for r in rows]
        ax.barh(y + bar_h / 2, mass, height=bar_h, color=cols, edgecolor="black", linewidth=0.5, hatch="///", alpha=0.75, label="mass %")
    xmax = max([*area, *([r["mass_pct"] for r in rows] if has_mass else [])], default=1.0)
    for i, r in enumerate(rows):
        txt = f"{r['area_pct']:.1f}" + (f" / {r['mass_pct']:.1f}" if has_mass else "")
        ax.text(max(r["area_pct"], r["mass_pct"] or 0) + 0.01 * xmax, i, txt, va="center", fontsize=8)
    if not rows:
        ax.text(0.5, 0.5, "no classified pixels", transform=ax.transAxes, ha="center", va="center", fontsize=11, color="0.4")
    ax.set_yticks(y)
    ax.set_yticklabels([r["phase"] for r in rows], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, xmax * 1.18 + 1e-9)
    ax.set_xlabel("area % / mass %" if has_mass else "area %")
    left = []
    if modal.n_unclassified:
        left.append(f"unclassified {100 * modal.unclassified_fraction:.1f} %")
    if modal.n_low_confidence:
        left.append(f"low confidence {100 * modal.low_confidence_fraction:.1f} %")
    ax.set_title("Modal mineralogy (of classified pixels)" + (f"\n{', '.join(left)} of valid pixels, not included" if left else ""), fontsize=10)
    if has_mass:
        ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)


def _gsd_plot(path: Path, grains: GrainResult, modal: ModalResult, colours: np.ndarray, max_phases: int = 8) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_area = sorted((r for r in modal.rows if r["pixels"] > 0), key=lambda r: -r["area_pct"])
    main = [r["class_id"] for r in by_area[:max_phases]]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for k in main:
        d = [r for r in grains.distribution if r["class_id"] == k]
        if not d:
            continue
        x = [d[0]["ecd_min_um"]] + [r["ecd_max_um"] for r in d]
        yv = [d[0]["cum_area_pct_passing"] - d[0]["area_pct"]] + [r["cum_area_pct_passing"] for r in d]
        ph = grains.phases[k]
        ax.plot(x, yv, "-o", ms=3, color=colours[k], lw=1.8, label=f"{ph['phase']} (n={ph['grains']}, D50={ph['d50_um']:.3g} µm)")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylim(0, 100)
    ax.set_xlabel("equivalent circle diameter, ECD (µm)")
    ax.set_ylabel("cumulative % passing (by area)")
    ax.set_title("Grain-size distribution" + (f" ({len(main)} most abundant phases)" if len(by_area) > max_phases else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if main:
        ax.legend(fontsize=8, loc="upper left", frameon=True)
    else:
        ax.text(0.5, 0.5, "no grains", transform=ax.transAxes, ha="center", va="center", fontsize=11, color="0.4")
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)


def _assoc_plot(path: Path, names: list[str], pct: np.ndarray) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = len(names)
    size = max(4.5, 0.55 * m + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    shown = np.ma.masked_where(np.eye(m, dtype=bool), pct)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    im = ax.imshow(shown, cmap=cmap, vmin=0, vmax=100)
    ax.set_xticks(range(m))
    ax.set_yticks(range(m))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=9)
    ax.set_yticklabels(names, fontsize=9)
    if m <= 20:
        for i in range(m):
            for j in range(m):
                v = pct[i, j]
                if i != j and v > 0:
                    ax.text(j, i, f"{v:.0f}" if v >= 0.5 else "<1", ha="center", va="center", fontsize=7, color="white" if v < 60 else "black")
    if not np.any(pct > 0):
        ax.text(0.5, 0.5, "no boundaries between phases", transform=ax.transAxes, ha="center", va="center", fontsize=11, color="0.3")
    ax.set_xlabel("associated with")
    ax.set_ylabel("phase (row = 100 % of its boundary)")
    ax.set_title("Phase association (% of boundary length)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="%")
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)


def write_mineralogy(
    out_dir: str | os.PathLike,
    labels: np.ndarray,
    valid: np.ndarray,
    class_names: Sequence[str],
    densities: Sequence[float] | np.ndarray | None,
    pixel_size_um: float,
    confidence: np.ndarray | None = None,
    *,
    min_confidence: float = 0.5,
    connectivity: int = 8,
    plots: bool = True,
) -> dict[str, Path]:
    """Write the mineralogy report files (CSVs, PNGs, JSON summary) atomically; return their paths by name.

    Names: modal_csv, grains_csv, grain_summary_csv, grain_size_distribution_csv, association_csv
    (row-normalised %), association_boundary_csv (um), liberation_csv, summary_json, and with
    ``plots`` modal_png, grain_size_png, association_png. Phase colours are
    ``mingraph.plots.phase_colours(len(class_names))``, as in the phase map.
    """
    from .plots import phase_colours

    where = "write_mineralogy"
    names = [str(c) for c in class_names]
    px = _check_pixel_size(where, pixel_size_um)
    modal = modal_mineralogy(labels, valid, names, densities, confidence, min_confidence)
    grains = grain_statistics(labels, valid, px, connectivity, class_names=names)
    assoc = association_matrix(labels, valid, len(names), px)
    lib = liberation(labels, valid, len(names), connectivity=connectivity)
    colours = phase_colours(len(names))
    labels_a = np.asarray(labels)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["modal_csv"] = _write_csv(out / "modal.csv", modal.rows)
    grain_cols = list(grains.grains[0]) if grains.grains else [
        "grain_id", "class_id", "phase", "area_px", "area_um2", "ecd_um", "perimeter_um", "centroid_row",
        "centroid_col", "row_min", "col_min", "row_max", "col_max", "touches_border",
    ]
    paths["grains_csv"] = _write_csv(out / "grains.csv", grains.grains, grain_cols)
    paths["grain_summary_csv"] = _write_csv(out / "grain_summary.csv", grains.phases)
    dist_cols = ["class_id", "phase", "ecd_min_um", "ecd_max_um", "grains", "area_um2", "area_pct", "cum_area_pct_passing", "cum_number_pct_passing"]
    paths["grain_size_distribution_csv"] = _write_csv(out / "grain_size_distribution.csv", grains.distribution, dist_cols)

    # association: the phases present, then unclassified / background where they occur
    m = len(names)
    present = [k for k in range(m) if modal.rows[k]["pixels"] + modal.rows[k]["low_confidence_pixels"] > 0]
    if modal.n_unclassified:
        present.append(m)
    if (~np.asarray(valid, dtype=bool)).any():
        present.append(m + 1)
    cat_names = names + [UNCLASSIFIED, BACKGROUND]
    sub_names = [cat_names[i] for i in present]
    pct = assoc.association_pct[np.ix_(present, present)]
    bnd = assoc.boundary_um[np.ix_(present, present)]
    paths["association_csv"] = _write_csv(
        out / "association.csv",
        [{"phase": sub_names[i], **{sub_names[j]: float(pct[i, j]) for j in range(len(present))}} for i in range(len(present))],
        ["phase", *sub_names],
    )
    paths["association_boundary_csv"] = _write_csv(
        out / "association_boundary_um.csv",
        [{"phase": sub_names[i], **{sub_names[j]: float(bnd[i, j]) for j in range(len(present))}} for i in range(len(present))],
        ["phase", *sub_names],
    )
    lib_rows = [{"class_id": r["class_id"], "phase": names[r["class_id"]], **{k: v for k, v in r.items() if k != "class_id"}} for r in lib]
    paths["liberation_csv"] = _write_csv(out / "liberation.csv", lib_rows)

    if plots:
        paths["modal_png"] = _modal_plot(out / "modal.png", modal, colours)
        paths["grain_size_png"] = _gsd_plot(out / "grain_size_distribution.png", grains, modal, colours)
        paths["association_png"] = _assoc_plot(out / "association.png", sub_names, pct)

    h, w = labels_a.shape
    summary = {
        "field_px": [int(h), int(w)],
        "pixel_size_um": px,
        "field_um": [h * px, w * px],
        **modal.summary(),
        "n_grains": len(grains.grains),
        "n_particles": int(ndimage.label(np.asarray(valid, dtype=bool), structure=ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1))[1]),
        "total_boundary_um": assoc.total_boundary_um,
        "connectivity": connectivity,
        "phases": [
            {
                **{k: modal.rows[c][k] for k in ("class_id", "phase", "pixels", "area_pct", "mass_pct")},
                **{k: grains.phases[c][k] for k in ("grains", "d50_um", "ecd_median_um")},
                "liberated_pct": lib[c]["liberated_pct"],
                "colour": "#%02x%02x%02x" % tuple(int(round(255 * v)) for v in colours[c]),
            }
            for c in range(m)
            if modal.rows[c]["pixels"] > 0
        ],
        "files": {k: p.name for k, p in paths.items()},
    }
    paths["summary_json"] = out / "mineralogy.json"
    summary["files"]["summary_json"] = "mineralogy.json"
    write_text(paths["summary_json"], json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return paths
