"""Outputs written by the fast paths are the bytes the general ones write: CSV tables by the csv
module or pandas, points.npz from the spectra's CSR in memory or made dense and sparse again."""

from __future__ import annotations

import numpy as np
import pytest

import mingraph.analyse.mineralogy.csv_tables as csv_tables
from mingraph.acquire.formats.points import spectra_at_points
from mingraph.analyse.view_files import held_rows, write_points


def _columns(n: int) -> dict:
    rng = np.random.default_rng(0)
    m = max(n, 20)
    f = rng.normal(size=m) * 10.0 ** rng.integers(-8, 9, m)
    f[::17] = np.nan
    f[1:4] = [np.inf, -np.inf, -0.0]
    names = np.array(["quartz", "=x", "a,b", 'q"t', "-1", "+z", "new\nline", "émile"])
    cols = {
        "phase": rng.choice(names, m),
        "ecd_um": f,
        "area_f32": f.astype(np.float32),
        "id": rng.integers(-(10**12), 10**12, m),
        "n_u8": rng.integers(0, 255, m).astype(np.uint8),
        "free": rng.random(m) > 0.5,
        "=header": np.arange(m),
    }
    return {k: v[:n] for k, v in cols.items()}


@pytest.mark.parametrize("n", [0, 1, 500])
def test_small_tables_are_the_bytes_pandas_writes(tmp_path, monkeypatch, n):
    cols = _columns(n)
    small = csv_tables.write_columns(tmp_path / "small.csv", cols)
    monkeypatch.setattr(csv_tables, "PANDAS_ROWS", 0)
    big = csv_tables.write_columns(tmp_path / "pandas.csv", cols)
    assert small.read_bytes() == big.read_bytes()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_points_npz_from_memory_is_the_dense_round_trip(tmp_path, dtype):
    rng = np.random.default_rng(1)
    n = 300
    s = rng.poisson(0.3, (n, 3000)).astype(dtype)
    s[5] = 0  # a spectrum with no counts
    rc = np.stack(np.divmod(rng.permutation(40 * 40)[:n], 40), 1)
    eds = spectra_at_points(rc, s, (40, 40), "x")
    args = (rc, ["a", "b"], np.zeros(n, int), np.ones(n, np.float32), 1.0, eds.spectra)
    write_points(tmp_path / "dense", *args, chunk=70)
    held = held_rows(eds, rc)
    assert held is not None
    write_points(tmp_path / "held", *args, held=held)
    for name in ("points.npz", "points.csv"):
        assert (tmp_path / "dense" / name).read_bytes() == (tmp_path / "held" / name).read_bytes()


def test_no_held_rows_where_float32_would_lose_a_count():
    s = np.zeros((2, 3000))
    s[0, 3], s[1, 4] = 1e-50, 2.0  # 1e-50 is 0 in float32: the dense form drops it
    rc = np.array([[0, 0], [0, 1]])
    assert held_rows(spectra_at_points(rc, s, (1, 2), "x"), rc) is None
    assert held_rows(spectra_at_points(rc, s, (1, 2), "x"), rc[::-1]) is None  # another order
