"""Microstructure: grain maps with inclusions, veins, intergrowths, and invalid regions.

A tile is either a polished section of rock or a particle mount (crushed ore in epoxy). Grains are
Voronoi cells of an inhomogeneous Poisson point process (a smooth log-normal intensity gives a broad,
locally varying grain-size distribution) seen through a smooth domain warp, so boundaries curve.
Minerals come from one of a few assemblages (granite, Pitinga albite granite, greisen, pegmatite,
sulphide vein, Fe-Ti oxide, metamorphic, carbonate-evaporite), each with majors, accessories and vein
fillings. On top: perthite / graphic / exsolution lamellae, accessory inclusions (biased toward rare
phases so every class appears in a few hundred tiles), veins, and invalid regions (epoxy between
particles and in cracks, plucked holes, the edge of the mount). All lengths are in µm and scale with
the pixel size; everything follows from the numpy Generator passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mingraph.acquire.simulate.minerals import MINERALS, mineral_index

SPECIMEN, EPOXY_KIND, HOLE, OUTSIDE = 0, 1, 2, 3
"""Pixel kinds: specimen (valid), epoxy (resin between particles, in cracks), hole, beyond the edge."""

DEFAULT_TEXTURE_PARAMS: dict = {
    "pixel_size_um": 1.0,
    "grain_um": 30.0,  # median grain diameter; each tile scales it by a log-normal factor
    "grain_size_spread": 0.5,  # σ of ln(tile grain-size factor)
    "particle_um": 110.0,  # median particle size in mounts
    "mount_probability": 0.6,  # fraction of tiles that are particle mounts (epoxy between particles)
    "inclusions_per_mm2": 350.0,  # accessory inclusions per mm² of tile
    "rare_inclusion_share": 0.35,  # share of inclusions drawn uniformly from the whole library
    "vein_probability": 0.3,
    "intergrowth_probability": 0.35,  # chance that a host grain carries lamellae
    "hole_probability": 0.3,  # tiles with plucked holes / pores
    "crack_probability": 0.25,  # tiles with epoxy-filled cracks
    "edge_probability": 0.06,  # tiles crossed by the edge of the mount
}

# fmt: off
# name, weight, majors {mineral: share}, accessories, vein fillings
ASSEMBLAGES: list[tuple[str, float, dict[str, float], list[str], list[str]]] = [
    ("albite granite (Pitinga)", 0.24,
     {"albite": 30, "quartz": 25, "microcline": 20, "cryolite": 9, "polylithionite": 5, "zinnwaldite": 4, "annite": 3},
     ["zircon", "cassiterite", "pyrochlore", "columbite", "xenotime", "thorite", "fluorite", "gahnite",
      "galena", "sphalerite", "hematite", "magnetite", "tantalite"],
     ["quartz", "fluorite", "cryolite", "hematite", "galena"]),
    ("biotite granite", 0.18,
     {"quartz": 30, "microcline": 25, "albite": 25, "annite": 9, "muscovite": 5, "magnesio-hornblende": 3, "phlogopite": 2},
     ["zircon", "fluorapatite", "monazite", "titanite", "ilmenite", "magnetite", "xenotime", "thorite",
      "fluorite", "rutile", "pyrite", "epidote", "clinochlore"],
     ["quartz", "clinochlore", "epidote", "calcite", "fluorite"]),
    ("greisen", 0.1,
     {"quartz": 40, "muscovite": 18, "topaz": 15, "zinnwaldite": 10, "fluorite": 8, "cassiterite": 5, "kaolinite": 4},
     ["cassiterite", "arsenopyrite", "molybdenite", "columbite", "sphalerite", "chalcopyrite", "pyrite",
      "schorl", "fluorapatite", "rutile", "hematite"],
     ["quartz", "fluorite", "cassiterite", "topaz"]),
    ("pegmatite", 0.1,
     {"microcline": 30, "quartz": 25, "albite": 20, "muscovite": 8, "spodumene": 7, "beryl": 4, "polylithionite": 4, "schorl": 3},
     ["tantalite", "columbite", "cassiterite", "gahnite", "zircon", "fluorapatite", "xenotime", "monazite", "almandine"],
     ["quartz", "albite", "muscovite"]),
    ("sulphide vein", 0.12,
     {"quartz": 25, "pyrite": 15, "sphalerite": 12, "galena": 10, "chalcopyrite": 8, "pyrrhotite": 8,
      "arsenopyrite": 6, "calcite": 8, "siderite": 4, "barite": 4},
     ["molybdenite", "cassiterite", "hematite", "magnetite", "fluorite", "rhodochrosite", "dolomite", "clinochlore"],
     ["quartz", "calcite", "pyrite", "galena", "barite", "siderite"]),
    ("Fe-Ti oxide", 0.07,
     {"magnetite": 30, "ilmenite": 20, "hematite": 12, "rutile": 5, "titanite": 5, "magnesio-hornblende": 10,
      "almandine": 5, "clinochlore": 7, "epidote": 6},
     ["pyrite", "pyrrhotite", "chalcopyrite", "fluorapatite", "zircon", "titanite"],
     ["hematite", "quartz", "calcite", "clinochlore"]),
    ("metamorphic", 0.09,
     {"quartz": 25, "almandine": 10, "cordierite": 10, "muscovite": 10, "annite": 10, "clinochlore": 10,
      "epidote": 8, "kaolinite": 7, "magnesio-hornblende": 7, "albite": 5},
     ["rutile", "ilmenite", "titanite", "zircon", "monazite", "fluorapatite", "schorl", "pyrite", "magnetite"],
     ["quartz", "calcite", "epidote", "clinochlore"]),
    ("carbonate-evaporite", 0.1,
     {"calcite": 30, "dolomite": 20, "siderite": 8, "rhodochrosite": 5, "gypsum": 10, "anhydrite": 10,
      "halite": 8, "barite": 5, "fluorite": 4},
     ["pyrite", "quartz", "sphalerite", "galena", "hematite", "fluorapatite", "rhodochrosite"],
     ["calcite", "gypsum", "halite", "barite", "fluorite"]),
]
# fmt: on

# host -> (guest, lamella period µm, guest share): perthite, graphic granite, exsolution lamellae
INTERGROWTHS: dict[str, list[tuple[str, float, float]]] = {
    "microcline": [("albite", 5.0, 0.3), ("quartz", 12.0, 0.3)],
    "albite": [("microcline", 6.0, 0.2)],
    "magnetite": [("ilmenite", 4.0, 0.25)],
    "hematite": [("ilmenite", 4.0, 0.2)],
    "sphalerite": [("chalcopyrite", 4.0, 0.12)],
    "annite": [("clinochlore", 5.0, 0.35)],
    "pyrrhotite": [("pyrite", 6.0, 0.2)],
}


@dataclass
class Texture:
    """Phase labels (−1 where not specimen), pixel kinds and a grain id per pixel (for BSE jitter)."""

    labels: np.ndarray  # (H, W) int32
    kind: np.ndarray  # (H, W) int8: SPECIMEN, EPOXY_KIND, HOLE, OUTSIDE
    grain: np.ndarray  # (H, W) int32
    assemblage: str


def smooth_noise(rng: np.random.Generator, h: int, w: int, scale_px: float) -> np.ndarray:
    """Value noise of about unit variance with correlation length ~scale_px (separable smoothstep interpolation)."""
    scale_px = max(float(scale_px), 1.0)
    gh, gw = int(math.ceil(h / scale_px)) + 2, int(math.ceil(w / scale_px)) + 2
    g = rng.standard_normal((gh, gw)).astype(np.float32) * np.float32(1.45)

    def weights(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = (np.arange(n) + 0.5) / scale_px + 0.5
        i = np.floor(x).astype(np.int64)
        f = (x - i).astype(np.float32)
        return i, f * f * (3 - 2 * f)

    iy, fy = weights(h)
    ix, fx = weights(w)
    rows = g[iy] * (1 - fy)[:, None] + g[iy + 1] * fy[:, None]
    return rows[:, ix] * (1 - fx)[None, :] + rows[:, ix + 1] * fx[None, :]


def _voronoi(
    rng: np.random.Generator, h: int, w: int, cell_px: float, spread: float, warp: float
) -> np.ndarray:
    """Warped Voronoi cell id per pixel; seeds from a Poisson process with log-normal intensity."""
    pad = int(math.ceil(warp * cell_px)) + 1
    hp, wp = h + 2 * pad, w + 2 * pad
    density_field = smooth_noise(rng, hp, wp, 4.0 * cell_px)
    mean_n = hp * wp / (cell_px**2)
    lam_max = math.exp(2.0 * spread)
    n_cand = int(rng.poisson(mean_n * lam_max)) + 1
    ys = rng.integers(0, hp, n_cand)
    xs = rng.integers(0, wp, n_cand)
    accept = rng.random(n_cand) * lam_max < np.exp(spread * density_field[ys, xs])
    accept[0] = True  # at least one cell
    ys, xs = ys[accept], xs[accept]
    seed_img = np.zeros((hp, wp), dtype=np.int32)
    seed_img[ys, xs] = np.arange(1, ys.size + 1, dtype=np.int32)
    idx = ndimage.distance_transform_edt(seed_img == 0, return_distances=False, return_indices=True)
    cells = seed_img[idx[0], idx[1]]
    del idx
    amp = warp * cell_px
    dy = smooth_noise(rng, h, w, 1.5 * cell_px) * np.float32(amp)
    dx = smooth_noise(rng, h, w, 1.5 * cell_px) * np.float32(amp)
    dy += smooth_noise(rng, h, w, 0.35 * cell_px) * np.float32(0.25 * amp)
    dx += smooth_noise(rng, h, w, 0.35 * cell_px) * np.float32(0.25 * amp)
    yy = np.clip(np.rint(np.arange(h, dtype=np.float32)[:, None] + pad + dy), 0, hp - 1).astype(np.int32)
    xx = np.clip(np.rint(np.arange(w, dtype=np.float32)[None, :] + pad + dx), 0, wp - 1).astype(np.int32)
    return cells[yy, xx] - 1


def _pick(rng: np.random.Generator, names: list[str], weights: np.ndarray, n: int) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return np.array([mineral_index(x) for x in names], dtype=np.int32)[
        rng.choice(len(names), size=n, p=p / p.sum())
    ]


def _blob_mask(rng: np.random.Generator, r_px: float, elong: float) -> np.ndarray:
    """A rough, star-shaped blob (radius r_px, elongation, random orientation) as a boolean stamp."""
    r_max = int(math.ceil(r_px * elong * 1.4)) + 1
    y, x = np.mgrid[-r_max : r_max + 1, -r_max : r_max + 1].astype(np.float64)
    th = rng.uniform(0, math.pi)
    u = x * math.cos(th) + y * math.sin(th)
    v = -x * math.sin(th) + y * math.cos(th)
    ang = np.arctan2(v, u)
    rough = 1.0 + sum(
        rng.normal(0, 0.12 / k) * np.cos(k * ang + rng.uniform(0, 2 * math.pi)) for k in range(2, 6)
    )
    return (u / elong) ** 2 + (v * elong) ** 2 <= (r_px * rough) ** 2


def _stamp(target: np.ndarray, mask: np.ndarray, cy: int, cx: int, value: int) -> None:
    """Write value into target where the stamp (centred at cy, cx) is True, clipped to the tile."""
    h, w = target.shape
    r = mask.shape[0] // 2
    y0, x0 = cy - r, cx - r
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(h, y0 + mask.shape[0]), min(w, x0 + mask.shape[1])
    if ys >= ye or xs >= xe:
        return
    m = mask[ys - y0 : ye - y0, xs - x0 : xe - x0]
    target[ys:ye, xs:xe][m] = value


def _curve_distance(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Distance (px) to a random gently curved line through the tile (for veins and cracks)."""
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    th = rng.uniform(0, math.pi)
    n_y, n_x = math.cos(th), -math.sin(th)
    y = np.arange(h, dtype=np.float32)[:, None] - cy
    x = np.arange(w, dtype=np.float32)[None, :] - cx
    along = x * math.cos(th) + y * math.sin(th)
    across = x * n_x + y * n_y
    size = max(h, w)
    period = rng.uniform(0.6, 2.5) * size
    amp = rng.uniform(0.02, 0.12) * size
    curv = rng.uniform(-1, 1) / max(size, 1) * 0.5
    return np.abs(
        across + amp * np.sin(2 * math.pi * along / period + rng.uniform(0, 2 * math.pi)) + curv * along**2
    )


