"""A sample's mineralogy from its fields: each field reduced on its own (in parallel), then summed.

:func:`field_figures` reduces one field's phase map to what the sample needs, counting only what
the field *owns* (mingraph.acquire.sample.owned_mask: where fields overlap, each sample pixel has
one owner):

- modal: classified and low-confidence pixel counts per class over owned pixels;
- grains and particles of the whole field (so a grain's size is the field's view of it), each
  kept by the field that owns its centroid pixel; ``touches_border`` flags a grain or particle cut
  by the field's edge (its size is a lower bound), as on one field;
- association: phase boundary over the pixel pairs whose left/upper pixel is owned.

:func:`combine_fields` sums these over fields into the figures of
:func:`~mingraph.analyse.mineralogy.process.sample_mineralogy` (modal, grain sizes, particles,
liberation, locking, grade–recovery, with bootstrap intervals over the sample's particles), so a
sample is written by the same table writer as one field.  Summing is exact: the figures of one
field that owns all its pixels equal those of sample_mineralogy on its map.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from mingraph.analyse.mineralogy.association import AssociationResult, association_matrix
from mingraph.analyse.mineralogy.grains import (
    GRAIN_COLUMNS,
    GrainResult,
    grain_table,
    label_grains,
    phase_size_tables,
)
from mingraph.analyse.mineralogy.minerals import ClassMinerals
from mingraph.analyse.mineralogy.modal import ModalResult, modal_from_counts, modal_mineralogy
from mingraph.analyse.mineralogy.particles import ParticleResult, particle_properties, separate_particles
from mingraph.analyse.mineralogy.process import SampleMineralogy, mineralogy_of_particles
from mingraph.analyse.mineralogy.validate import check_pixel_size, classified_labels

GRAIN_KEYS = tuple(c for c in GRAIN_COLUMNS if c not in ("grain_id", "phase"))  # the numeric columns
PARTICLE_KEYS = ("area_px", "ecd_um", "touches_border", "centroid_row", "centroid_col")


def field_figures(
    labels: np.ndarray,
    valid: np.ndarray,
    confidence: np.ndarray | None,
    owned: np.ndarray,
    pixel_size_um: float,
    n_classes: int,
    *,
    min_confidence: float = 0.5,
    split_touching: bool = True,
    connectivity: int = 8,
) -> dict[str, np.ndarray]:
    """One field's figures as flat arrays (an .npz): ``modal_counts``/``modal_low`` (n,) int64,
    ``modal_n`` [pixels, valid, unclassified] of owned pixels, ``boundary_px`` (n+2, n+2) int64
    shared pixel edges, ``grain_<key>`` and ``particle_<key>`` columns (one row per grain /
    particle of the field, ``*_owned`` bool saying which the field counts).

    ``labels`` (H, W) int (-1 unclassified), ``valid`` (H, W) bool, ``confidence`` (H, W) float or
    None, ``owned`` (H, W) bool, ``pixel_size_um`` µm.  Raises InputError for bad maps."""
    where = "field_figures"
    px = check_pixel_size(where, pixel_size_um)
    n = int(n_classes)
    own = np.asarray(owned, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    modal = modal_mineralogy(
        labels, valid & own, [str(k) for k in range(n)], None, confidence, min_confidence
    )
    lab, valid, _, _ = classified_labels(labels, valid, n, confidence, min_confidence, where)
    pmap, n_p = separate_particles(valid, split_touching=split_touching, connectivity=connectivity)
    gmap, n_g = label_grains(lab, pmap, n, connectivity)
    gt = grain_table(lab, gmap, n_g, px, pmap)
    parts = particle_properties(pmap, n_p, gt, n, px)
    rr, cc = np.indices(pmap.shape)
    area = np.maximum(np.bincount(pmap.ravel(), minlength=n_p + 1)[1:], 1)
    p_row = np.bincount(pmap.ravel(), rr.ravel(), minlength=n_p + 1)[1:] / area
    p_col = np.bincount(pmap.ravel(), cc.ravel(), minlength=n_p + 1)[1:] / area
    boundary = association_matrix(lab, valid, n, 1.0, owned=own).boundary_um.astype(np.int64)

    def owns(r, c):
        h, w = own.shape
        r = np.clip(np.floor(r).astype(np.int64), 0, h - 1)
        c = np.clip(np.floor(c).astype(np.int64), 0, w - 1)
        return own[r, c]

    low = np.array([row["low_confidence_pixels"] for row in modal.rows], np.int64)
    out = {
        "modal_counts": np.array([row["pixels"] for row in modal.rows], np.int64),
        "modal_low": low,
        "modal_n": np.array([int(own.sum()), modal.n_valid, modal.n_unclassified], np.int64),
        "boundary_px": boundary,
        "grain_owned": owns(gt["centroid_row"], gt["centroid_col"]),
        "particle_owned": owns(p_row, p_col),
        "particle_area_px": parts.area_px,
        "particle_ecd_um": parts.ecd_um,
        "particle_touches_border": parts.touches_border,
        "particle_centroid_row": p_row,
        "particle_centroid_col": p_col,
    }
    out.update({f"grain_{k}": np.asarray(gt[k]) for k in GRAIN_KEYS})
    return out


def _combined_parts(figs: Sequence[dict], n: int) -> tuple[ParticleResult, dict]:
    """The owned particles of every field as one ParticleResult (renumbered; each with every grain
    of it), and the owned grains' columns (``field``: the field's position in ``figs``;
    ``particle_id`` renumbered, 0 when another field counts the particle)."""
    cols: dict[str, list] = {k: [] for k in (*GRAIN_KEYS, "field")}
    p_cols: dict[str, list] = {k: [] for k in PARTICLE_KEYS}
    comp: dict[str, list] = {
        k: [] for k in ("particle_id", "class_id", "area_px", "free_edges", "locked_edges")
    }
    offset = 0
    for f, fig in enumerate(figs):
        keep_p = np.asarray(fig["particle_owned"], bool)
        new_id = np.zeros(keep_p.size + 1, np.int64)
        new_id[1:][keep_p] = offset + 1 + np.arange(int(keep_p.sum()))
        offset += int(keep_p.sum())
        for k in PARTICLE_KEYS:
            p_cols[k].append(np.asarray(fig[f"particle_{k}"])[keep_p])
        pid = new_id[np.asarray(fig["grain_particle_id"], np.int64)]
        for k in comp:
            comp[k].append(pid[pid > 0] if k == "particle_id" else np.asarray(fig[f"grain_{k}"])[pid > 0])
        keep_g = np.asarray(fig["grain_owned"], bool)
        for k in GRAIN_KEYS:
            cols[k].append((pid if k == "particle_id" else np.asarray(fig[f"grain_{k}"]))[keep_g])
        cols["field"].append(np.full(int(keep_g.sum()), f, np.int64))
    g = {k: np.concatenate(v) for k, v in cols.items()}
    p = {k: np.concatenate(v) for k, v in p_cols.items()}
    c = {k: np.concatenate(v) for k, v in comp.items()}

    def mat(v):
        ij = (c["particle_id"] - 1, c["class_id"])
        return sparse.coo_matrix((np.asarray(v, np.float64), ij), shape=(offset, n)).tocsr()

    composition = mat(c["area_px"])
    parts = ParticleResult(
        particle_map=np.zeros((0, 0), np.int32),
        n=offset,
        area_px=p["area_px"].astype(np.int64),
        classified_px=np.asarray(composition.sum(axis=1)).ravel(),
        composition_px=composition,
        free_edges=mat(c["free_edges"]),
        locked_edges=mat(c["locked_edges"]),
        ecd_um=p["ecd_um"].astype(np.float64),
        touches_border=p["touches_border"].astype(bool),
    )
    return parts, g


def combine_fields(
    figs: Sequence[dict],
    minerals: ClassMinerals,
    pixel_size_um: float,
    *,
    min_confidence: float | None = 0.5,
    targets: Sequence[int] | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> tuple[ModalResult, SampleMineralogy, AssociationResult]:
    """The sample's modal mineralogy, process mineralogy and association from its fields' figures
    (:func:`field_figures`, in field order).  Grains in ``res.grains.grains`` carry a ``field``
    column (index into ``figs``) and ``touches_border`` = cut by that field's edge."""
    names = list(minerals.names)
    n = len(names)
    px = float(pixel_size_um)
    counts = sum(np.asarray(f["modal_counts"], np.int64) for f in figs)
    low = sum(np.asarray(f["modal_low"], np.int64) for f in figs)
    tot = sum(np.asarray(f["modal_n"], np.int64) for f in figs)
    dens = np.asarray(minerals.densities, dtype=np.float64)
    modal = modal_from_counts(
        counts,
        low,
        names,
        dens,
        n_pixels=int(tot[0]),
        n_valid=int(tot[1]),
        n_unclassified=int(tot[2]),
        min_confidence=min_confidence,
    )
    parts, g = _combined_parts(figs, n)
    g["grain_id"] = np.arange(1, g["class_id"].size + 1)
    g["phase"] = np.asarray(names, dtype=object)[g["class_id"]] if g["class_id"].size else np.zeros(0, object)
    grains = GrainResult(g, *phase_size_tables(g, names), grain_map=None)
    res = mineralogy_of_particles(
        parts,
        grains,
        minerals,
        labels=None,
        n_valid=int(tot[1]),
        n_unclassified=int(tot[2]),
        n_low_confidence=int(low.sum()),
        min_confidence=min_confidence,
        targets=targets,
        n_boot=n_boot,
        seed=seed,
    )
    boundary = sum(np.asarray(f["boundary_px"], np.float64) for f in figs) * px
    assoc = AssociationResult(names=names + ["unclassified", "background"], boundary_um=boundary)
    return modal, res, assoc
