"""SLADS-style expected reduction in distortion (ERD), learnt from simulated sessions.

SLADS (Godaliyadda et al., IEEE Trans. Computational Imaging 4(1), 2018, eqs. 6–14) measures next
the pixel s of largest expected reduction in distortion E[R_s | measurements], learnt offline:
a regressor maps features of s to R_s, computed on training images where the truth is known.
SLADS approximates the reduction by the distortion D near s, weighted by a Gaussian of the
distance (its eq. 13, σ proportional to the distance to the measurements).  Here:

* target: R_s = Σ_r E_r g_σ(r − s) / Σ_r g_σ(r − s), the local error rate of the current map
  (E_r = 1 where the predicted class is wrong), Gaussian of σ = ½ the current mean point spacing
  (scipy.ndimage.gaussian_filter);
* features of s (:data:`FEATURES`): distance to the nearest measured point over that spacing,
  the BSE structure ĝ, the BSE contrast |b_s − b_nearest point| of the standardised BSE, the
  model's normalised entropy and its 1 − margin;
* regressor: least squares with a ridge of 1e-3 on all monomials of degree ≤ 2 of the
  standardised features (SLADS uses linear regression on polynomial features), trained by
  :func:`train_erd` on random-sampling states (fractions 0.25–4 %) of simulated 128×128 fields of
  the fusion model's *training* seeds (100000–100005), so no test field is seen.

The fitted weights ship as ``mingraph/data/slads_erd.json`` (regenerate with
``python -m mingraph.acquisition.slads mingraph/data/slads_erd.json``; deterministic).
"""

from __future__ import annotations

import json
import os
from itertools import combinations_with_replacement
from pathlib import Path

import numpy as np
from scipy import ndimage

from mingraph.acquisition.bse_maps import bse_structure
from mingraph.acquisition.state import AcquisitionState
from mingraph.common.errors import InputError

FEATURES = ("distance", "structure", "contrast", "entropy", "one_minus_margin")
WEIGHTS_FORMAT = "mingraph-slads-erd"
TRAIN_SEEDS = tuple(range(100000, 100006))
TRAIN_FRACTIONS = (0.0025, 0.005, 0.01, 0.02, 0.04)


def weights_path() -> Path:
    """The shipped regressor: ``mingraph/data/slads_erd.json``."""
    return Path(__file__).resolve().parents[1] / "data" / "slads_erd.json"


def features(state: AcquisitionState) -> np.ndarray:
    """(H, W, 5) float32 per-pixel features (:data:`FEATURES`, module docstring) of the state."""
    from mingraph.graphs.candidates import standardise_bse

    if state.bse_std is None:
        state.bse_std = standardise_bse(state.bse, state.valid)
    b = state.bse_std
    dist, (ir, ic) = ndimage.distance_transform_edt(~state.measured, return_indices=True)
    spacing = np.sqrt(state.n_valid / max(int(state.measured.sum()), 1))
    n_classes = state.n_classes
    out = np.empty((*b.shape, len(FEATURES)), np.float32)
    out[..., 0] = dist / spacing
    out[..., 1] = bse_structure(state)
    out[..., 2] = np.abs(b - b[ir, ic])
    out[..., 3] = state.maps.entropy / np.log(max(n_classes, 2))
    out[..., 4] = 1.0 - state.maps.margin
    return out


def _monomials(z: np.ndarray) -> np.ndarray:
    """(n, 1 + d + d(d+1)/2) all monomials of degree ≤ 2 of ``z`` (n, d), constant first."""
    d = z.shape[1]
    cols = [np.ones(len(z), z.dtype)] + [z[:, i] for i in range(d)]
    cols += [z[:, i] * z[:, j] for i, j in combinations_with_replacement(range(d), 2)]
    return np.stack(cols, 1)


def load_weights(path: str | os.PathLike | None = None) -> dict:
    """The regressor's weights (``mean``, ``scale``, ``coef``); cached for the shipped file.
    Raises InputError for a missing or foreign file."""
    p = Path(path) if path is not None else weights_path()
    from mingraph.common.textfiles import read_json_input

    obj = read_json_input(p, "SLADS weights")
    if (
        not isinstance(obj, dict)
        or obj.get("format") != WEIGHTS_FORMAT
        or list(obj.get("features", [])) != list(FEATURES)
    ):
        raise InputError(p, "format", f"not a {WEIGHTS_FORMAT} file for features {FEATURES}")
    return obj


