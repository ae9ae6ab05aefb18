"""Particles of a mount: separated by epoxy, and where they touch by a watershed on the distance transform.

A particle is a connected component of ``valid`` (specimen pixels; resin, holes and the outside are not
valid). Touching particles are split by the usual automated-mineralogy recipe (e.g. the MLA/QEMSCAN
"de-agglomeration"): markers at the maxima of the Euclidean distance transform of the specimen
(``scipy.ndimage.distance_transform_edt``) at least ``min_distance_px`` apart, then
``skimage.segmentation.watershed`` on the negated distance, only inside components with two or more
markers (on a subsampled grid for very large maps). Particle composition comes from the grain table (a grain lies in one particle), so it costs
no extra pass over the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse

from mingraph.analyse.mineralogy.validate import check_connectivity
from mingraph.common.errors import InputError


def separate_particles(
    valid: np.ndarray,
    *,
    split_touching: bool = True,
    min_distance_px: float = 8.0,
    connectivity: int = 8,
    work_px: int = 2_000_000,
) -> tuple[np.ndarray, int]:
    """Particle id map (H, W) int32 (0 = not specimen) and the number of particles.

    ``valid`` (H, W) bool. With ``split_touching``, a component with several distance-transform maxima
    (markers: pixels equal to the maximum of the Euclidean distance to the resin within a square of
    half-side ``min_distance_px``, at least 1.5 px deep, merged when 8-connected) is cut by a watershed
    on the negated distance. Maps above ``work_px`` pixels are split on a grid of f x f blocks,
    f = ceil(sqrt(H W / work_px)) (cuts then lie on block edges, within f pixels of the
    full-resolution watershed). Ids: the unsplit
    components in raster order of their first pixel, then the split parts. Raises InputError for a
    bad mask or radius.
    """
    where = "separate_particles"
    valid = np.asarray(valid)
    if valid.ndim != 2 or valid.dtype != bool:
        raise InputError(where, "valid", f"expected a 2-D boolean mask, got {valid.dtype} {valid.shape}")
    connectivity = check_connectivity(where, connectivity)
    if not (math.isfinite(float(min_distance_px)) and float(min_distance_px) >= 1):
        raise InputError(where, "min_distance_px", f"expected a radius >= 1 pixel, got {min_distance_px!r}")
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    cc, n = ndimage.label(valid, structure=structure)
    if not split_touching or n == 0:
        return cc.astype(np.int32, copy=False), int(n)
    h, w = valid.shape
    f = max(1, math.ceil(math.sqrt(h * w / float(work_px))))
    # the grid: each cell holds the largest component id of its f x f block (a max-pool), so every
    # specimen pixel's cell is specimen; a cell shared by two components (a gap thinner than f) is rare
    cc_s = _block_max(cc, f)
    v_s = cc_s > 0
    dist = (ndimage.distance_transform_edt(v_s) * f).astype(np.float32)
    r = max(1, int(math.ceil(min_distance_px / f)))
    peaks = (dist == ndimage.maximum_filter(dist, size=2 * r + 1)) & (dist >= 1.5)
    mk, n_mk = ndimage.label(peaks, structure=np.ones((3, 3), bool))
    comp_of = np.zeros(n_mk + 1, np.int64)
    comp_of[mk[peaks]] = cc_s[peaks]
    multi = np.bincount(comp_of[1:], minlength=n + 1) >= 2
    multi[0] = False
    if not multi.any():
        return cc.astype(np.int32, copy=False), int(n)
    from skimage.segmentation import watershed

    region_s = multi[cc_s]
    ws = watershed(
        -dist, np.where(region_s, mk, 0), mask=region_s, connectivity=2 if connectivity == 8 else 1
    )
    # final ids: unsplit components 1.., then the markers of split ones; a component with markers
    # whose cells all went elsewhere keeps its first marker
    first = np.zeros(n + 1, np.int64)
    first[comp_of[:0:-1]] = np.arange(n_mk, 0, -1)
    used = np.concatenate([~multi, multi[comp_of[1:]]])
    used[0] = False
    remap = np.zeros(used.size, np.int32)
    remap[used] = np.arange(1, int(used.sum()) + 1, dtype=np.int32)
    # a pixel whose component's id is not in its cell's: the component's own id (or first marker)
    own = np.where(multi, first + n, np.arange(n + 1))
    if f == 1:
        return remap[np.where(region_s, ws + n, own[cc])], int(used.sum())
    ws = np.where(region_s & (comp_of[ws] == cc_s), ws + n, own[cc_s])  # the id of each cell
    out = remap[ws]
    out = np.repeat(np.repeat(out, f, 0), f, 1)[:h, :w]
    cell = np.repeat(np.repeat(cc_s, f, 0), f, 1)[:h, :w]
    odd = np.flatnonzero(cell != cc)  # pixels of another component than their cell's (or resin)
    out.ravel()[odd] = remap[own[cc.ravel()[odd]]]
    return out, int(used.sum())


def _block_max(a: np.ndarray, f: int) -> np.ndarray:
    """Max over f x f blocks (the last blocks padded with 0): (ceil(H/f), ceil(W/f))."""
    if f == 1:
        return a
    h, w = a.shape
    hp, wp = -(-h // f) * f, -(-w // f) * f
    if (hp, wp) != (h, w):
        a = np.pad(a, ((0, hp - h), (0, wp - w)))
    return a.reshape(hp // f, f, wp // f, f).max(axis=(1, 3))


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