def simulate_texture(rng: np.random.Generator, h: int, w: int, params: dict) -> Texture:
    """Labels, pixel kinds and grain ids of one h×w tile (lengths in ``params`` in µm)."""
    px = float(params["pixel_size_um"])
    weights = np.array([a[1] for a in ASSEMBLAGES])
    name, _, majors, accessories, vein_fill = ASSEMBLAGES[
        rng.choice(len(ASSEMBLAGES), p=weights / weights.sum())
    ]

    # grains: per-tile size factor, majors with tile-specific proportions (Dirichlet around the assemblage)
    grain_px = params["grain_um"] / px * math.exp(rng.normal(0.0, params["grain_size_spread"]))
    grain_px = max(grain_px, 2.0)
    grain = _voronoi(rng, h, w, grain_px, spread=0.7, warp=0.35)
    n_grains = int(grain.max()) + 1
    major_names = list(majors)
    share = rng.dirichlet(np.array([majors[m] for m in major_names]) * 0.25 + 0.05)
    grain_mineral = _pick(rng, major_names, share, n_grains)
    labels = grain_mineral[grain]

    # intergrowths: lamellae with a per-grain orientation, wavy through fine noise
    hosts = [mineral_index(m) for m in INTERGROWTHS]
    is_host = np.isin(grain_mineral, hosts) & (rng.random(n_grains) < params["intergrowth_probability"])
    if is_host.any():
        theta = rng.uniform(0, math.pi, n_grains).astype(np.float32)
        choice = rng.random(n_grains)
        wobble = smooth_noise(rng, h, w, 6.0 / px) * np.float32(0.35)
        sel = is_host[grain]
        g_sel = grain[sel]
        yy, xx = np.nonzero(sel)
        for host in np.unique(grain_mineral[is_host]):
            options = INTERGROWTHS[MINERALS[host].name]
            m_host = grain_mineral[g_sel] == host
            pick = np.minimum((choice[g_sel[m_host]] * len(options)).astype(np.int64), len(options) - 1)
            for k, (guest, period_um, frac) in enumerate(options):
                m = np.zeros(g_sel.shape, bool)
                m[np.nonzero(m_host)[0][pick == k]] = True
                if not m.any():
                    continue
                t = theta[g_sel[m]]
                phase = (xx[m] * np.cos(t) + yy[m] * np.sin(t)) / (period_um / px) + wobble[yy[m], xx[m]]
                guest_px = (phase - np.floor(phase)) < frac
                labels[yy[m][guest_px], xx[m][guest_px]] = mineral_index(guest)

    # veins: thin curved bands of a vein mineral
    n_veins = int(rng.random() < params["vein_probability"]) * int(rng.integers(1, 3))
    for _ in range(n_veins):
        width = rng.uniform(1.0, 5.0) / px * 0.5 + 0.5
        d = _curve_distance(rng, h, w)
        labels[d < width] = mineral_index(vein_fill[rng.integers(len(vein_fill))])

    # inclusions: small rough blobs of accessories, a share drawn from the whole library (rare classes)
    area_mm2 = h * w * (px * 1e-3) ** 2
    n_inc = int(rng.poisson(params["inclusions_per_mm2"] * area_mm2))
    acc_idx = np.array([mineral_index(m) for m in accessories])
    n_grain_ids = n_grains
    for _ in range(n_inc):
        if rng.random() < params["rare_inclusion_share"]:
            mineral = int(rng.integers(len(MINERALS)))
        else:
            mineral = int(acc_idx[rng.integers(len(acc_idx))])
        r_px = float(np.clip(rng.lognormal(math.log(2.5), 0.55), 0.6, 12.0)) / px
        blob = _blob_mask(rng, max(r_px, 0.6), float(rng.uniform(1.0, 1.8)))
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        _stamp(labels, blob, cy, cx, mineral)
        _stamp(grain, blob, cy, cx, n_grain_ids)
        n_grain_ids += 1

    kind = np.zeros((h, w), dtype=np.int8)
    # particle mount: particles are warped Voronoi cells separated by epoxy gaps; some are missing
    if rng.random() < params["mount_probability"]:
        part_px = max(params["particle_um"] / px * math.exp(rng.normal(0.0, 0.4)), 4.0)
        part = _voronoi(rng, h, w, part_px, spread=0.5, warp=0.25)
        n_part = int(part.max()) + 1
        boundary = np.zeros((h, w), bool)
        boundary[1:, :] |= part[1:, :] != part[:-1, :]
        boundary[:-1, :] |= part[1:, :] != part[:-1, :]
        boundary[:, 1:] |= part[:, 1:] != part[:, :-1]
        boundary[:, :-1] |= part[:, 1:] != part[:, :-1]
        gap = (rng.lognormal(math.log(0.035 * part_px), 0.6, n_part) + 0.5).astype(np.float32)
        missing = rng.random(n_part) < 0.12
        if boundary.any():
            dist = ndimage.distance_transform_edt(~boundary).astype(np.float32)
            rough = smooth_noise(rng, h, w, max(part_px / 8.0, 2.0)) * np.float32(0.3)
            epoxy = dist < gap[part] * (1.0 + rough)
        else:
            epoxy = np.zeros((h, w), bool)
        epoxy |= missing[part]
        kind[epoxy] = EPOXY_KIND
    # epoxy-filled cracks
    if rng.random() < params["crack_probability"]:
        d = _curve_distance(rng, h, w)
        kind[(d < rng.uniform(0.5, 2.0) / px) & (kind == SPECIMEN)] = EPOXY_KIND
    # holes (plucked grains, pores)
    if rng.random() < params["hole_probability"]:
        n_holes = int(rng.poisson(max(1.0, 120.0 * area_mm2))) + 1
        hole_map = np.zeros((h, w), dtype=np.int8)
        for _ in range(n_holes):
            r_px = float(np.clip(rng.lognormal(math.log(3.0), 0.6), 0.8, 25.0)) / px
            _stamp(
                hole_map,
                _blob_mask(rng, r_px, float(rng.uniform(1.0, 2.0))),
                int(rng.integers(h)),
                int(rng.integers(w)),
                1,
            )
        kind[(hole_map == 1) & (kind == SPECIMEN)] = HOLE
    # the edge of the mount: a large circle crossing the tile
    if rng.random() < params["edge_probability"]:
        size = max(h, w)
        radius = rng.uniform(3.0, 20.0) * size
        ang = rng.uniform(0, 2 * math.pi)
        off = rng.uniform(-0.4, 0.4) * size
        cy = h / 2 + (radius + off) * math.sin(ang)
        cx = w / 2 + (radius + off) * math.cos(ang)
        yy = np.arange(h, dtype=np.float64)[:, None] - cy
        xx = np.arange(w, dtype=np.float64)[None, :] - cx
        outside = yy**2 + xx**2 > radius**2  # the specimen is the disc; up to ~40 % of the tile lies beyond
        kind[outside] = OUTSIDE

    labels = labels.astype(np.int32)
    labels[kind != SPECIMEN] = -1
    return Texture(labels=labels, kind=kind, grain=grain.astype(np.int32), assemblage=name)
