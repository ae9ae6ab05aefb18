"""An acquisition session: seed points, then rounds of choose → measure → predict, until the
point budget or a confidence target is met.

Round 0 measures ``seed_fraction`` of the budget (by the strategy itself, or by the ``grid``
for the strategies that need a prediction); the rest is split evenly over ``rounds`` rounds.
Every round's points are visited in a serpentine order (:func:`mingraph.acquisition.costs.serpentine_order`)
and cost :class:`mingraph.acquisition.costs.TimeModel` time; the model's inference after each round
is timed on this machine and added (the instrument waits for it before the next round).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mingraph.acquire.fields import Field
from mingraph.acquisition.costs import TimeModel, serpentine_order
from mingraph.acquisition.predictions import fusion_maps, nearest_maps
from mingraph.acquisition.state import AcquisitionState, PredictionMaps
from mingraph.acquisition.strategies import BASIC_STRATEGIES, check_budget
from mingraph.acquisition.uncertainty import choose_slads, choose_uncertainty
from mingraph.common.errors import InputError
from mingraph.learn.bundle import Bundle, point_features
from mingraph.spectra.point_classifier import unclassified_beyond

STRATEGIES = {**BASIC_STRATEGIES, "uncertainty": choose_uncertainty, "slads": choose_slads}
"""Every strategy by name (:mod:`mingraph.acquisition.strategies`, :mod:`.uncertainty`)."""
MODEL_STRATEGIES = ("uncertainty", "slads")
"""Strategies that read the model's prediction: they need one after every round."""


@dataclass
class Session:
    """The outcome: ``points`` (n, 2) int32 in measurement order, ``rounds`` (n,) int32 round of
    each, ``maps`` the final prediction (:func:`.predictions.fusion_maps`), ``curve`` one dict a
    round (points, fraction, seconds of measurement and inference, F1 when labels exist),
    ``point_evidence`` (n, width) float32 what the point classifier made of each point's spectrum,
    in the order of ``points``: what the predictor was given (None in a session made without it)."""

    points: np.ndarray
    rounds: np.ndarray
    maps: PredictionMaps
    curve: list[dict]
    n_total: int
    stopped: str
    settings: dict = field(default_factory=dict)
    point_evidence: np.ndarray | None = None


