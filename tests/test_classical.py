"""Classical fusion baselines against independent references (scipy's Dijkstra, hand-worked fields)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse.csgraph import dijkstra

from mingraph.learn.classical import bse_edge_cost, choose_parameter, geodesic_nearest_eds, segment_vote
from mingraph_kernels.nearest import nearest_eds_map


def _grid_graph(cost: np.ndarray) -> sparse.csr_matrix:
    """8-connected grid, a step of length l between a and b costs l (c_a + c_b) / 2."""
    h, w = cost.shape
    idx = np.arange(h * w).reshape(h, w)
    rows, cols, vals = [], [], []
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = idx[max(0, -dr) : h - max(0, dr), max(0, -dc) : w - max(0, dc)]
        b = idx[max(0, dr) : h + min(0, dr) or None, max(0, dc) : w + min(0, dc) or None]
        length = np.hypot(dr, dc)
        v = length * (cost.ravel()[a.ravel()] + cost.ravel()[b.ravel()]) / 2
        rows += [a.ravel(), b.ravel()]
        cols += [b.ravel(), a.ravel()]
        vals += [v, v]
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), (h * w, h * w)
    )


@pytest.mark.parametrize("alpha", [0.0, 30.0])
def test_geodesic_equals_multi_source_dijkstra(alpha):
    rng = np.random.default_rng(3)
    h, w = 40, 33
    bse = rng.random((h, w))
    valid = np.ones((h, w), bool)
    pick = rng.choice(h * w, 12, replace=False)
    rc = np.stack(np.divmod(pick, w), 1)
    classes = np.arange(12) * 3
    got = geodesic_nearest_eds(bse, valid, rc, classes, alpha)
    dist = dijkstra(_grid_graph(bse_edge_cost(bse, alpha)), indices=pick)  # (12, H*W)
    chosen = dist[got.ravel() // 3, np.arange(h * w)]
    # every pixel took a point at the least path cost (ties, common at alpha 0, either way)
    np.testing.assert_allclose(chosen, dist.min(0), rtol=1e-9, atol=1e-9)
    if alpha > 0:  # continuous costs: no ties, the very same source as scipy's
        _, _, src = dijkstra(
            _grid_graph(bse_edge_cost(bse, alpha)), indices=pick, min_only=True, return_predecessors=True
        )
        lookup = dict(zip(pick.tolist(), classes.tolist()))
        assert np.array_equal(got.ravel(), np.array([lookup[s] for s in src]))


def test_geodesic_stops_at_a_bse_edge_where_plain_nearest_crosses_it():
    bse = np.zeros((20, 20))
    bse[:, 10:] = 1.0  # two grains, the boundary between columns 9 and 10
    valid = np.ones_like(bse, bool)
    rc = np.array([[10, 2], [10, 12]])
    classes = np.array([4, 7])
    near = classes[nearest_eds_map(20, 20, rc)]
    assert (
        near[:, 8:10] == 7
    ).any()  # plain nearest-EDS crosses the boundary (column 8 is 6 from 2, 4 from 12)
    geo = geodesic_nearest_eds(bse, valid, rc, classes, alpha=100.0)
    assert (geo[:, :10] == 4).all() and (geo[:, 10:] == 7).all()


def test_geodesic_edge_cases():
    bse = np.zeros((5, 5))
    valid = np.ones_like(bse, bool)
    assert (geodesic_nearest_eds(bse, valid, np.zeros((0, 2), int), np.zeros(0, int)) == -1).all()
    # two points on one pixel: the first one's class
    out = geodesic_nearest_eds(bse, valid, np.array([[2, 2], [2, 2]]), np.array([5, 9]))
    assert (out == 5).all()
    with pytest.raises(Exception, match="eds_classes"):
        geodesic_nearest_eds(bse, valid, np.array([[2, 2]]), np.array([1, 2]))
    with pytest.raises(Exception, match="eds_rc"):
        geodesic_nearest_eds(bse, valid, np.array([[9, 2]]), np.array([1]))


def test_segment_vote_overrules_a_minority_point_and_falls_back_to_nearest():
    bse = np.full((30, 40), 0.2)
    bse[:, 20:] = 0.8
    valid = np.ones_like(bse, bool)
    rc = np.array([[5, 5], [25, 5], [15, 15], [10, 10], [5, 30], [25, 30], [15, 35]])
    classes = np.array([1, 1, 1, 3, 2, 2, 2])
    near = classes[nearest_eds_map(30, 40, rc)]
    assert (near[:, :20] == 3).any()  # the minority point claims its Voronoi cell
    out = segment_vote(bse, valid, rc, classes, near, segment_px=600, compactness=0.01)
    assert (out[:, :20] == 1).all() and (out[:, 20:] == 2).all()
    # no point classified: the nearest-EDS map is returned unchanged
    assert np.array_equal(segment_vote(bse, valid, rc, np.full(7, -1), near), near)
    # a field of resin only (no valid pixel, as the shifted test set has): nothing to segment
    none = np.zeros_like(valid)
    empty = np.zeros((0, 2), int)
    assert np.array_equal(
        segment_vote(bse, none, empty, np.zeros(0, int), np.full(bse.shape, -1)), np.full(bse.shape, -1)
    )
    assert (geodesic_nearest_eds(bse, none, empty, np.zeros(0, int)) == -1).all()


def test_choose_parameter_takes_the_best_score_and_the_smaller_value_on_ties():
    best, table = choose_parameter([3.0, 1.0, 2.0], lambda a: {1.0: 0.5, 2.0: 0.7, 3.0: 0.7}[a])
    assert best == 2.0 and table == {3.0: 0.7, 1.0: 0.5, 2.0: 0.7}


def _two_grains(seed: int, n: int = 12):
    """Left half class 0, right half class 1 (BSE 0.2 / 0.8 with noise), n random EDS points."""
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    h, w = 40, 40
    cut = int(rng.integers(12, 28))
    labels = np.zeros((h, w), np.int64)
    labels[:, cut:] = 1
    bse = np.where(labels == 1, 0.8, 0.2) + rng.normal(0, 0.02, (h, w))
    pick = rng.choice(h * w, n, replace=False)
    rc = np.stack(np.divmod(pick, w), 1)
    f = SimpleNamespace(bse=bse.astype(np.float32), valid=np.ones((h, w), bool), labels=labels)
    return f, rc, labels[rc[:, 0], rc[:, 1]]


def test_learnt_candidate_pick_learns_to_stay_inside_a_grain():
    pytest.importorskip("sklearn")
    from mingraph.learn.candidate_pick import candidate_pick, fit_candidate_pick

    train = [_two_grains(s) for s in range(12)]
    model = fit_candidate_pick([f for f, _, _ in train], [(rc, c) for _, rc, c in train])
    wrong_pick = wrong_near = 0
    for s in range(100, 106):
        f, rc, c = _two_grains(s)
        near = c[nearest_eds_map(40, 40, rc)]
        pick = candidate_pick(model, f.bse, f.valid, rc, c)
        wrong_near += int((near != f.labels).sum())
        wrong_pick += int((pick != f.labels).sum())
    assert wrong_near > 0 and wrong_pick < 0.5 * wrong_near
    # no point: unclassified; nothing learnt: nearest-EDS
    f, rc, c = _two_grains(1)
    assert (candidate_pick(model, f.bse, f.valid, rc[:0], c[:0]) == -1).all()
    assert np.array_equal(candidate_pick(None, f.bse, f.valid, rc, c), c[nearest_eds_map(40, 40, rc)])
