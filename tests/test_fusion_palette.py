"""The fusion model's field-level palette path and its mask-free inputs, against a plain-Python
reference of the palette, hand-worked BSE scales and the invariances they promise: a phase that no
point measured is never given, the classes are never read (a permutation of the class list
permutes the answer), a field's answer does not depend on the other fields of its batch or on the
prediction chunks, and a model that reads no mask answers the same with and without one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mingraph.learn.fusion_model as fm
from mingraph.graphs.candidates import point_bse_scale
from mingraph.learn.fusion_model import FusionModel, batch_inputs, predict_fusion


def _field(h=18, w=16, n=7, seed=0):
    rng = np.random.default_rng(seed)
    bse = rng.random((h, w)).astype(np.float32)
    valid = rng.random((h, w)) > 0.2
    pick = rng.choice(h * w, n, replace=False)
    return bse, valid, np.stack(np.divmod(pick, w), 1)


def _model(n_classes=6, seed=0, **kw):
    torch.manual_seed(seed)
    m = FusionModel(n_classes, channels=8, heads=2, head_dim=4, k=4, palette=8, **kw)
    with torch.no_grad():  # an open gate, so that the palette's share is large enough to test
        m.pal_gate.bias.fill_(0.5)
        m.pal_gate.weight.normal_(0, 0.3)
    return m


def test_point_bse_scale_is_the_percentiles_of_the_windows_around_the_points():
    rng = np.random.default_rng(3)
    bse = rng.random((30, 25)).astype(np.float32)
    rc = np.array([[0, 0], [10, 12], [29, 24], [15, 3]])
    vals = []
    for r, c in rc:  # the 5 x 5 windows, clipped to the field (edge pixels repeat)
        for dr in range(-2, 3):
            for dc in range(-2, 3):
                vals.append(bse[min(max(r + dr, 0), 29), min(max(c + dc, 0), 24)])
    lo, med, hi = np.percentile(vals, [5, 50, 95])
    assert point_bse_scale(bse, rc) == pytest.approx((med, hi - lo))
    # a flat grain: the spread's floor
    assert point_bse_scale(np.full((8, 8), 0.4), np.array([[4, 4]])) == pytest.approx((0.4, 0.02))
    with pytest.raises(ValueError, match="at least one EDS point"):
        point_bse_scale(bse, np.zeros((0, 2), int))


def test_points_standardisation_ignores_resin_and_the_mask():
    """Resin (dark) around a grain moves the valid-pixel scale when the mask is missing; the
    scale around the points is the same with or without a mask, whatever the resin."""
    rng = np.random.default_rng(0)
    bse = np.full((40, 40), 0.05, np.float32)
    bse[10:30, 10:30] = 0.6 + 0.05 * rng.random((20, 20))
    valid = np.zeros((40, 40), bool)
    valid[10:30, 10:30] = True
    rc = np.array([[12, 14], [20, 20], [27, 25]])
    m = FusionModel(4, channels=8, heads=2, head_dim=4, k=4, mask_input=False, standardise="points")
    assert m.field_context(bse, valid, rc) == m.field_context(bse, np.ones_like(valid), rc)
    old = FusionModel(4, channels=8, heads=2, head_dim=4, k=4)
    assert old.field_context(bse, valid, rc) != old.field_context(bse, np.ones_like(valid), rc)


def test_a_model_that_reads_no_mask_answers_the_same_without_one():
    bse, valid, rc = _field()
    probs = np.random.default_rng(1).dirichlet(np.ones(6), len(rc)).astype(np.float32)
    m = _model(mask_input=False, standardise="points")
    with_mask = predict_fusion(m, m.graph(bse, valid, rc), probs)
    without = predict_fusion(m, m.graph(bse, np.ones_like(valid), rc), probs)
    assert np.array_equal(with_mask[0], without[0]) and np.array_equal(with_mask[1], without[1])
    assert m.config["mask_input"] is False and m.config["standardise"] == "points"
    # the defaults (every file written before the options) keep the old config keys only
    assert set(FusionModel(4).config) == {"arch", "num_classes", "channels", "heads", "head_dim", "k"}
    with pytest.raises(ValueError, match="standardise"):
        FusionModel(4, standardise="mask")


def _reference(model, g, probs):
    """The palette path in plain numpy/Python from the model's parameters, one pixel at a time."""
    x = batch_inputs([g], [probs])
    with torch.no_grad():
        f = model.context(x[0], x[1])[0].reshape(-1, 8).numpy().astype(np.float64)
        model_no_pal = model.palette_dim
        model.palette_dim = 0
        lq, _ = model(*x)  # the candidates' mixture alone (T = 1, no calibration)
        model.palette_dim = model_no_pal
    q = lq[0].reshape(-1, probs.shape[1]).exp().numpy().astype(np.float64)
    pix = g.eds_rc[:, 0] * g.shape[1] + g.eds_rc[:, 1]
    p = probs.astype(np.float64)

    def P(lin):  # a layer's weight and bias in float64
        return lin.weight.detach().numpy().astype(np.float64), lin.bias.detach().numpy().astype(np.float64)

    wq, bq = P(model.pal_query)
    wk, bk = P(model.pal_key)
    wg, bg = P(model.pal_gate)
    keys, present = {}, []
    for c in range(p.shape[1]):
        mine = [j for j in range(len(p)) if int(np.argmax(p[j])) == c]
        if mine:
            wsum = sum(p[j, c] for j in mine)
            mean = sum(p[j, c] * f[pix[j]] for j in mine) / wsum
            keys[c] = wk @ mean + bk
            present.append(c)
    out = np.zeros_like(q)
    for i in range(len(f)):
        qi = wq @ f[i] + bq
        s = {c: float(qi @ keys[c]) / np.sqrt(8) for c in present}
        z = np.exp(np.array(list(s.values())) - max(s.values()))
        pi = np.zeros(p.shape[1])
        pi[present] = z / z.sum()
        q0 = np.maximum(q[i], 1e-6)
        lift = max(s.values()) - sum(q[i, c] * s[c] for c in present)
        ent = float(np.sum(q[i] * np.log(q0)))
        gate = 1 / (1 + np.exp(-(wg @ np.concatenate([f[i], [lift, ent]]) + bg)[0]))
        out[i] = (1 - gate) * q[i] + gate * pi
    return out.reshape(*g.shape, -1)


