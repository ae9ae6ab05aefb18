"""Phase association against a hand-worked example and a brute-force count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mingraph.analyse import mineralogy as M

# 4x4, phase 0 in the top-left 3x2 block, phase 1 elsewhere
L4 = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
V4 = np.ones((4, 4), dtype=bool)


def test_association_hand_example():
    res = M.association_matrix(L4, V4, 2, 0.5)
    # 3 horizontal + 2 vertical pixel edges between the phases, 0.5 um each
    assert res.boundary_um[0, 1] == pytest.approx(2.5)
    assert res.boundary_um[1, 0] == pytest.approx(2.5)
    assert res.total_boundary_um == pytest.approx(2.5)
    assert np.count_nonzero(res.boundary_um) == 2
    pct = res.association_pct
    assert pct[0, 1] == pytest.approx(100) and pct[1, 0] == pytest.approx(100)
    assert res.names[-2:] == ["unclassified", "background"]


def test_association_with_background_and_unclassified():
    lab = L4.copy()
    valid = V4.copy()
    valid[0, 0] = False  # background: touches (0,1) and (1,0), both phase 0
    lab[3, 3] = -1  # unclassified: touches (2,3) and (3,2), both phase 1
    res = M.association_matrix(lab, valid, 2, 1.0)
    b = res.boundary_um
    assert b[0, 3] == 2 and b[1, 2] == 2 and b[0, 1] == 5
    # phase 0's boundary: 5 with phase 1, 2 with background
    assert res.association_pct[0, 1] == pytest.approx(100 * 5 / 7)
    assert res.association_pct[0, 3] == pytest.approx(100 * 2 / 7)


def _brute_force_boundary(lab, valid, n):
    h, w = lab.shape

    def cat(r, c):
        if not valid[r, c]:
            return n + 1
        return n if lab[r, c] < 0 else lab[r, c]

    m = np.zeros((n + 2, n + 2))
    for r in range(h):
        for c in range(w):
            for dr, dc in ((0, 1), (1, 0)):
                r2, c2 = r + dr, c + dc
                if r2 < h and c2 < w:
                    a, b = cat(r, c), cat(r2, c2)
                    if a != b:
                        m[a, b] += 1
                        m[b, a] += 1
    return m


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 4),
    st.integers(0, 2**31 - 1),
    st.sampled_from([0.25, 1.0, 3.0]),
)
def test_association_matches_brute_force(h, w, n, seed, px):
    rng = np.random.default_rng(seed)
    lab = rng.integers(-1, n, size=(h, w))
    valid = rng.random((h, w)) < 0.8
    res = M.association_matrix(lab, valid, n, px)
    ref = _brute_force_boundary(lab, valid, n) * px
    assert np.allclose(res.boundary_um, ref)
    assert np.allclose(res.boundary_um, res.boundary_um.T)
    assert np.all(np.diag(res.boundary_um) == 0)
    pairs = sum(
        1 for r in range(h) for c in range(w) for r2, c2 in ((r, c + 1), (r + 1, c)) if r2 < h and c2 < w
    )
    assert res.total_boundary_um <= pairs * px + 1e-9
    assert res.total_boundary_um == pytest.approx(ref.sum() / 2)
    rows = res.association_pct.sum(axis=1)
    assert np.all(np.isclose(rows, 100) | (rows == 0))
