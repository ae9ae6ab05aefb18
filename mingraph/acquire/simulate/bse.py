"""BSE image formation: backscatter coefficient per phase, beam blur, detector gain, offset and noise.

η follows Reuter (1972) from the mass-fraction-weighted mean Z. Epoxy (C, H, O; Z̄ ≈ 6) is dark but
not black; holes return almost nothing; beyond the mount edge there is no signal. Edges of the specimen
against epoxy or holes are slightly brighter (topographic edge effect).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mingraph.acquire.simulate.minerals import eta_table
from mingraph.acquire.simulate.texture import EPOXY_KIND, HOLE, OUTSIDE, SPECIMEN

DEFAULT_BSE_PARAMS: dict = {
    "bse_gain": 1.9,  # image units per unit η (galena, η ≈ 0.47, lands near 0.93)
    "bse_offset": 0.03,  # black level
    "bse_gain_jitter": 0.03,  # relative per-tile brightness / contrast variation
    "bse_psf_px": 0.6,  # σ of the Gaussian beam / interaction-volume blur
    "bse_read_noise": 0.006,  # detector noise σ (image units)
    "bse_shot_noise": 0.0004,  # variance per unit signal (electron shot noise)
    "bse_grain_jitter": 0.004,  # relative per-grain η variation (channelling, minor-element substitution)
    "bse_edge_boost": 0.012,  # extra η on specimen pixels touching epoxy or holes
}

HOLE_ETA = 0.01
OUTSIDE_ETA = 0.0


def render_bse(
    labels: np.ndarray, kind: np.ndarray, grain: np.ndarray, rng: np.random.Generator, params: dict
) -> np.ndarray:
    """Float32 BSE image in [0, 1] for a label map (−1 off-specimen) with pixel kinds and grain ids."""
    etas = eta_table()  # 50 minerals, then epoxy
    eta = np.empty(labels.shape, dtype=np.float32)
    spec = kind == SPECIMEN
    eta[spec] = etas[labels[spec]]
    eta[kind == EPOXY_KIND] = etas[-1]
    eta[kind == HOLE] = HOLE_ETA
    eta[kind == OUTSIDE] = OUTSIDE_ETA
    n_grains = int(grain.max()) + 1 if grain.size else 1
    jitter = (1.0 + rng.normal(0.0, params["bse_grain_jitter"], n_grains)).astype(np.float32)
    eta[spec] *= jitter[grain[spec]]
    if params["bse_edge_boost"] and not spec.all():
        touching = ndimage.binary_dilation((kind == EPOXY_KIND) | (kind == HOLE)) & spec
        eta[touching] += np.float32(params["bse_edge_boost"])
    if params["bse_psf_px"] > 0:
        eta = ndimage.gaussian_filter(eta, params["bse_psf_px"], mode="nearest")
    gain = params["bse_gain"] * (1.0 + rng.normal(0.0, params["bse_gain_jitter"]))
    offset = params["bse_offset"] * (1.0 + rng.normal(0.0, params["bse_gain_jitter"]))
    img = eta * np.float32(gain) + np.float32(offset)
    sd = np.sqrt(
        np.float32(params["bse_read_noise"]) ** 2 + np.float32(params["bse_shot_noise"]) * np.maximum(img, 0)
    )
    img += sd * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)
