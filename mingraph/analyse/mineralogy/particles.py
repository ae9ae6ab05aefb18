"""Particles of a mount: separated by epoxy, and where they touch by a watershed on the distance transform.

A particle is a connected component of ``valid`` (specimen pixels; resin, holes and the outside are not
valid). Touching particles are split by the usual automated-mineralogy recipe (e.g. the MLA/QEMSCAN
"de-agglomeration"): markers at the maxima of the Euclidean distance transform of the specimen
(``scipy.ndimage.distance_transform_edt``) at least ``min_distance_px`` apart, then
``skimage.segmentation.watershed`` on the negated distance, only inside components with two or more
markers. Particle composition comes from the grain table (a grain lies in one particle), so it costs
no extra pass over the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse

from mingraph.analyse.mineralogy.inputs import _check_connectivity
from mingraph.errors import InputError


def separate_particles(
    valid: np.ndarray, *, split_touching: bool = True, min_distance_px: float = 8.0, connectivity: int = 8
) -> tuple[np.ndarray, int]:
    """Particle id map (H, W) int32 (0 = not specimen) and the number of particles.

    ``valid`` (H, W) bool. With ``split_touching``, a component with several distance-transform maxima
    (markers: pixels equal to the maximum of the distance within a disc of radius ``min_distance_px``,
    and at least 1 px from the edge, merged when 8-connected) is cut by a watershed on the negated
    distance; ids are then renumbered 1..n in raster order. Raises InputError for a bad mask or radius.
    """
    where = "separate_particles"
    valid = np.asarray(valid)
    if valid.ndim != 2 or valid.dtype != bool:
        raise InputError(where, "valid", f"expected a 2-D boolean mask, got {valid.dtype} {valid.shape}")
    connectivity = _check_connectivity(where, connectivity)
    if not (math.isfinite(float(min_distance_px)) and float(min_distance_px) >= 1):
        raise InputError(where, "min_distance_px", f"expected a radius >= 1 pixel, got {min_distance_px!r}")
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    cc, n = ndimage.label(valid, structure=structure)
    if not split_touching or n == 0:
        return cc.astype(np.int32, copy=False), int(n)
    dist = ndimage.distance_transform_edt(valid).astype(np.float32)
    r = int(math.ceil(min_distance_px))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    peaks = (dist == ndimage.maximum_filter(dist, footprint=yy**2 + xx**2 <= r * r)) & (dist >= 1.5)
    mk, n_mk = ndimage.label(peaks, structure=np.ones((3, 3), bool))
    # components holding two or more markers are split; the others stay as they are
    first = np.zeros(n_mk + 1, np.int64)
    first[mk[peaks]] = cc[peaks]
    per_cc = np.bincount(first[1:], minlength=n + 1)
    multi = per_cc >= 2
    multi[0] = False
    if not multi.any():
        return cc.astype(np.int32, copy=False), int(n)
    from skimage.segmentation import watershed

    region = multi[cc]
    sl = ndimage.find_objects(region.astype(np.uint8))[0]
    markers = np.where(region[sl] & (mk[sl] > 0), mk[sl], 0)
    ws = watershed(-dist[sl], markers, mask=region[sl], connectivity=2 if connectivity == 8 else 1)
    out = cc.astype(np.int64)
    sub = out[sl]
    sub[region[sl]] = ws[region[sl]] + n  # marker ids above the component ids
    from skimage.measure import label

    # renumber 1..n in raster order (each id is one connected region, so labelling keeps the regions)
    out, n_out = label(out, background=0, connectivity=2 if connectivity == 8 else 1, return_num=True)
    return out.astype(np.int32, copy=False), int(n_out)


@dataclass
class ParticleResult:
    """Particles and what they hold; row p-1 of every array is particle id p.

    ``area_px`` (n,) every valid pixel (classified or not), ``classified_px`` (n,) classified pixels,
    ``composition_px`` (n, n_classes) CSR pixel counts per class, ``free_edges`` / ``locked_edges``
    (n, n_classes) CSR 4-neighbour edges of each phase against the outside of the particle / another
    classified phase inside it, ``ecd_um`` (n,) ECD of the whole particle, ``touches_border`` (n,).
    """

    particle_map: np.ndarray
    n: int
    area_px: np.ndarray
    classified_px: np.ndarray
    composition_px: sparse.csr_matrix
    free_edges: sparse.csr_matrix
    locked_edges: sparse.csr_matrix
    ecd_um: np.ndarray
    touches_border: np.ndarray

    def fractions(self) -> sparse.csr_matrix:
        """(n, n_classes) area fraction of each phase in each particle, of its classified pixels."""
        inv = np.divide(1.0, self.classified_px, out=np.zeros(self.n), where=self.classified_px > 0)
        return sparse.diags(inv) @ self.composition_px


def particle_properties(
    particle_map: np.ndarray,
    n_particles: int,
    grains: dict[str, np.ndarray],
    n_classes: int,
    pixel_size_um: float,
) -> ParticleResult:
    """Sum a grain table (:func:`~mingraph.analyse.mineralogy.grains.grain_table`) into particles."""
    m = n_particles + 1
    area = np.bincount(particle_map.ravel(), minlength=m)
    edge = np.concatenate([particle_map[0], particle_map[-1], particle_map[:, 0], particle_map[:, -1]])
    border = np.bincount(edge, minlength=m) > 0
    p = grains["particle_id"] - 1
    k = grains["class_id"]
    shape = (n_particles, n_classes)

    def mat(v):
        return sparse.coo_matrix((np.asarray(v, np.float64), (p, k)), shape=shape).tocsr()

    comp = mat(grains["area_px"])
    px = float(pixel_size_um)
    return ParticleResult(
        particle_map=particle_map,
        n=n_particles,
        area_px=area[1:],
        classified_px=np.asarray(comp.sum(axis=1)).ravel(),
        composition_px=comp,
        free_edges=mat(grains["free_edges"]),
        locked_edges=mat(grains["locked_edges"]),
        ecd_um=2.0 * np.sqrt(area[1:] * px * px / math.pi),
        touches_border=border[1:],
    )