def test_palette_path_equals_the_plain_python_reference():
    bse, valid, rc = _field()
    probs = np.random.default_rng(2).dirichlet(np.full(6, 0.3), len(rc)).astype(np.float32)
    m = _model()
    g = m.graph(bse, valid, rc)
    with torch.no_grad():
        got = m(*batch_inputs([g], [probs]))[0][0].exp().numpy()
    np.testing.assert_allclose(got, _reference(m, g, probs), rtol=1e-4, atol=1e-5)


def test_the_palette_never_gives_a_phase_no_point_measured():
    """One-hot evidence of classes {0, 2, 5} of 6: every pixel's mass is on those, and pixels
    far from any class-5 point (outside its candidates) can still take class 5 (a grain that
    holds no point gets a phase measured elsewhere in the field)."""
    bse, valid, rc = _field(h=24, w=24, n=9)
    cls = np.array([0, 2, 5, 0, 2, 0, 2, 0, 2])
    probs = np.eye(6, dtype=np.float32)[cls]
    m = _model()
    g = m.graph(bse, valid, rc)
    with torch.no_grad():
        q = m(*batch_inputs([g], [probs]))[0][0].exp().numpy()
    assert q[..., [1, 3, 4]].max() < 1e-5
    np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-4)
    far = ~(cls[g.idx] == 5).any(-1)  # pixels whose candidates hold no class-5 point
    assert far.any() and q[..., 5][far].min() > 1e-3


def test_the_palette_reads_no_class_identity():
    """Permuting the class list of the evidence permutes the answer: the palette's keys come from
    the points' BSE context, never from which class they are."""
    bse, valid, rc = _field()
    probs = np.random.default_rng(4).dirichlet(np.full(6, 0.3), len(rc)).astype(np.float32)
    perm = np.array([3, 5, 0, 1, 4, 2])
    m = _model()
    g = m.graph(bse, valid, rc)
    with torch.no_grad():
        q = m(*batch_inputs([g], [probs]))[0][0].exp().numpy()
        qp = m(*batch_inputs([g], [probs[:, perm]]))[0][0].exp().numpy()
    np.testing.assert_allclose(qp, q[..., perm], rtol=1e-5, atol=1e-6)


