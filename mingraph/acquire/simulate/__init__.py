"""Physically grounded SEM simulator: minerals, BSE and EDS physics, microstructures.

``simulate_tile(seed, height, width, params)`` gives a BSE image, valid mask and phase labels; its
spectra come on demand from ``SimulatedEds(labels, seed, eds_params)`` (see ``eds``). Everything is a
deterministic function of the seed. Physics and the mineral table: docs/simulator.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mingraph.acquire.fields import Field
from mingraph.acquire.simulate.bse import DEFAULT_BSE_PARAMS, render_bse
from mingraph.acquire.simulate.eds import SimulatedEds
from mingraph.acquire.simulate.eds_physics import DEFAULT_EDS_PARAMS, full_eds_params, mineral_spectrum
from mingraph.acquire.simulate.minerals import MINERALS, class_names, mineral_index
from mingraph.acquire.simulate.texture import DEFAULT_TEXTURE_PARAMS, simulate_texture
from mingraph.common.errors import InputError

__all__ = [
    "DEFAULT_PARAMS",
    "SimTile",
    "SimulatedEds",
    "class_names",
    "default_params",
    "mineral_index",
    "mineral_spectrum",
    "simulate_tile",
    "MINERALS",
]

DEFAULT_PARAMS: dict = {**DEFAULT_TEXTURE_PARAMS, **DEFAULT_BSE_PARAMS, **DEFAULT_EDS_PARAMS}
"""Every simulation parameter with its default: texture, BSE and EDS (``DEFAULT_EDS_PARAMS`` keys)."""

MAX_SIDE = 16384


def default_params() -> dict:
    """A fresh copy of ``DEFAULT_PARAMS``."""
    return dict(DEFAULT_PARAMS)


def _full_params(params: dict | None) -> dict:
    out = default_params()
    for k, v in (params or {}).items():
        if k not in out:
            raise InputError("simulation parameters", k, f"unknown parameter; known: {', '.join(out)}")
        out[k] = v
    for k in (*DEFAULT_TEXTURE_PARAMS, *DEFAULT_BSE_PARAMS):
        v = out[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise InputError("simulation parameters", k, f"expected a non-negative number, got {v!r}")
    for k in ("pixel_size_um", "grain_um", "particle_um"):
        if out[k] <= 0:
            raise InputError("simulation parameters", k, f"expected a positive length in µm, got {out[k]!r}")
    full_eds_params({k: out[k] for k in DEFAULT_EDS_PARAMS})
    return out


@dataclass
class SimTile:
    """One simulated field: BSE, valid mask, labels (−1 invalid), pixel kinds, and how to get its spectra."""

    seed: int
    bse: np.ndarray  # (H, W) float32 in [0, 1]
    valid: np.ndarray  # (H, W) bool
    labels: np.ndarray  # (H, W) int32, -1 where not valid
    kind: np.ndarray  # (H, W) int8: 0 specimen, 1 epoxy, 2 hole, 3 beyond the mount edge
    eds_params: dict  # the SimulatedEds parameters (JSON-serialisable)
    params: dict = field(default_factory=dict)  # every parameter used
    assemblage: str = ""

    @property
    def eds(self) -> SimulatedEds:
        """The EDS source of this tile (spectra regenerated on demand)."""
        return SimulatedEds(self.labels, self.seed, self.eds_params)

    def field(self, name: str | None = None) -> Field:
        """This tile as a ``mingraph.acquire.fields.Field`` with the library's class names."""
        return Field(
            bse=self.bse,
            valid=self.valid,
            labels=self.labels,
            class_names=class_names(),
            pixel_size_um=float(self.params.get("pixel_size_um", 1.0)),
            eds=self.eds,
            name=name or f"sim-{self.seed}",
            meta={"simulator": "mingraph.acquire.simulate", "seed": self.seed, "assemblage": self.assemblage},
        )


def simulate_tile(seed: int, height: int, width: int | None = None, params: dict | None = None) -> SimTile:
    """Simulate one height×width tile (square if width is None); bit-for-bit reproducible from ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError("simulate_tile", "seed", f"expected a non-negative integer, got {seed!r}")
    width = height if width is None else width
    for nm, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_SIDE:
            raise InputError("simulate_tile", nm, f"expected an integer in [1, {MAX_SIDE}], got {v!r}")
    p = _full_params(params)
    tex_ss, bse_ss = np.random.SeedSequence(int(seed)).spawn(2)
    tex = simulate_texture(np.random.default_rng(tex_ss), int(height), int(width), p)
    bse = render_bse(tex.labels, tex.kind, tex.grain, np.random.default_rng(bse_ss), p)
    eds_params = {k: p[k] for k in DEFAULT_EDS_PARAMS}
    return SimTile(
        seed=int(seed),
        bse=bse,
        valid=tex.kind == 0,
        labels=tex.labels,
        kind=tex.kind,
        eds_params=eds_params,
        params=p,
        assemblage=tex.assemblage,
    )
