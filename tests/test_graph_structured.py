"""The structured graph and its explicit forms against the plain-Python reference builder."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from test_graph_kernels import brute_nearest, check_delaunay_triangles, fields, incircle, is_connected  # noqa: E402

from mingraph.graphs.structure import (  # noqa: E402
    EDGE_TYPES,
    batch_graphs,
    build_structured_graph,
    dgl_to_ours,
    edge_list,
    node_features,
    node_labels,
    ours_to_dgl,
    to_dgl,
    to_dgl_heterograph,
    typed_edges,
)
from mingraph_kernels.delaunay import delaunay_triangles, unique_positions  # noqa: E402
from mingraph_kernels.knn import knn_edges  # noqa: E402
from mingraph_kernels.reference import reference_edges  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REAL_MASK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "field-pixelmask.png"


def make_graph(h, w, rc, lift=1.0, dim=4, seed=0, **kw):
    rng = np.random.default_rng(seed)
    return build_structured_graph(rng.random((h, w)), rc, rng.random((len(rc), dim)), lift=lift, **kw)


def as_dict(src, dst, attr):
    d = {(int(s), int(t)): float(a) for s, t, a in zip(src, dst, attr)}
    assert len(d) == len(src), "duplicate edges in the explicit edge list"
    return d


def assert_same_edges(got: dict, expected: dict):
    assert got.keys() == expected.keys()
    # attributes are float32: equal to 1e-6 relative (absolute below 1)
    bad = [k for k in expected if abs(got[k] - expected[k]) > 1e-6 * max(1.0, abs(expected[k]))]
    assert not bad, f"attributes differ on {bad[:5]}"


# ----------------------------------------------------------------------------- build + explicit form


@SETTINGS
@given(fields(max_side=14), st.sampled_from([1.0, 5.0, 0.5]))
def test_edge_list_equals_reference_builder(field, lift):
    h, w, rc = field
    g = make_graph(h, w, rc, lift=lift)
    assert g.nearest_eds.dtype == np.int32 and g.delaunay.dtype == np.int32 and g.eds_rc.dtype == np.int32
    got = as_dict(*edge_list(g, self_loops=True))
    # the Delaunay triangulation of a degenerate set is not unique: give the reference our EDS pairs
    # (their validity is tested on their own); everything else it builds by itself
    assert_same_edges(got, reference_edges(h, w, rc, lift=lift, eds_pairs=g.delaunay.tolist()))
    no_loops = as_dict(*edge_list(g, self_loops=False))
    assert no_loops.keys() == {k for k in got if k[0] != k[1]}


def no_four_cocircular(rc: np.ndarray) -> bool:
    n = len(rc)
    for i in range(n):
        for j in range(i + 1, n):
            for k in range(j + 1, n):
                a = rc[[i, j, k]]
                if (a[1, 0] - a[0, 0]) * (a[2, 1] - a[0, 1]) == (a[1, 1] - a[0, 1]) * (a[2, 0] - a[0, 0]):
                    return False  # three collinear points: not general position either
                others = np.delete(rc, [i, j, k], axis=0)
                if len(others) and (incircle(a[None], others) == 0).any():
                    return False
    return True


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 30)), min_size=3, max_size=9, unique=True))
def test_full_reference_in_general_position(points):
    # no 3 collinear, no 4 co-circular: the triangulation is unique, so the reference may build all of it
    rc = np.array(points)
    assume(no_four_cocircular(rc))
    g = make_graph(41, 31, rc)
    assert_same_edges(as_dict(*edge_list(g)), reference_edges(41, 31, rc))


def test_one_pixel_image():
    g = make_graph(1, 1, np.array([[0, 0]]), lift=2.5)
    assert g.nearest_eds.tolist() == [[0]] and g.delaunay.shape == (0, 2)
    assert as_dict(*edge_list(g)) == {(0, 1): 2.5, (1, 0): 2.5, (0, 0): 0.0, (1, 1): 0.0}


def test_zero_eds_nodes_is_the_bse_only_graph():
    g = build_structured_graph(np.zeros((5, 7)), np.zeros((0, 2)), np.zeros((0, 64)))
    assert (g.nearest_eds == -1).all() and g.n_eds == 0 and g.eds_feat.shape == (0, 64)
    src, dst, attr = edge_list(g, self_loops=False)
    assert (src < 35).all() and (dst < 35).all() and len(src) == 2 * (5 * 6 + 4 * 7 + 2 * 4 * 6)
    assert node_features(g).shape == (35, 65)
    hg = to_dgl(g)
    assert hg.num_nodes() == 35 and hg.num_edges() == len(src)


def test_symmetry_and_degrees():
    rng = np.random.default_rng(3)
    h, w = 20, 17
    rc = np.stack([rng.integers(0, h, 12), rng.integers(0, w, 12)], 1)
    rc = np.concatenate([rc, rc[:2]])  # two duplicates
    g = make_graph(h, w, rc)
    src, dst, attr = edge_list(g, self_loops=False)
    e = as_dict(src, dst, attr)
    assert all(e[(d, s)] == a for (s, d), a in e.items()), (
        "every edge has its reverse with the same attribute"
    )
    hw, n = h * w, len(rc)
    pix_nbrs = np.bincount(src[(src < hw) & (dst < hw)], minlength=hw).reshape(h, w)
    assert (pix_nbrs[1:-1, 1:-1] == 8).all() and pix_nbrs[0, 0] == 3 and (pix_nbrs[0, 1:-1] == 5).all()
    # each pixel: one edge to its nearest EDS node, plus one per other EDS node sitting on it
    cross = np.bincount(src[(src < hw) & (dst >= hw)], minlength=hw).reshape(h, w)
    on_pixel = np.zeros((h, w), int)
    np.add.at(on_pixel, (rc[:, 0], rc[:, 1]), 1)
    assert np.array_equal(cross, 1 + np.maximum(on_pixel - 1, 0))
    # each EDS node: the pixels it is nearest to, plus its own pixel if that pixel's nearest is another node
    eds_pix = np.bincount(src[(src >= hw) & (dst < hw)] - hw, minlength=n)
    own_other = g.nearest_eds[rc[:, 0], rc[:, 1]] != np.arange(n)
    assert np.array_equal(eds_pix, np.bincount(g.nearest_eds.ravel(), minlength=n) + own_other)
    eds_eds = np.bincount(src[(src >= hw) & (dst >= hw)] - hw, minlength=n)
    assert np.array_equal(eds_eds, np.bincount(g.delaunay.ravel(), minlength=n))
    # with lift 1, every non-loop edge is at least 1 long except duplicate-twin links (0)
    twin = (src >= hw) & (dst >= hw) & (attr == 0)
    assert twin.sum() == 2 * 2 and (attr[~twin] >= 1).all()


def test_typed_edges_are_the_edge_list_by_type():
    g = make_graph(9, 11, np.array([[0, 0], [8, 10], [4, 5], [2, 9]]))
    te = typed_edges(g)
    assert tuple(te) == EDGE_TYPES
    s, d, _ = te["pixel_to_eds"]
    s2, d2, _ = te["eds_to_pixel"]
    assert np.array_equal(s, d2) and np.array_equal(d, s2)
    assert len(edge_list(g, self_loops=False)[0]) == sum(len(v[0]) for v in te.values())


def test_knn_alternative_and_validation():
    rng = np.random.default_rng(5)
    rc = np.stack([rng.integers(0, 30, 40), rng.integers(0, 30, 40)], 1)
    gk = make_graph(30, 30, rc, eds_edges="knn", k=3)
    gd = make_graph(30, 30, rc)
    np.testing.assert_array_equal(gk.delaunay, knn_edges(rc, 3))
    np.testing.assert_array_equal(gk.nearest_eds, gd.nearest_eds)
    with pytest.raises(ValueError):
        make_graph(30, 30, rc, eds_edges="voronoi")
    with pytest.raises(ValueError):
        make_graph(30, 30, np.array([[30, 0]]))
    with pytest.raises(ValueError):
        make_graph(30, 30, np.array([[-1, 0]]))
    with pytest.raises(ValueError):
        make_graph(30, 30, np.array([[1.5, 0.0]]))


# ----------------------------------------------------------------------------- batch and DGL


def three_graphs():
    rng = np.random.default_rng(11)
    h, w = 8, 10
    gs = []
    for n in (5, 0, 9):
        rc = np.stack([rng.integers(0, h, n), rng.integers(0, w, n)], 1)
        g = make_graph(h, w, rc, lift=2.0, dim=3, seed=n)
        g.labels = rng.integers(-1, 4, (h, w))
        g.eds_labels = rng.integers(-1, 4, n)
        gs.append(g)
    return gs


def test_batch_edge_list_is_the_union_of_offset_graphs():
    gs = three_graphs()
    b = batch_graphs(gs)
    hw, nb = 80, 3
    n_pix = nb * hw
    expected = {}
    eds_off = 0
    for i, g in enumerate(gs):
        for (s, d), a in as_dict(*edge_list(g)).items():
            m = lambda v: i * hw + v if v < hw else n_pix + eds_off + v - hw  # noqa: E731
            expected[(m(s), m(d))] = a
        eds_off += g.n_eds
    assert_same_edges(as_dict(*edge_list(b)), expected)
    x = node_features(b)
    assert x.shape == (n_pix + b.n_eds, 4)
    np.testing.assert_array_equal(x[:n_pix, 0], np.concatenate([g.bse.ravel() for g in gs]))
    np.testing.assert_array_equal(x[n_pix:, 1:], np.concatenate([g.eds_feat for g in gs]))
    assert (x[:n_pix, 1:] == 0).all() and (x[n_pix:, 0] == 0).all()
    y = node_labels(b)
    np.testing.assert_array_equal(
        y, np.concatenate([g.labels.ravel() for g in gs] + [g.eds_labels for g in gs])
    )


@pytest.mark.parametrize("self_loops", [False, True])
@pytest.mark.parametrize("batched", [False, True])
def test_dgl_graph_has_the_same_edges_features_and_order(self_loops, batched):
    gs = three_graphs()
    g = batch_graphs(gs) if batched else gs[2]
    hg = to_dgl(g, self_loops=self_loops)
    het = to_dgl_heterograph(g, self_loops=self_loops)
    assert set(het.ntypes) == {"pixel", "eds"}
    assert {"grid", "delaunay", "pixel_to_eds", "eds_to_pixel"} <= set(het.etypes)
    nid = hg.ndata["nid"].numpy()
    # documented order: EDS nodes first (to_homogeneous sorts node types), then pixels
    np.testing.assert_array_equal(nid, dgl_to_ours(g))
    np.testing.assert_array_equal(dgl_to_ours(g)[ours_to_dgl(g)], np.arange(len(nid)))
    eds_type = het.ntypes.index("eds")
    assert (hg.ndata["_TYPE"].numpy()[: g.n_eds] == eds_type).all()
    src, dst = (t.numpy() for t in hg.edges())
    dist = hg.edata["dist"].numpy()
    assert dist.shape == (len(src), 1) and dist.dtype == np.float32
    assert_same_edges(as_dict(nid[src], nid[dst], dist[:, 0]), as_dict(*edge_list(g, self_loops=self_loops)))
    np.testing.assert_array_equal(hg.ndata["feat"].numpy(), node_features(g)[nid])
    np.testing.assert_array_equal(hg.ndata["label"].numpy(), node_labels(g)[nid])


# ----------------------------------------------------------------------------- the real TIMA sampling pattern


@pytest.fixture(scope="module")
def real_pattern():
    if not REAL_MASK.exists():
        pytest.skip(
            f"real sampling pattern not found at {REAL_MASK} (the shared data folder sits beside the repository)"
        )
    from PIL import Image

    mask = np.array(Image.open(REAL_MASK)) == 255
    rc = np.argwhere(mask)
    rc = rc[np.random.default_rng(0).permutation(len(rc))]  # shuffled: the tie-break must follow the index
    return mask, rc


def test_real_pattern_nearest_map(real_pattern):
    from scipy import ndimage

    mask, rc = real_pattern
    h, w = mask.shape
    g = make_graph(h, w, rc, dim=1)
    near = g.nearest_eds
    assert near.min() >= 0
    rr, cc = np.mgrid[0:h, 0:w]
    d2 = (rr - rc[near, 0]) ** 2 + (cc - rc[near, 1]) ** 2
    edt = ndimage.distance_transform_edt(~mask)
    np.testing.assert_array_equal(
        d2, np.round(edt**2).astype(np.int64)
    )  # every pixel at the minimal distance
    sample = np.random.default_rng(1).choice(h * w, 3000, replace=False)
    pr, pc = sample // w, sample % w
    for chunk in np.array_split(np.arange(len(sample)), 6):  # exact lowest-index tie-break by brute force
        dd = (pr[chunk, None] - rc[:, 0]) ** 2 + (pc[chunk, None] - rc[:, 1]) ** 2
        np.testing.assert_array_equal(near[pr[chunk], pc[chunk]], dd.argmin(1))


def test_real_pattern_delaunay(real_pattern):
    from scipy.spatial import cKDTree

    _, rc = real_pattern
    urc, _, _ = unique_positions(rc)
    tris = delaunay_triangles(urc)
    p = urc[tris].astype(np.float64)
    # circumcentres; only points near a circumcircle can violate it: check those exactly
    ax, ay, bx, by, cx, cy = p[:, 0, 0], p[:, 0, 1], p[:, 1, 0], p[:, 1, 1], p[:, 2, 0], p[:, 2, 1]
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    assert (d != 0).all()
    ux = ((ax**2 + ay**2) * (by - cy) + (bx**2 + by**2) * (cy - ay) + (cx**2 + cy**2) * (ay - by)) / d
    uy = ((ax**2 + ay**2) * (cx - bx) + (bx**2 + by**2) * (ax - cx) + (cx**2 + cy**2) * (bx - ax)) / d
    rad = np.hypot(ax - ux, ay - uy)
    near = cKDTree(urc).query_ball_point(np.stack([ux, uy], 1), rad + 1e-6)
    cnt = np.array([len(x) for x in near])
    t_idx = np.repeat(np.arange(len(tris)), cnt)
    q = urc[np.concatenate(near).astype(np.int64)]
    tp = urc[tris[t_idx]]
    sign = np.sign(
        (tp[:, 1, 0] - tp[:, 0, 0]) * (tp[:, 2, 1] - tp[:, 0, 1])
        - (tp[:, 1, 1] - tp[:, 0, 1]) * (tp[:, 2, 0] - tp[:, 0, 0])
    )
    dd = tp - q[:, None, :]
    lift = (dd**2).sum(-1)
    det = (
        dd[:, 0, 0] * (dd[:, 1, 1] * lift[:, 2] - lift[:, 1] * dd[:, 2, 1])
        - dd[:, 0, 1] * (dd[:, 1, 0] * lift[:, 2] - lift[:, 1] * dd[:, 2, 0])
        + lift[:, 0] * (dd[:, 1, 0] * dd[:, 2, 1] - dd[:, 1, 1] * dd[:, 2, 0])
    )
    assert (det * sign <= 0).all(), "a sampling point lies inside a Delaunay circumcircle"
    assert np.array_equal(np.unique(tris), np.arange(len(urc)))
    g = make_graph(500, 500, rc, dim=1)
    assert is_connected(g.n_eds, g.delaunay) and len(g.delaunay) <= 3 * g.n_eds - 6


def test_small_lattice_check_matches_local_check():
    # the exhaustive Delaunay check used by the kernel tests, on a dense lattice crop
    rc = np.mgrid[0:12, 0:9].reshape(2, -1).T
    urc, _, _ = unique_positions(rc)
    check_delaunay_triangles(urc, delaunay_triangles(urc))
    np.testing.assert_array_equal(make_graph(12, 9, rc).nearest_eds, brute_nearest(12, 9, rc))
