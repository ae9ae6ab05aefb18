"""The prediction an acquisition session updates every round: class, confidence, entropy and
margin per pixel, from the fusion model (:mod:`mingraph.learn.fusion_model`) or nearest-EDS.

The fusion model's output q_i is a mixture of its EDS points' class probabilities; per pixel
this gives the class argmax q, the confidence max q, the Shannon entropy −Σ q log q (nats) and
the margin q₍₁₎ − q₍₂₎ between the two most probable classes (the uncertainty measures of
active learning, Settles 2009, "Active Learning Literature Survey", §3.1).  Large fields run in
blocks with overlapping margins, as :func:`mingraph.predict.predict_field` does.
"""

from __future__ import annotations

import numpy as np
import torch

from mingraph.errors import InputError
from mingraph.graphs.candidates import bse_scale, build_candidate_graph
from mingraph.learn.bundle import Bundle
from mingraph.learn.fusion_model import batch_inputs

MAP_NAMES = ("labels", "confidence", "entropy", "margin")


def _empty(shape: tuple[int, int]) -> dict[str, np.ndarray]:
    return {
        "labels": np.full(shape, -1, np.int16),
        "confidence": np.zeros(shape, np.float32),
        "entropy": np.zeros(shape, np.float32),
        "margin": np.zeros(shape, np.float32),
    }


def _summaries(p: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(labels, confidence, entropy, margin) over the last axis of probabilities ``p``."""
    top = torch.topk(p, 2, dim=-1)
    ent = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)
    return top.indices[..., 0], top.values[..., 0], ent, top.values[..., 0] - top.values[..., 1]


@torch.no_grad()
def fusion_maps(
    bundle: Bundle,
    bse: np.ndarray,
    valid: np.ndarray,
    eds_rc: np.ndarray,
    eds_prob: np.ndarray,
    block: int = 1024,
) -> dict[str, np.ndarray]:
    """Per-pixel ``labels`` (H, W) int16 (−1 not valid), ``confidence``, ``entropy`` (nats) and
    ``margin`` (H, W) float32 (0 where not valid) of the fusion model.

    ``bse`` (H, W) float in [0, 1], ``valid`` (H, W) bool, ``eds_rc`` (N, 2) int row/col,
    ``eds_prob`` (N, classes) the encoder's class probabilities
    (:func:`mingraph.learn.bundle.point_features`).  Fields larger than ``block`` run in blocks
    with a margin of max(64, 4 EDS spacings).  Raises InputError for a model that is not the
    fusion model (the maps need its class mixture).
    """
    if bundle.arch != "fusion":
        raise InputError("model", "arch", f"adaptive acquisition needs the fusion model, got {bundle.arch!r}")
    h, w = bse.shape
    out = _empty((h, w))
    rc = np.asarray(eds_rc, np.int64).reshape(-1, 2)
    if len(rc) == 0:
        return out
    model = bundle.model
    model.eval()
    margin = int(max(64, np.ceil(4 * np.sqrt(h * w / len(rc)))))
    scale = bse_scale(bse, valid)
    single = h <= block and w <= block
    for r0 in range(0, h, block):
        for c0 in range(0, w, block):
            r1, c1 = min(r0 + block, h), min(c0 + block, w)
            wr0, wc0 = (0, 0) if single else (max(0, r0 - margin), max(0, c0 - margin))
            wr1, wc1 = (h, w) if single else (min(h, r1 + margin), min(w, c1 + margin))
            inside = (rc[:, 0] >= wr0) & (rc[:, 0] < wr1) & (rc[:, 1] >= wc0) & (rc[:, 1] < wc1)
            if not inside.any():
                continue
            g = build_candidate_graph(
                bse[wr0:wr1, wc0:wc1], valid[wr0:wr1, wc0:wc1], rc[inside] - [wr0, wc0], model.k, scale
            )
            logp, _ = model(*batch_inputs([g], [eds_prob[inside]]))
            sl = (slice(r0 - wr0, r1 - wr0), slice(c0 - wc0, c1 - wc0))
            for name, t in zip(MAP_NAMES, _summaries(logp[0].exp())):
                out[name][r0:r1, c0:c1] = t.numpy()[sl]
    for name in MAP_NAMES:
        out[name][~valid] = -1 if name == "labels" else 0
    return out


def nearest_maps(valid: np.ndarray, eds_rc: np.ndarray, eds_prob: np.ndarray) -> dict[str, np.ndarray]:
    """The same maps from nearest-EDS labelling: every pixel takes its nearest point's class
    probabilities (ties to the lowest index, :func:`mingraph_kernels.nearest.nearest_eds_map`)."""
    from mingraph_kernels.nearest import nearest_eds_map

    h, w = valid.shape
    out = _empty((h, w))
    if len(eds_rc) == 0:
        return out
    near = nearest_eds_map(h, w, np.asarray(eds_rc, np.int64))
    summ = [t.numpy() for t in _summaries(torch.as_tensor(np.asarray(eds_prob, np.float32)))]
    for name, per_point in zip(MAP_NAMES, summ):
        out[name] = np.where(valid, per_point[near], -1 if name == "labels" else 0).astype(out[name].dtype)
    return out
