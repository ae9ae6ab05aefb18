"""Training: runs on shards, checkpoints atomically, logs metrics, resumes to the same result."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mingraph.acquire.dataset import TileRecord, write_dataset
from mingraph.common.errors import InputError
from mingraph.graphs.build import build_graphs
from mingraph.learn.bundle import load_bundle
from mingraph.learn.train import train
from mingraph.spectra.encoder import fit_pca, load_encoder, save_encoder


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Six 16×16 tiles whose phases are told apart only by their spectra (equal BSE)."""
    tmp = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    peaks = [170, 640, 344]  # Si Ka, Fe Ka, Sn La channels
    recs = []
    for i in range(6):
        lab = np.zeros((16, 16), np.int32)
        lab[:, 8:] = 1
        lab[10:, :] = 2
        lab = np.roll(lab, i, axis=1)
        mean = np.full((16, 16, 3000), 0.02, np.float32)
        for k, ch in enumerate(peaks):
            mean[lab == k, ch - 3 : ch + 4] += 40.0
        spectra = rng.poisson(mean).astype(np.float32)
        bse = np.full((16, 16), 0.5, np.float32) + rng.normal(0, 0.01, (16, 16)).astype(np.float32)
        recs.append(
            TileRecord(
                f"t{i}",
                ["train", "train", "train", "train", "val", "test"][i],
                bse,
                np.ones((16, 16), bool),
                lab,
                eds_kind="dense",
                spectra=spectra,
            )
        )
    ds = write_dataset(tmp / "ds", recs, ["quartz", "hematite", "cassiterite"])
    x = np.concatenate([r.spectra.reshape(-1, 3000)[::7] for r in recs[:4]])
    enc = save_encoder(fit_pca(x), tmp / "enc.pt")
    build_graphs(ds, tmp / "sh", fractions=[0.05, 0.2], encoder=enc, progress=False)
    return tmp


CFG = {"batch_size": 4, "lr": 0.01, "seed": 3, "hidden_channels": 16, "heads": 4}


def test_train_learns_checkpoints_and_logs(shards, tmp_path):
    last = train(tmp_path / "run", shards / "sh", config=dict(CFG, epochs=12), progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == list(range(12))
    assert lines[-1]["train_loss"] < 0.5 * lines[0]["train_loss"]
    # spectra separate the phases, BSE alone cannot: far above the majority-class start
    assert last["val_f1_weighted"] > 0.7 and last["val_f1_weighted"] > lines[0]["val_f1_weighted"] + 0.4
    b = load_bundle(tmp_path / "run" / "best.pt")
    assert b.class_names == ["quartz", "hematite", "cassiterite"] and b.model.num_classes == 3
    assert not list((tmp_path / "run").glob(".*tmp"))
    with pytest.raises(InputError, match="holds a checkpoint"):
        train(tmp_path / "run", shards / "sh", config=CFG, progress=False)
    # the bundle carries the encoder that made the shards (copied beside them by build-graphs)
    assert b.encoder is not None and b.encoder.digest == load_encoder(shards / "enc.pt").digest


def test_resume_equals_uninterrupted(shards, tmp_path):
    train(tmp_path / "full", shards / "sh", config=dict(CFG, epochs=3), progress=False)
    train(tmp_path / "part", shards / "sh", config=dict(CFG, epochs=1), progress=False)
    train(tmp_path / "part", resume=True, epochs=3, progress=False)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model_state"]
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)["model_state"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    la = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    lb = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert len(la) == len(lb) == 3
    for x, y in zip(la, lb):
        assert json.loads(x)["train_loss"] == pytest.approx(json.loads(y)["train_loss"], rel=1e-5)


def test_resume_refuses_other_settings_and_failed_starts_can_restart(shards, tmp_path):
    train(tmp_path / "r", shards / "sh", config=dict(CFG, epochs=1), progress=False)
    with pytest.raises(InputError, match="drop SHARDS"):
        train(tmp_path / "r", shards / "sh", resume=True, progress=False)
    # a start that fails before its first checkpoint leaves a folder that a plain re-run accepts
    with pytest.raises(InputError, match="--device"):
        train(
            tmp_path / "f",
            shards / "sh",
            config=dict(CFG, epochs=1, device="cuda:0" if not torch.cuda.is_available() else "nonsense"),
            progress=False,
        )
    train(tmp_path / "f", shards / "sh", config=dict(CFG, epochs=1), progress=False)


def test_encoder_must_match_the_shards(shards, tmp_path):
    other = save_encoder(
        fit_pca(np.random.default_rng(1).poisson(1.0, (50, 3000)).astype(np.float32)), tmp_path / "other.pt"
    )
    with pytest.raises(InputError, match="is not the one that made these shards"):
        train(tmp_path / "r", shards / "sh", config=dict(CFG, epochs=1, encoder=str(other)), progress=False)


def test_without_validation_best_follows_last(shards, tmp_path):
    from mingraph.acquire.dataset import open_dataset

    ds = open_dataset(shards / "ds")
    build_graphs(
        ds.path,
        tmp_path / "sh",
        fractions=[0.1],
        encoder=shards / "enc.pt",
        progress=False,
        max_tiles={"val": 0},
    )
    with pytest.warns(UserWarning, match="no validation graphs"):
        train(tmp_path / "run", tmp_path / "sh", config=dict(CFG, epochs=2), progress=False)
    assert load_bundle(tmp_path / "run" / "best.pt").meta["epoch"] == 1


def test_bad_config_is_refused(shards, tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"epochz": 3}))
    with pytest.raises(InputError, match=r"c.json: config: unknown keys \['epochz'\]"):
        train(tmp_path / "r", shards / "sh", config=tmp_path / "c.json", progress=False)
    with pytest.raises(InputError, match="either SHARDS or --online"):
        train(tmp_path / "r2", None, None, progress=False)
