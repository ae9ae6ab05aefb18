"""Numba's kernel cache where the package folder and the home are read-only: a temporary folder
(mingraph_kernels.cache_folder), not "no locator available"."""

from __future__ import annotations

import numpy as np
from numba.core import config

import mingraph_kernels
from mingraph_kernels.sparse_rows import csr_rows


def test_cache_goes_to_a_temporary_folder_when_nothing_else_is_writable(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(config, "CACHE_DIR", "")
    monkeypatch.setattr(mingraph_kernels, "_writable", lambda path: False)
    monkeypatch.setattr(mingraph_kernels.tempfile, "gettempdir", lambda: str(tmp_path))
    path = mingraph_kernels.cache_folder()
    assert path is not None and path.startswith(str(tmp_path))
    assert config.CACHE_DIR == path


def test_no_cache_folder_of_ours_where_numba_has_one(monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere")
    assert mingraph_kernels.cache_folder() is None


def test_csr_rows_is_what_nonzero_gives():
    rng = np.random.default_rng(0)
    s = rng.poisson(0.5, (50, 300)).astype(np.uint16)
    ptr, channel, count = csr_rows(s)
    rows, cols = np.nonzero(s)
    assert np.array_equal(np.repeat(np.arange(50), np.diff(ptr)), rows)
    assert np.array_equal(channel, cols) and np.array_equal(count, s[rows, cols])
