"""The raw dataset format: exact round trip, deterministic splits, atomic writes, clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mingraph.acquire.dataset import TileRecord, open_dataset, split_of, write_dataset
from mingraph.common.errors import InputError


def _rec(i, h=5, w=7, split="train"):
    rng = np.random.default_rng(i)
    lab = rng.integers(-1, 3, size=(h, w)).astype(np.int32)
    return TileRecord(
        f"t{i}",
        split,
        rng.random((h, w)).astype(np.float32),
        lab >= 0,
        lab,
        eds_mask=rng.random((h, w)) < 0.3,
        pixel_size_um=0.5,
    )


def test_round_trip_is_exact_to_16_bits(tmp_path):
    recs = [_rec(i, split=s) for i, s in enumerate(["train", "val", "test", "train"])]
    ds = open_dataset(write_dataset(tmp_path / "d", recs, ["a", "b", "c"], rows_per_group=3))
    assert (
        len(ds) == 4
        and ds.indices("train") == [0, 3]
        and ds.info["splits"] == {"train": 2, "val": 1, "test": 1}
    )
    for i, r in enumerate(recs):
        s = ds.field(i)
        assert np.abs(s.bse - r.bse).max() <= 0.5 / 65535 + 1e-7
        assert (
            np.array_equal(s.valid, r.valid)
            and np.array_equal(s.labels, r.labels)
            and np.array_equal(s.eds_mask, r.eds_mask)
        )
        assert s.pixel_size_um == 0.5 and s.name == f"t{i}" and s.class_names == ["a", "b", "c"]


def test_split_is_deterministic_and_near_80_10_10():
    splits = [split_of(i, seed=3) for i in range(4000)]
    assert splits == [split_of(i, seed=3) for i in range(4000)]
    frac = {s: splits.count(s) / 4000 for s in ("train", "val", "test")}
    assert (
        abs(frac["train"] - 0.8) < 0.03 and abs(frac["val"] - 0.1) < 0.02 and abs(frac["test"] - 0.1) < 0.02
    )
    assert splits[:100] == [split_of(i, seed=3) for i in range(100)]  # stable as N grows


def test_bad_records_leave_nothing_behind(tmp_path):
    bad = _rec(1)
    bad.labels = np.full((5, 7), 7, np.int32)
    with pytest.raises(InputError, match=r"tile t1: labels: class ids must lie in \[-1, 2\]"):
        write_dataset(tmp_path / "d", [_rec(0), bad], ["a", "b", "c"])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="duplicate tile id"):
        write_dataset(tmp_path / "d", [_rec(0), _rec(0)], ["a", "b", "c"])
    wrong = _rec(2)
    wrong.valid = np.ones((4, 7), bool)
    with pytest.raises(InputError, match=r"valid: shape \(4, 7\) differs"):
        write_dataset(tmp_path / "d", [wrong], ["a", "b", "c"])
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    write_dataset(tmp_path / "d", [_rec(0)], ["a", "b", "c"])
    with pytest.raises(InputError, match="already exists"):
        write_dataset(tmp_path / "d", [_rec(1)], ["a", "b", "c"])
    write_dataset(tmp_path / "d", [_rec(1)], ["a", "b", "c"], overwrite=True)
    assert open_dataset(tmp_path / "d").tile_ids == ["t1"]


def test_foreign_or_damaged_datasets_are_refused(tmp_path):
    with pytest.raises(InputError, match="dataset.json: missing"):
        open_dataset(tmp_path)
    d = write_dataset(tmp_path / "d", [_rec(0)], ["a", "b", "c"])
    info = json.loads((d / "dataset.json").read_text())
    (d / "dataset.json").write_text(json.dumps(info | {"schema_version": 99}))
    with pytest.raises(InputError, match="schema_version: expected 1, got 99"):
        open_dataset(d)
    (d / "dataset.json").write_text(json.dumps(info))
    raw = (d / "tiles.parquet").read_bytes()
    (d / "tiles.parquet").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="tiles.parquet: parquet: unreadable"):
        open_dataset(d)


def test_find_tile_by_id_or_index(tmp_path):
    ds = open_dataset(write_dataset(tmp_path / "d", [_rec(0), _rec(1)], ["a", "b", "c"]))
    assert ds.find("t1") == 1 and ds.find("0") == 0 and ds.find(1) == 1
    with pytest.raises(InputError, match="no tile 'x9'"):
        ds.find("x9")
    with pytest.raises(InputError, match="index below 2"):
        ds.find(2)
