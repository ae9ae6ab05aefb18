"""Grain statistics: ECD, perimeter (Crofton), D10/D50/D90 and grain-size distributions per phase."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from mingraph.analyse.mineralogy.inputs import (
    _check_connectivity,
    _check_phase_map,
    _check_pixel_size,
    _class_names,
    _pct,
)
from mingraph.errors import InputError


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
    return GrainResult(
        grains=grains, phases=phases, distribution=distribution, bin_edges_um=edges, grain_map=grain_map
    )
