"""The shipped default model: it loads, fuses EDS with BSE on simulated fields, and blocks are seamless."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import seam_band

from mingraph.acquire.simulate import simulate_tile
from mingraph.acquire.simulate.minerals import class_names
from mingraph.metrics import confusion, scores
from mingraph.predict import default_model_path, load_model, measure_points, predict_field


@pytest.fixture(scope="module")
def bundle():
    return load_model(None)


def _f1(truth, pred, mask, n):
    return scores(confusion(np.where(mask, truth, -1), np.clip(pred, 0, n - 1), n))["f1_weighted"]


def test_default_model_is_shipped_and_small(bundle):
    assert default_model_path().stat().st_size < 2_000_000
    assert bundle.class_names == class_names() and bundle.encoder is not None
    assert bundle.model.num_classes == 50 and bundle.model.eds_dim == 64


def test_more_eds_gives_better_maps(bundle):
    """F1 rises with the EDS fraction on fields the model has not seen (seeds outside the training set)."""
    s = simulate_tile(987_654, 300).field()
    n = len(bundle.class_names)
    f1 = []
    for f in (0.001, 0.01, 0.1):
        rc, emb = measure_points(s, bundle, f, "random", 3)
        f1.append(
            _f1(s.labels, predict_field(bundle, s.bse, s.valid, rc, emb, progress=False).labels, s.valid, n)
        )
    assert f1[0] < f1[1] < f1[2] and f1[1] > 0.5


def test_block_seams_cost_under_one_f1_point(bundle):
    """Blocks of 128 px with margins: F1 on the pixels along the seams equals the whole-field F1 there."""
    s = simulate_tile(123_457, 384).field()
    rc, emb = measure_points(s, bundle, 0.01, "random", 4)
    whole = predict_field(bundle, s.bse, s.valid, rc, emb, block=4096, progress=False)
    tiled = predict_field(bundle, s.bse, s.valid, rc, emb, block=128, progress=False)
    seam = seam_band(s.shape, 128, 4)
    n = len(bundle.class_names)
    f1_seam_tiled = _f1(s.labels, tiled.labels, seam & s.valid, n)
    f1_seam_whole = _f1(s.labels, whole.labels, seam & s.valid, n)
    assert abs(f1_seam_tiled - f1_seam_whole) < 0.01
    assert (tiled.labels == whole.labels)[s.valid].mean() > 0.995
