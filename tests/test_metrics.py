"""Scores against hand-worked examples and a brute-force per-class count."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mingraph.common.metrics import confusion, scores, tile_mean_scores


def test_hand_worked_example():
    truth = np.array([0, 0, 0, 1, 1, 2, -1])
    pred = np.array([0, 0, 1, 1, 2, 2, 0])
    cm = confusion(truth, pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    s = scores(cm)
    # class 0: P=1, R=2/3, F1=0.8; class 1: P=1/2, R=1/2, F1=1/2; class 2: P=1/2, R=1, F1=2/3
    assert s["per_class"]["f1"] == pytest.approx([0.8, 0.5, 2 / 3])
    assert s["f1_weighted"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert s["f1_macro"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert s["precision_weighted"] == pytest.approx((3 * 1 + 2 * 0.5 + 1 * 0.5) / 6)
    assert s["accuracy"] == pytest.approx(4 / 6) and s["support"] == 6


def test_mask_and_absent_classes():
    truth = np.array([[0, 1], [1, 1]])
    pred = np.array([[0, 1], [0, 3]])
    cm = confusion(truth, pred, 5, mask=np.array([[True, True], [False, True]]))
    assert cm.sum() == 3
    s = scores(cm)
    # classes 2 and 4 absent from both: excluded from the macro mean; class 3 predicted only
    assert s["f1_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    with pytest.raises(ValueError):
        confusion(np.array([0]), np.array([7]), 5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 3), st.integers(0, 3)), min_size=0, max_size=60))
def test_against_brute_force(pairs):
    t = np.array([a for a, _ in pairs], dtype=np.int64)
    p = np.array([b for _, b in pairs], dtype=np.int64)
    s = scores(confusion(t, p, 4))
    for k in range(4):
        tp = sum(1 for a, b in pairs if a == k and b == k)
        fp = sum(1 for a, b in pairs if a >= 0 and a != k and b == k)
        fn = sum(1 for a, b in pairs if a == k and b != k)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        assert s["per_class"]["f1"][k] == pytest.approx(f1)


def test_unclassified_pixels_are_misses_not_false_positives():
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, -1, 1, -1])
    cm = confusion(truth, pred, 2, unclassified=True)
    assert cm.tolist() == [[1, 0, 1], [0, 1, 1]]
    s = scores(cm)
    # hand-worked: each class recall 1/2, precision 1 (nothing else was called 0 or 1)
    assert s["per_class"]["recall"].tolist() == [0.5, 0.5]
    assert s["per_class"]["precision"].tolist() == [1.0, 1.0]
    assert s["f1_weighted"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        confusion(truth, pred, 2)  # -1 is refused unless asked for


def test_tile_mean_scores_is_the_mean_of_per_tile_weighted_scores():
    a = confusion(np.array([0, 0, 1]), np.array([0, 1, 1]), 2)
    b = confusion(np.array([1, 1]), np.array([1, 1]), 2)
    empty = confusion(np.array([-1]), np.array([0]), 2)
    m = tile_mean_scores([a, b, empty])
    assert m["tiles_scored"] == 2
    assert m["tile_mean_f1"] == pytest.approx((scores(a)["f1_weighted"] + 1.0) / 2)
    # pooled differs from the tile mean: the two are different statistics
    assert scores(a + b)["f1_weighted"] != pytest.approx(m["tile_mean_f1"])
