"""Shared fixtures: where the real example data lies (``<repo>/../shared/data/real``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path | None:
    """The real SEM examples, or None when the shared folder is not beside the repository."""
    env = os.environ.get("MINGRAPH_REAL_DATA")
    d = Path(env) if env else REPO.parent / "shared" / "data" / "real"
    return d if (d / "tile-bse.png").is_file() else None


CASES = REPO.parent / "shared" / "cases"
"""The failing inputs of public bug reports (../shared/cases, its README says what each is)."""


def case(name: str) -> Path:
    """The shared case folder ``name``; the test skips when the shared folder is absent."""
    d = CASES / name
    if not d.is_dir():
        pytest.skip(f"{d} not found (the shared cases sit beside the repository)")
    return d


@pytest.fixture
def real_dir() -> Path:
    d = real_data_dir()
    if d is None:
        pytest.skip("real example data not found at ../shared/data/real (set MINGRAPH_REAL_DATA)")
    return d


def seam_band(shape: tuple[int, int], block: int, half_width: int) -> np.ndarray:
    """(H, W) bool mask of the pixels within ``half_width`` of a block seam (every ``block`` px)."""
    band = np.zeros(shape, bool)
    for k in range(block, max(shape), block):
        band[k - half_width : k + half_width, :] = True
        band[:, k - half_width : k + half_width] = True
    return band


@pytest.fixture(scope="module")
def predicted_96(tmp_path_factory):
    """A ``mingraph predict --simulate 96`` output folder (one per test module)."""
    from click.testing import CliRunner

    from mingraph.cli import main

    out = tmp_path_factory.mktemp("predict96") / "run"
    res = CliRunner().invoke(main, ["predict", "--simulate", "96", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out