def test_a_fields_answer_is_its_own_in_a_batch_and_in_chunks(monkeypatch):
    fields = [_field(seed=s) for s in (0, 1, 2)]
    rng = np.random.default_rng(5)
    probs = [rng.dirichlet(np.full(6, 0.3), len(f[2])).astype(np.float32) for f in fields]
    m = _model()
    graphs = [m.graph(*f) for f in fields]
    with torch.no_grad():
        alone = [m(*batch_inputs([g], [p]))[0][0] for g, p in zip(graphs, probs)]
        batched = m(*batch_inputs(graphs, probs))[0]
        monkeypatch.setattr(fm, "CROSS_CHUNK", 37)  # chunks that straddle rows, not fields
        chunked = m(*batch_inputs(graphs, probs))[0]
    batched_grad = m(*batch_inputs(graphs, probs))[0].detach()  # the training path
    for t in range(3):
        for other in (batched, chunked, batched_grad):
            torch.testing.assert_close(other[t], alone[t], rtol=1e-5, atol=1e-5)


def test_the_physics_unknown_never_enters_the_palette():
    """``palette_skip`` keeps the last columns out: with one-hot evidence whose classes are
    {0, 1, unknown (last)}, no pixel far from an unknown point gets unknown mass from the palette,
    and without the skip it does."""
    bse, valid, rc = _field(h=24, w=24, n=9)
    cls = np.array([0, 1, 3, 0, 1, 0, 1, 0, 1])  # column 3: "unknown"
    probs = np.eye(4, dtype=np.float32)[cls]
    m = _model(4)
    g = m.graph(bse, valid, rc)
    x = batch_inputs([g], [probs])
    with torch.no_grad():
        skipped = m(*x, palette_skip=1)[0][0].exp().numpy()
        kept = m(*x)[0][0].exp().numpy()
    far = ~(cls[g.idx] == 3).any(-1)  # pixels whose candidates hold no unknown point
    assert skipped[..., 3][far].max() < 1e-5 and kept[..., 3][far].min() > 1e-3
    # the evaluate and predict paths take the skip from the classifier
    cls_s, _ = predict_fusion(m, g, probs, palette_skip=1)
    assert np.array_equal(cls_s, skipped.argmax(-1))


def test_a_files_calibration_applies_to_the_palette_mixture():
    """Predicting, a file's temperature acts on log q′ (after the palette), never while training."""
    bse, valid, rc = _field()
    probs = np.random.default_rng(7).dirichlet(np.full(6, 0.3), len(rc)).astype(np.float32)
    m = _model()
    x = batch_inputs([m.graph(bse, valid, rc)], [probs])
    with torch.no_grad():
        raw = m(*x)[0]
        m.temperature = 1.7
        cal = m(*x)[0]
    torch.testing.assert_close(cal, fm.calibrated_log_q(raw, 1.7), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m(*x)[0].detach(), raw, rtol=1e-5, atol=1e-6)  # with gradients: raw


def test_palette_gradients_match_finite_differences():
    """Through the default cross-layer kernel (fused Numba on CPU, float64): the gradients of
    the palette's weights, of the evidence and of the BSE input."""
    bse, valid, rc = _field(h=8, w=7, n=4)
    probs = np.random.default_rng(6).dirichlet(np.full(3, 0.5), len(rc))
    m = _model(3).double()
    g = m.graph(bse, valid, rc)
    x = [t.double() if t.is_floating_point() else t for t in batch_inputs([g], [probs.astype(np.float32)])]

    args = [
        m.pal_query.weight.detach().clone(),
        m.pal_key.weight.detach().clone(),
        m.pal_gate.weight.detach().clone(),
    ]
    args = [a.requires_grad_() for a in args] + [x[4].clone().requires_grad_(), x[0].clone().requires_grad_()]

    def functional(wq, wk, wg, p, b):
        params = dict(m.named_parameters()) | {
            "pal_query.weight": wq,
            "pal_key.weight": wk,
            "pal_gate.weight": wg,
        }
        return torch.func.functional_call(m, params, (b, x[1], x[2], x[3], p, x[5]))[0]

    assert torch.autograd.gradcheck(functional, tuple(args), atol=1e-6)
