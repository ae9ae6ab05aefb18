"""The simulated EDS source: Poisson spectra at requested pixels over a simulated label map.

Each requested pixel's expected spectrum mixes the phases under a Gaussian beam footprint (the
X-ray generation volume, in pixels: fixed, or per phase under the beam from its Kanaya–Okayama
range at the beam energy, ``footprint_sigmas_px``) from the per-phase shapes of
:mod:`mingraph.acquire.simulate.eds_physics`; counts are Poisson per channel, drawn by a
counter-based generator (SplitMix64 of a hash of seed, draw, row and col) so that a spectrum
depends only on (seed, draw, row, col), whatever else is requested with it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from mingraph.acquire.fields import N_CHANNELS
from mingraph.acquire.simulate.eds_physics import (
    cached_phase_shapes,
    footprint_sigmas_px,
    full_eds_params,
    physics_key,
)
from mingraph.acquire.simulate.minerals import MINERALS
from mingraph.common.errors import InputError

_EDS_TAG = 0x454453  # "EDS": separates the EDS noise stream from the tile's other streams


def mixing_kernel(sigma_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets (dr, dc) and normalised Gaussian weights of the interaction-volume footprint."""
    if sigma_px <= 0:
        return np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1)
    r = max(1, int(math.ceil(3.0 * sigma_px)))
    dr, dc = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
    g = np.exp(-(dr**2 + dc**2) / (2.0 * sigma_px**2))
    keep = g > 1e-4 * g.max()
    g = g[keep]
    return dr[keep].astype(np.int64), dc[keep].astype(np.int64), g / g.sum()


_U64 = numba.uint64


@numba.njit(cache=True)
def _mix64(z):
    """SplitMix64 finaliser (Steele et al. 2014): a bijective, well-mixing hash of a 64-bit word."""
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


@numba.njit(cache=True)
def poisson_spectra(lam, rows, cols, key0, key1, draw, out):
    """Poisson counts out[i, :m] ~ Poisson(lam[i, :m]); pixel i's stream hashes (key, draw, row, col).

    Small means by Knuth's multiplication method, means >= 10 by Hörmann's (1993) PTRS transformed
    rejection (the algorithm numpy uses), both on a SplitMix64 stream of doubles.
    """
    golden = _U64(0x9E3779B97F4A7C15)
    n, m = lam.shape
    for i in range(n):
        s = _mix64(
            key0 ^ _mix64(key1 ^ _mix64(_U64(draw) ^ _mix64((_U64(rows[i]) << _U64(32)) ^ _U64(cols[i]))))
        )
        for j in range(m):
            mu = lam[i, j]
            if mu <= 0.0:
                continue
            if mu < 10.0:
                limit = math.exp(-mu)
                k = 0
                prod = 1.0
                while True:
                    s += golden
                    prod *= (_mix64(s) >> _U64(11)) * (1.0 / 9007199254740992.0)
                    if prod <= limit:
                        break
                    k += 1
                out[i, j] = k
                continue
            slam = math.sqrt(mu)
            loglam = math.log(mu)
            b = 0.931 + 2.53 * slam
            a = -0.059 + 0.02483 * b
            invalpha = 1.1239 + 1.1328 / (b - 3.4)
            vr = 0.9277 - 3.6224 / (b - 2.0)
            while True:
                s += golden
                u = (_mix64(s) >> _U64(11)) * (1.0 / 9007199254740992.0) - 0.5
                s += golden
                v = (_mix64(s) >> _U64(11)) * (1.0 / 9007199254740992.0)
                us = 0.5 - abs(u)
                k = math.floor((2.0 * a / us + b) * u + mu + 0.43)
                if us >= 0.07 and v <= vr:
                    break
                if k < 0 or (us < 0.013 and v > us):
                    continue
                if math.log(v) + math.log(invalpha) - math.log(
                    a / (us * us) + b
                ) <= -mu + k * loglam - math.lgamma(k + 1.0):
                    break
            out[i, j] = k