def expected_reduction(state: AcquisitionState, weights: dict | None = None) -> np.ndarray:
    """(H, W) float32 predicted ERD of every pixel (module docstring); 0 where not valid."""
    wts = weights or state.erd_weights or load_weights()
    state.erd_weights = wts
    f = features(state)
    h, w, d = f.shape
    mean, scale = np.asarray(wts["mean"], np.float32), np.asarray(wts["scale"], np.float32)
    coef = np.asarray(wts["coef"], np.float32)
    out = np.empty(h * w, np.float32)
    flat = f.reshape(-1, d)
    for s in range(0, h * w, 1 << 20):  # chunks keep the monomials small on large fields
        out[s : s + (1 << 20)] = _monomials((flat[s : s + (1 << 20)] - mean) / scale) @ coef
    out = out.reshape(h, w)
    out[~state.valid] = 0
    return out


def reduction_target(state: AcquisitionState, truth: np.ndarray) -> np.ndarray:
    """(H, W) float32 R_s of the module docstring from the true labels (−1 = unknown)."""
    known = state.valid & (truth >= 0)
    err = (known & (state.maps.labels != truth)).astype(np.float32)
    sigma = 0.5 * np.sqrt(state.n_valid / max(int(state.measured.sum()), 1))
    num = ndimage.gaussian_filter(err, sigma)
    den = ndimage.gaussian_filter(known.astype(np.float32), sigma)
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), 0).astype(np.float32)


def train_erd(
    bundle,
    seeds=TRAIN_SEEDS,
    size: int = 128,
    fractions=TRAIN_FRACTIONS,
    per_state: int = 3000,
    ridge: float = 1e-3,
    seed: int = 0,
) -> dict:
    """Fit the ERD regressor (module docstring) on random-sampling states of simulated fields.

    ``bundle`` the fusion model the sessions use; ``seeds`` simulator seeds of ``size``² fields;
    ``per_state`` pixels drawn per (field, fraction).  Returns the weights as :func:`load_weights`
    gives them, with the training R² in ``meta``.  Deterministic for fixed arguments.
    """
    from mingraph.acquire.sampling import sample_points
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.acquisition.predictions import fusion_maps
    from mingraph.learn.bundle import point_features

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for s in seeds:
        f = simulate_tile(int(s), size).field()
        for frac in fractions:
            rc = sample_points(f.valid, frac, "random", np.random.default_rng([int(s), int(frac * 1e5)]))
            prob = point_features(bundle, f.eds.spectra(rc[:, 0], rc[:, 1]))
            measured = np.zeros(f.shape, bool)
            measured[rc[:, 0], rc[:, 1]] = True
            st = AcquisitionState(f.bse, f.valid, measured, rc, len(rc), n_classes=len(f.class_names))
            st.maps = fusion_maps(bundle, f.bse, f.valid, rc, prob)
            idx = np.flatnonzero((f.valid & ~measured).ravel())
            idx = rng.choice(idx, size=min(per_state, idx.size), replace=False)
            xs.append(features(st).reshape(-1, len(FEATURES))[idx])
            ys.append(reduction_target(st, f.labels).reshape(-1)[idx])
    x, y = np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.float64)
    mean, scale = x.mean(0), np.maximum(x.std(0), 1e-6)
    a = _monomials((x - mean) / scale)
    coef = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]), a.T @ y)
    r2 = 1.0 - float(((a @ coef - y) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12))
    return {
        "format": WEIGHTS_FORMAT,
        "features": list(FEATURES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": coef.tolist(),
        "meta": {
            "seeds": [int(s) for s in seeds],
            "size": size,
            "fractions": list(fractions),
            "rows": len(y),
            "ridge": ridge,
            "train_r2": round(r2, 4),
        },
    }


if __name__ == "__main__":  # pragma: no cover - regenerates the shipped weights
    import sys

    import torch

    from mingraph.common.files import write_text
    from mingraph.learn.bundle import default_model_path, load_bundle

    torch.set_num_threads(1)
    w = train_erd(load_bundle(default_model_path()))
    write_text(sys.argv[1] if len(sys.argv) > 1 else weights_path(), json.dumps(w, indent=1) + "\n")
    print(w["meta"])