def batch_sizes(n_total: int, rounds: int, seed_fraction: float) -> list[int]:
    """Points per round: round 0 ⌈seed_fraction·n⌉ (≥ 1), the rest split evenly over ``rounds``
    (earlier rounds take the remainder); ``rounds`` = 0 measures everything at once."""
    if rounds == 0:
        return [n_total]
    n0 = min(n_total, max(1, int(np.ceil(seed_fraction * n_total))))
    rest = n_total - n0
    return [n0] + [rest // rounds + (1 if i < rest % rounds else 0) for i in range(rounds) if rest]


def score_maps(labels: np.ndarray, truth: np.ndarray, valid: np.ndarray, n_classes: int) -> dict:
    """Weighted and macro F1 of ``labels`` against ``truth`` over valid pixels, unclassified (−1)
    a miss (:func:`mingraph.common.metrics.confusion`, as ``mingraph evaluate`` scores)."""
    from mingraph.common.metrics import confusion, scores

    s = scores(confusion(np.where(valid, truth, -1), labels, n_classes, unclassified=True))
    return {"f1_weighted": s["f1_weighted"], "f1_macro": s["f1_macro"]}


def run_session(
    sample: Field,
    bundle: Bundle,
    budget: float,
    strategy: str = "uncertainty",
    *,
    rounds: int = 3,
    seed_fraction: float = 0.4,
    seed: int = 0,
    time_model: TimeModel | None = None,
    target_confidence: float | None = None,
    predictor: str = "model",
    every_round: bool | None = None,
    params: dict | None = None,
) -> Session:
    """Run one acquisition session on ``sample`` (its EDS source answers the chosen pixels).

    ``budget`` fraction of the valid pixels to measure at most (rounded, ≥ 1 point); ``strategy``
    a name of :data:`STRATEGIES`; ``target_confidence`` stops early once the mean confidence over
    valid pixels reaches it; ``predictor`` "model" (the fusion model) or "nearest" (nearest-EDS
    labelling, for strategies without a model); ``every_round`` predicts after every round (default:
    with a confidence target or labels to score; always for model strategies);
    ``params`` extra keyword arguments of the strategy.  Raises InputError for an unknown
    strategy, a bad budget, rounds, seed fraction or confidence target, or a model strategy with the nearest predictor.
    """
    if strategy not in STRATEGIES:
        raise InputError(
            "acquire", "--strategy", f"expected one of {', '.join(STRATEGIES)}, got {strategy!r}"
        )
    if rounds < 0:
        raise InputError("acquire", "--rounds", f"expected a number of rounds ≥ 0, got {rounds}")
    if not (0.0 < seed_fraction <= 1.0):
        raise InputError(
            "acquire", "--seed-fraction", f"expected a share of the budget in (0, 1], got {seed_fraction}"
        )
    if target_confidence is not None and not (0.0 <= target_confidence <= 1.0):
        raise InputError(
            "acquire", "--target-confidence", f"expected a confidence in [0, 1], got {target_confidence}"
        )
    if predictor not in ("model", "nearest") or (predictor == "nearest" and strategy in MODEL_STRATEGIES):
        raise InputError(
            "acquire",
            "predictor",
            f"expected 'model' or 'nearest' (model strategies need 'model'), got {predictor!r}",
        )
    tm = time_model or TimeModel()
    n_total = check_budget(int(sample.valid.sum()), budget, sample.name)
    state = AcquisitionState(
        sample.bse,
        sample.valid,
        np.zeros(sample.shape, bool),
        np.zeros((0, 2), np.int32),
        n_total,
        n_classes=len(bundle.class_names),
    )
    model_driven = strategy in MODEL_STRATEGIES
    has_truth = sample.labels is not None and bool((sample.labels[sample.valid] >= 0).any())
    if every_round is None:
        every_round = target_confidence is not None or has_truth
    every_round = every_round or model_driven  # their next round reads the prediction
    rng = np.random.default_rng(seed)
    probs = None  # (points, width) point evidence; its width is the point classifier's
    round_of, curve = [], []
    t_measure = t_infer = 0.0
    sizes = batch_sizes(n_total, rounds, seed_fraction)
    stopped = "budget"
    for k, n in enumerate(sizes):
        chooser = STRATEGIES["grid" if (k == 0 and model_driven) else strategy]
        t0 = time.perf_counter()
        kwargs = (params or {}) if (k or not model_driven) else {}
        rc = np.asarray(chooser(state, n, rng, **kwargs), np.int32)
        t_choose = time.perf_counter() - t0
        rc = rc[serpentine_order(rc, state.spacing)]
        start = state.points[-1] if len(state.points) else None
        t_measure += tm.seconds(rc, sample.pixel_size_um, start)
        new = point_features(bundle, sample.eds.spectra(rc[:, 0], rc[:, 1]))
        probs = new if probs is None else np.concatenate([probs, new])
        state.points = np.concatenate([state.points, rc])
        state.measured[rc[:, 0], rc[:, 1]] = True
        round_of += [k] * len(rc)
        last = k == len(sizes) - 1
        row = {"round": k, "points": len(state.points), "fraction": len(state.points) / state.n_valid}
        if every_round or last:
            t0 = time.perf_counter()
            if predictor == "model":
                state.maps = fusion_maps(bundle, sample.bse, sample.valid, state.points, probs)
            else:
                state.maps = nearest_maps(sample.valid, state.points, probs)
            # a classifier's unknown column (the physics: no mineral fits) is unclassified
            state.maps.labels = unclassified_beyond(state.maps.labels, len(bundle.class_names))
            t_infer += time.perf_counter() - t0
            row["mean_confidence"] = float(state.maps.confidence[sample.valid].mean())
            if has_truth:
                row |= score_maps(state.maps.labels, sample.labels, sample.valid, len(bundle.class_names))
            if target_confidence is not None and row["mean_confidence"] >= target_confidence and not last:
                stopped = "confidence"
        row |= {
            "choose_s": t_choose,
            "measure_s": t_measure,
            "inference_s": t_infer,
            "minutes": (t_measure + t_infer + t_choose) / 60.0,
        }
        curve.append(row)
        if stopped == "confidence":
            break
    if len(curve) > 1:  # cumulative choosing time
        acc = 0.0
        for row in curve:
            acc += row["choose_s"]
            row["minutes"] = (row["measure_s"] + row["inference_s"] + acc) / 60.0
    settings = dict(
        budget=budget,
        strategy=strategy,
        rounds=rounds,
        seed_fraction=seed_fraction,
        seed=seed,
        predictor=predictor,
        time_model=tm.__dict__,
        target_confidence=target_confidence,
        params=params or {},
    )
    return Session(
        state.points, np.asarray(round_of, np.int32), state.maps, curve, n_total, stopped, settings, probs
    )