class SimulatedEds:
    """EDS source over a simulated label map: Poisson spectra, deterministic per (seed, draw, row, col).

    ``labels`` holds class ids (−1 = invalid: epoxy, hole, outside), ``params`` the JSON-serialisable
    EDS parameters (``DEFAULT_EDS_PARAMS``). ``draw`` selects an independent noise realisation of the same
    expected spectra (fresh EDS draws per epoch).
    """

    def __init__(self, labels: np.ndarray, seed: int, params: dict | None = None, *, draw: int = 0):
        lab = np.asarray(labels)
        if lab.ndim != 2 or lab.size == 0 or not np.issubdtype(lab.dtype, np.integer):
            raise InputError(
                "SimulatedEds",
                "labels",
                f"expected a non-empty 2-D integer array, got {lab.dtype} {lab.shape}",
            )
        if lab.min() < -1 or lab.max() >= len(MINERALS):
            raise InputError("SimulatedEds", "labels", f"class ids must lie in [-1, {len(MINERALS) - 1}]")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError("SimulatedEds", "seed", f"expected a non-negative integer, got {seed!r}")
        self.labels = lab.astype(np.int32)
        self.seed = int(seed)
        self.draw = int(draw)
        self.params = full_eds_params(params)
        self.total_counts = float(self.params["counts_per_ms"] * self.params["dwell_ms"])
        shapes = cached_phase_shapes(physics_key(self.params))
        if self.params["invalid_spectrum"] == "none":
            shapes = shapes.copy()
            shapes[-1] = 0.0
        self._shapes = shapes
        # footprint kernel per phase under the beam (50 minerals, then epoxy for invalid pixels)
        self._sigma = footprint_sigmas_px(self.params)
        self._kernels = {float(s): mixing_kernel(float(s)) for s in np.unique(self._sigma)}
        self._pad = int(max(max(np.abs(dr).max(), np.abs(dc).max()) for dr, dc, _ in self._kernels.values()))
        # outside the tile is class -2: dropped from the footprint, whose weights are renormalised
        self._padded = np.pad(self.labels, self._pad, constant_values=-2)
        self._key = np.random.SeedSequence([self.seed, _EDS_TAG]).generate_state(2, np.uint64)
        nz = np.nonzero(shapes.any(axis=0))[0]
        self._nchan = int(nz.max()) + 1 if nz.size else 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape  # type: ignore[return-value]

    def _check(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        if rows.shape != cols.shape:
            raise InputError("SimulatedEds", "EDS points", f"{rows.size} rows but {cols.size} columns")
        h, w = self.labels.shape
        if rows.size and (rows.min() < 0 or rows.max() >= h or cols.min() < 0 or cols.max() >= w):
            raise InputError("SimulatedEds", "EDS points", f"pixel outside the {h}x{w} tile")
        return rows, cols

    def phase_weights(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(n, 51) fractions of each phase (50 minerals, then invalid/epoxy) in the footprint of each pixel."""
        rows, cols = self._check(rows, cols)
        n, k = rows.size, len(MINERALS) + 1
        # columns: 50 minerals, invalid (-1) -> epoxy row 50, outside the tile -> column 51 (dropped)
        acc = np.zeros((n, k + 1))
        centre = self.labels[rows, cols]
        # the footprint of the phase under the beam; on an invalid pixel, epoxy's
        sigma = self._sigma[np.where(centre >= 0, centre, k - 1)]
        for s in np.unique(sigma):
            ddr, ddc, gg = self._kernels[float(s)]
            at = np.nonzero(sigma == s)[0]
            r, c, m = rows[at], cols[at], at.size
            part = np.zeros(m * (k + 1))
            base = np.arange(m) * (k + 1)
            for dr, dc, g in zip(ddr, ddc, gg):
                lab = self._padded[r + self._pad + dr, c + self._pad + dc]
                col = np.where(lab >= 0, lab, np.where(lab == -1, k - 1, k))
                part += np.bincount(base + col, minlength=m * (k + 1)) * g
            acc[at] = part.reshape(m, k + 1)
        acc = acc[:, :k]
        return acc / np.maximum(acc.sum(axis=1, keepdims=True), 1e-300)

    def expected(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Noise-free expected counts (n, 3000) at the pixels: footprint-weighted mix of phase spectra."""
        return self.phase_weights(rows, cols) @ self._shapes * self.total_counts

    def spectra(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Poisson counts (n, 3000) as float32; pixel i's draw depends only on (seed, draw, rows[i], cols[i])."""
        rows, cols = self._check(rows, cols)
        lam = self.expected(rows, cols)
        out = np.zeros((rows.size, N_CHANNELS), dtype=np.float32)
        m = self._nchan
        if rows.size and m:
            poisson_spectra(
                np.ascontiguousarray(lam[:, :m]),
                rows.astype(np.uint64),
                cols.astype(np.uint64),
                np.uint64(self._key[0]),
                np.uint64(self._key[1]),
                self.draw,
                out[:, :m],
            )
        return out


def simulated_instrument(params: dict | None = None) -> dict:
    """What a simulated field's EDS states: the simulator's beam energy, take-off angle and
    resolution (``params`` over :data:`~mingraph.acquire.simulate.eds_physics.DEFAULT_EDS_PARAMS`),
    as an import records a file's (``{"instrument": {...}}``).

    >>> simulated_instrument()
    {'instrument': {'beam_kev': 25.0, 'takeoff_deg': 35.0, 'fwhm_mnka_ev': 130.0}}
    """
    p = full_eds_params(params)
    return {"instrument": {k: float(p[k]) for k in ("beam_kev", "takeoff_deg", "fwhm_mnka_ev")}}


def measured_spectra(sample) -> tuple[bool, dict | None]:
    """Whether a field's (:class:`~mingraph.acquire.fields.Field`) spectra were measured (a
    hypermap, point spectra, a TIMA field: not the simulator), and what its EDS source states
    (beam energy, take-off angle, resolution).

    Examples
    --------
    >>> from mingraph.acquire.simulate import simulate_tile
    >>> measured_spectra(simulate_tile(0, 32).field())
    (False, {'instrument': {'beam_kev': 25.0, 'takeoff_deg': 35.0, 'fwhm_mnka_ev': 130.0}})
    """
    if isinstance(sample.eds, SimulatedEds):
        return False, simulated_instrument(sample.eds.params)
    return True, sample.meta.get("eds_params")
