"""The process-mineralogy figures of one phase map, with 95 % bootstrap intervals, in one call.

:func:`sample_mineralogy` applies the unsure-pixel rule once
(:func:`~mingraph.analyse.mineralogy.validate.classified_labels`), separates particles, labels grains
inside particles, and derives modal %, calculated assay, deportment, liberation (composition and
free surface, per size class), cumulative yield, locking and grade–recovery from the same
classified pixels, so their totals agree. Intervals resample particles (grains when the map holds
fewer than ``min_units`` particles, e.g. a polished section without resin; liberation intervals are
then not given).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from mingraph.analyse.mineralogy import liberation as lib
from mingraph.analyse.mineralogy.assay import calculated_assay, deportment
from mingraph.analyse.mineralogy.bootstrap import bootstrap_sums, interval, percent
from mingraph.analyse.mineralogy.grains import (
    GrainResult,
    grain_table,
    label_grains,
    phase_size_tables,
    size_classes_um,
)
from mingraph.analyse.mineralogy.minerals import ClassMinerals
from mingraph.analyse.mineralogy.particles import ParticleResult, particle_properties, separate_particles
from mingraph.analyse.mineralogy.validate import check_pixel_size, classified_labels
from mingraph.common.errors import InputError


@dataclass
class TargetLiberation:
    """Liberation figures of one target phase (see :mod:`~mingraph.analyse.mineralogy.liberation`)."""

    class_id: int
    by_composition: dict[str, np.ndarray]
    by_surface: dict[str, np.ndarray]
    composition_ci: np.ndarray | None  # (2, 12) for all sizes
    surface_ci: np.ndarray | None
    yield_pct: np.ndarray  # (101,) at grades 0..100 %
    yield_ci: np.ndarray | None  # (2, 12) at the class lower edges
    locking: dict[str, Any]
    locking_ci: np.ndarray | None  # (2, n_classes + 3) % of the target
    grade_recovery: dict[str, Any]


@dataclass
class SampleMineralogy:
    """Everything :func:`sample_mineralogy` derives; arrays are in class-id / element order."""

    names: list[str]
    minerals: ClassMinerals
    labels: np.ndarray | None = field(
        repr=False
    )  # classified labels (-1 = unclassified or not specimen); None for many fields
    n_valid: int
    n_unclassified: int
    n_low_confidence: int
    min_confidence: float | None
    particles: ParticleResult = field(repr=False)
    grains: Any = field(repr=False)  # GrainResult
    size_edges_um: np.ndarray
    pixels: np.ndarray  # (n,) classified pixels per class
    area_pct: np.ndarray
    area_ci: np.ndarray  # (2, n)
    mass_pct: np.ndarray  # (n,) NaN where the density is unknown
    mass_ci: np.ndarray
    assay_wt_pct: np.ndarray  # (n_elements,)
    assay_ci: np.ndarray
    deportment_pct: np.ndarray  # (n, n_elements)
    covered_mass_pct: float  # mass % of the classes with both density and formula
    bootstrap_unit: str
    n_units: int
    n_boot: int
    targets: list[TargetLiberation]


def _mass_pct(area_sums: np.ndarray, dens: np.ndarray) -> np.ndarray:
    known = np.isfinite(dens)
    m = area_sums * np.where(known, dens, 0.0)
    out = percent(m)
    return np.where(known, out, np.nan)


def sample_mineralogy(
    labels: np.ndarray,
    valid: np.ndarray,
    pixel_size_um: float,
    minerals: ClassMinerals,
    *,
    confidence: np.ndarray | None = None,
    min_confidence: float = 0.5,
    targets: Sequence[int] | None = None,
    split_touching: bool = True,
    min_distance_px: float = 8.0,
    connectivity: int = 8,
    trace_pct: float = 0.0,
    n_boot: int = 200,
    seed: int = 0,
    min_units: int = 30,
) -> SampleMineralogy:
    """Modal, assay, deportment, grains, particles and liberation of a phase map, with 95 % intervals.

    ``labels`` (H, W) int class ids (-1 = unclassified), ``valid`` (H, W) bool specimen mask,
    ``pixel_size_um`` µm, ``minerals`` from :func:`~mingraph.analyse.mineralogy.minerals.class_minerals`,
    ``confidence`` (H, W) in [0, 1] or None. ``targets``: class ids whose liberation is computed
    (default: every phase present). Raises InputError for bad maps, thresholds or targets.
    """
    where = "sample_mineralogy"
    px = check_pixel_size(where, pixel_size_um)
    names = list(minerals.names)
    n = len(names)
    lab, valid, n_unc, n_low = classified_labels(labels, valid, n, confidence, min_confidence, where)
    pmap, n_p = separate_particles(
        valid, split_touching=split_touching, min_distance_px=min_distance_px, connectivity=connectivity
    )
    # the checked, classified map goes straight to the grain passes (grain_statistics would re-check it)
    gmap, n_g = label_grains(lab, pmap, n, connectivity)
    gt = grain_table(lab, gmap, n_g, px, pmap, names)
    grains = GrainResult(gt, *phase_size_tables(gt, names), grain_map=gmap)
    parts = particle_properties(pmap, n_p, grains.grains, n, px)
    return mineralogy_of_particles(
        parts,
        grains,
        minerals,
        labels=lab,
        n_valid=int(valid.sum()),
        n_unclassified=n_unc,
        n_low_confidence=n_low,
        min_confidence=None if confidence is None else float(min_confidence),
        targets=targets,
        trace_pct=trace_pct,
        n_boot=n_boot,
        seed=seed,
        min_units=min_units,
    )


def mineralogy_of_particles(
    parts: ParticleResult,
    grains: GrainResult,
    minerals: ClassMinerals,
    *,
    labels: np.ndarray | None,
    n_valid: int,
    n_unclassified: int,
    n_low_confidence: int,
    min_confidence: float | None,
    targets: Sequence[int] | None = None,
    trace_pct: float = 0.0,
    n_boot: int = 200,
    seed: int = 0,
    min_units: int = 30,
) -> SampleMineralogy:
    """The figures of :func:`sample_mineralogy` from particles and grains already measured (one
    field's, or many fields' concatenated: mingraph.analyse.mineralogy.fields).  ``labels`` (H, W) the
    classified map, or None when there is no single map (a sample of many fields)."""
    where = "sample_mineralogy"
    names = list(minerals.names)
    n = len(names)
    n_p = parts.n
    pixels = np.asarray(parts.composition_px.sum(axis=0)).ravel()
    present = np.flatnonzero(pixels > 0)
    if targets is None:
        targets = [int(k) for k in present]
    for t in targets:
        if not (0 <= int(t) < n):
            raise InputError(where, "targets", f"class id {t!r} outside [0, {n - 1}]")
    size_edges = size_classes_um(parts.ecd_um[parts.classified_px > 0], step=2.0)

    by_particles = n_p >= min_units
    if by_particles:
        unit_comp = parts.composition_px
    else:
        g = grains.grains
        unit_comp = sparse.coo_matrix(
            (g["area_px"].astype(np.float64), (np.arange(g["area_px"].size), g["class_id"])),
            shape=(g["area_px"].size, n),
        ).tocsr()
    blocks = [unit_comp]
    per_target = []
    for t in targets:
        t = int(t)
        comp_m = lib.liberation_matrix(parts, t, "composition")
        surf_m = lib.liberation_matrix(parts, t, "surface")
        lock = lib.locking(parts, t, trace_pct)
        per_target.append((t, comp_m, surf_m, lock))
        if by_particles:
            blocks += [comp_m, surf_m, lock["unit_matrix"]]
    reps = bootstrap_sums(sparse.hstack(blocks).tocsr(), n_boot, seed)

    dens = np.asarray(minerals.densities, dtype=np.float64)
    area_pct = percent(pixels)
    area_ci = interval(percent(reps[:, :n]))
    mass_pct = _mass_pct(pixels, dens)
    mass_reps = _mass_pct(reps[:, :n], dens)
    mass_ci = interval(mass_reps)
    comp = minerals.composition
    assay = calculated_assay(mass_pct, comp)
    assay_ci = interval(calculated_assay(mass_reps, comp))
    covered = float(np.nansum(np.where(minerals.has_formula, mass_pct, 0.0)))

    out_targets = []
    col = n
    for t, comp_m, surf_m, lock in per_target:
        bc = lib.liberation_by_size(parts, t, size_edges, "composition")
        bs = lib.liberation_by_size(parts, t, size_edges, "surface")
        cci = sci = yci = lci = None
        if by_particles:
            c_reps = percent(reps[:, col : col + lib.N_LIB])
            s_reps = percent(reps[:, col + lib.N_LIB : col + 2 * lib.N_LIB])
            l_reps = percent(reps[:, col + 2 * lib.N_LIB : col + 2 * lib.N_LIB + n + 3])
            col += 2 * lib.N_LIB + n + 3
            cci, sci, lci = interval(c_reps), interval(s_reps), interval(l_reps)
            # yield at each class's lower edge: % of target in this class or richer
            yci = interval(np.cumsum(c_reps[:, ::-1], axis=1)[:, ::-1])
        gr = lib.grade_recovery(parts, t, dens)
        gr["ci"] = (
            lib.grade_recovery_interval(parts, t, dens, n_boot=n_boot, seed=seed) if by_particles else None
        )
        out_targets.append(
            TargetLiberation(
                class_id=t,
                by_composition=bc,
                by_surface=bs,
                composition_ci=cci,
                surface_ci=sci,
                yield_pct=lib.cumulative_yield(parts, t),
                yield_ci=yci,
                locking=lock,
                locking_ci=lci,
                grade_recovery=gr,
            )
        )
    return SampleMineralogy(
        names=names,
        minerals=minerals,
        labels=labels,
        n_valid=int(n_valid),
        n_unclassified=int(n_unclassified),
        n_low_confidence=int(n_low_confidence),
        min_confidence=min_confidence,
        particles=parts,
        grains=grains,
        size_edges_um=size_edges,
        pixels=pixels,
        area_pct=area_pct,
        area_ci=area_ci,
        mass_pct=mass_pct,
        mass_ci=mass_ci,
        assay_wt_pct=assay,
        assay_ci=assay_ci,
        deportment_pct=deportment(mass_pct, comp),
        covered_mass_pct=covered if math.isfinite(covered) else 0.0,
        bootstrap_unit="particles" if by_particles else "grains",
        n_units=unit_comp.shape[0],
        n_boot=int(n_boot),
        targets=out_targets,
    )
