"""build-graphs shards: round trip, resume after a kill, refusal of truncated or foreign files."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mingraph.acquire.dataset import TileRecord, open_dataset, write_dataset
from mingraph.acquire.sampling import sample_points
from mingraph.common.errors import InputError
from mingraph.graphs.build import build_graphs, field_graph
from mingraph.graphs.shards import Shard, dense_spectra, open_shards, sparse_spectra
from mingraph.spectra.encoder import fit_pca, save_encoder


def _dense_dataset(path, n_tiles=3, h=12, w=9):
    rng = np.random.default_rng(5)
    recs = []
    for i in range(n_tiles):
        labels = rng.integers(0, 4, size=(h, w)).astype(np.int32)
        valid = np.ones((h, w), bool)
        valid[0, :3] = False
        labels[~valid] = -1
        spectra = rng.poisson(0.3, size=(h, w, 3000)).astype(np.float32)
        recs.append(
            TileRecord(
                f"t{i}",
                ["train", "val", "test"][i % 3],
                rng.random((h, w)).astype(np.float32),
                valid,
                labels,
                eds_kind="dense",
                spectra=spectra,
            )
        )
    return write_dataset(path, recs, ["a", "b", "c", "d"])


def test_sparse_spectra_round_trip():
    s = np.random.default_rng(0).poisson(0.2, size=(7, 3000)).astype(np.float32)
    s[3] = 0  # an empty spectrum
    assert np.array_equal(dense_spectra(*sparse_spectra(s)), s)
    with pytest.raises(InputError, match="whole numbers"):
        sparse_spectra(s + 0.5)


def test_shards_hold_exactly_the_sampled_graphs(tmp_path):
    ds_path = _dense_dataset(tmp_path / "ds")
    res = build_graphs(
        ds_path, tmp_path / "sh", fractions=[0.0, 0.05, 0.5], draws=2, progress=False, tiles_per_shard=1
    )
    assert res == {"shards": 3, "built": 3, "skipped": 0, "graphs": 18}
    ds = open_dataset(ds_path)
    idx = open_shards(tmp_path / "sh")
    assert len(idx) == 18
    seen = set()
    for k in range(len(idx)):
        info = idx.info(k)
        sh, row = idx.shards[idx.entries[k][0]], idx.entries[k][1]
        s = ds.field(info["tile_index"])
        ref, ref_spec = field_graph(s, info["tile_index"], info["fraction"], info["draw"])
        g = sh.graph(row, eds_feat=np.zeros((ref.n_eds, 64), np.float32))
        assert np.array_equal(g.eds_rc, ref.eds_rc) and np.array_equal(g.delaunay, ref.delaunay)
        assert np.array_equal(g.nearest_eds, ref.nearest_eds)
        assert np.array_equal(g.labels, ref.labels) and np.array_equal(g.eds_labels, ref.eds_labels)
        assert np.array_equal(sh.spectra(row), ref_spec)
        # EDS points lie on valid pixels and carry the spectra of those pixels
        assert all(s.valid[r, c] for r, c in g.eds_rc)
        assert np.array_equal(ref_spec, s.eds.spectra(g.eds_rc[:, 0], g.eds_rc[:, 1]))
        assert g.n_eds == (0 if info["fraction"] == 0 else round(info["fraction"] * s.valid.sum()))
        seen.add((info["tile_id"], info["fraction"], info["draw"]))
    assert len(seen) == 18  # every (tile, fraction, draw) once
    # two draws differ
    a = field_graph(ds.field(0), 0, 0.5, 0)[0].eds_rc
    b = field_graph(ds.field(0), 0, 0.5, 1)[0].eds_rc
    assert not np.array_equal(a, b)
    assert len(open_shards(tmp_path / "sh", split="train", fractions=[0.05])) == 2


def test_rerun_skips_verified_shards_and_rebuilds_broken_ones(tmp_path):
    ds_path = _dense_dataset(tmp_path / "ds")
    build_graphs(ds_path, tmp_path / "sh", fractions=[0.1], progress=False, tiles_per_shard=1)
    assert (
        build_graphs(ds_path, tmp_path / "sh", fractions=[0.1], progress=False, tiles_per_shard=1)["built"]
        == 0
    )
    victim = sorted((tmp_path / "sh").glob("*.arrow"))[0]
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 2])  # killed mid-write without the atomic rename
    with pytest.raises(InputError, match="truncated or foreign"):
        Shard(victim)
    (tmp_path / "sh" / ".val-00000.arrow.x1y2.tmp").write_bytes(b"partial")
    res = build_graphs(ds_path, tmp_path / "sh", fractions=[0.1], progress=False, tiles_per_shard=1)
    assert res["built"] == 1 and res["skipped"] == 2
    assert victim.read_bytes() == good  # deterministic rebuild
    assert not list((tmp_path / "sh").glob(".*.tmp"))
    # other arguments make the old shards stale: all rebuilt
    assert (
        build_graphs(ds_path, tmp_path / "sh", fractions=[0.1], seed=1, progress=False, tiles_per_shard=1)[
            "built"
        ]
        == 3
    )


def test_foreign_arrow_file_is_refused(tmp_path):
    t = pa.table({"x": [1, 2]})
    with pa.OSFile(str(tmp_path / "f.arrow"), "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
        w.write_table(t)
    with pytest.raises(InputError, match="f.arrow: format: expected a mingraph-shard file"):
        Shard(tmp_path / "f.arrow")


def test_encoder_embeddings_are_stored(tmp_path):
    ds_path = _dense_dataset(tmp_path / "ds")
    ds = open_dataset(ds_path)
    s = ds.field(0)
    enc = fit_pca(s.eds.spectra(*np.nonzero(s.valid)))
    save_encoder(enc, tmp_path / "enc.pt")
    build_graphs(ds_path, tmp_path / "sh", fractions=[0.2], encoder=tmp_path / "enc.pt", progress=False)
    idx = open_shards(tmp_path / "sh")
    for k in range(len(idx)):
        g = idx.graph(k)
        info = idx.info(k)
        spec = ds.field(info["tile_index"]).eds.spectra(g.eds_rc[:, 0], g.eds_rc[:, 1])
        assert np.allclose(g.eds_feat, enc.embed(spec), atol=1e-5)
        assert idx.shards[idx.entries[k][0]].spectra(idx.entries[k][1]) is None


def test_sampling_patterns():
    valid = np.ones((40, 50), bool)
    valid[:, :10] = False
    rng = np.random.default_rng(0)
    rc = sample_points(valid, 0.01, "random", rng)
    assert rc.shape == (16, 2) and valid[rc[:, 0], rc[:, 1]].all()
    assert len({tuple(p) for p in rc}) == 16  # no duplicates
    grid = sample_points(valid, 0.04, "grid", rng)  # spacing 5 px
    assert valid[grid[:, 0], grid[:, 1]].all()
    assert set(np.diff(np.unique(grid[:, 0]))) == {5} and set(np.diff(np.unique(grid[:, 1]))) == {5}
    mask = np.zeros_like(valid)
    mask[3, 4] = mask[10, 20] = True
    assert sample_points(valid, 0.5, "mask", rng, mask).tolist() == [[10, 20]]  # (3, 4) is not valid
    assert sample_points(valid, 0.0, "random", rng).shape == (0, 2)
    with pytest.raises(InputError, match="fraction"):
        sample_points(valid, 1.5, "random", rng)
    with pytest.raises(InputError, match="needs a sample with an EDS sampling mask"):
        sample_points(valid, 0.1, "mask", rng)


def test_rebuild_with_fewer_tiles_drops_old_shards(tmp_path):
    ds_path = _dense_dataset(tmp_path / "ds")
    build_graphs(ds_path, tmp_path / "sh", fractions=[0.1], progress=False, tiles_per_shard=1)
    assert len(open_shards(tmp_path / "sh")) == 3
    build_graphs(
        ds_path,
        tmp_path / "sh",
        fractions=[0.1],
        progress=False,
        tiles_per_shard=1,
        max_tiles={"val": 0, "test": 0},
    )
    assert sorted(p.name for p in (tmp_path / "sh").glob("*.arrow")) == ["train-00000.arrow"]


def test_shards_of_different_builds_are_not_mixed(tmp_path):
    ds_path = _dense_dataset(tmp_path / "ds")
    build_graphs(ds_path, tmp_path / "a", fractions=[0.1], progress=False, tiles_per_shard=1)
    build_graphs(ds_path, tmp_path / "b", fractions=[0.2], progress=False, tiles_per_shard=1)
    (tmp_path / "b" / "train-00000.arrow").rename(tmp_path / "a" / "zz-foreign.arrow")
    with pytest.raises(InputError, match="made with other fractions"):
        open_shards(tmp_path / "a")


def test_worker_errors_arrive_as_input_errors(tmp_path):
    import pickle

    e = pickle.loads(pickle.dumps(InputError("f.png", "eds_mask", "empty")))
    assert isinstance(e, InputError) and str(e) == "f.png: eds_mask: empty"
    ds_path = _dense_dataset(tmp_path / "ds")
    with pytest.raises(InputError, match="needs a sample with an EDS sampling mask"):
        build_graphs(ds_path, tmp_path / "sh", fractions=[0.1], pattern="mask", workers=2, progress=False)
    with pytest.raises(InputError, match="give one value"):
        build_graphs(ds_path, tmp_path / "sh", fractions=[0.1, 0.2], pattern="mask", progress=False)


def test_dask_workers_build_the_serial_shards_and_resume(tmp_path):
    """build-graphs on a 2-process Dask LocalCluster writes the serial run's shards byte for byte,
    and a re-run on Dask rebuilds only a shard that a kill left broken."""
    ds_path = _dense_dataset(tmp_path / "ds")
    opts = dict(fractions=[0.1, 0.3], progress=False, tiles_per_shard=1)
    build_graphs(ds_path, tmp_path / "serial", workers=1, **opts)
    res = build_graphs(ds_path, tmp_path / "dask", workers=2, **opts)
    assert res["built"] == 3
    serial = sorted((tmp_path / "serial").glob("*.arrow"))
    assert [p.read_bytes() for p in serial] == [(tmp_path / "dask" / p.name).read_bytes() for p in serial]
    victim = tmp_path / "dask" / serial[1].name
    victim.write_bytes(victim.read_bytes()[:100])
    res = build_graphs(ds_path, tmp_path / "dask", workers=2, **opts)
    assert res["built"] == 1 and res["skipped"] == 2
    assert victim.read_bytes() == serial[1].read_bytes()


def test_build_graphs_on_an_existing_dask_cluster(tmp_path):
    """--scheduler: the shards of a cluster started elsewhere (here a LocalCluster) equal the serial ones."""
    from distributed import LocalCluster

    ds_path = _dense_dataset(tmp_path / "ds", n_tiles=2)
    opts = dict(fractions=[0.1], progress=False, tiles_per_shard=1)
    build_graphs(ds_path, tmp_path / "serial", **opts)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        res = build_graphs(ds_path, tmp_path / "remote", scheduler=cluster.scheduler_address, **opts)
    assert res["built"] == 2
    for p in sorted((tmp_path / "serial").glob("*.arrow")):
        assert p.read_bytes() == (tmp_path / "remote" / p.name).read_bytes()
