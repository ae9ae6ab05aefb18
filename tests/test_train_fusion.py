"""The fusion trainer: it learns, selects on validation, resumes exactly, and refuses bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mingraph.acquire.dataset import open_dataset
from mingraph.acquire.importing import simulate_dataset
from mingraph.cli import main
from mingraph.common.errors import InputError
from mingraph.learn import train_fusion as tf
from mingraph.learn.bundle import load_bundle
from mingraph.learn.fusion_model import FusionModel, batch_inputs
from mingraph.spectra.encoder import fit_cnn, save_encoder
from mingraph.spectra.fit import labelled_spectra

SMALL = {"crop": 32, "channels": 8, "batch_size": 2, "max_train_fields": 6, "val_max_fields": 2, "k": 4}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fusion")
    ds = simulate_dataset(tmp / "ds", 24, 32, seed=5, progress=False)
    x, y = labelled_spectra(ds, "train", 60, progress=False)
    enc = save_encoder(fit_cnn(x, y, 50, epochs=6, progress=False), tmp / "cnn.pt")
    return tmp, ds, enc


def test_fusion_training_writes_a_selected_model_and_learns(data):
    tmp, ds, enc = data
    last = tf.train_fusion(tmp / "run", ds, enc, progress=False, epochs=3, lr=1e-2, **SMALL)
    # the output is a mixture of the candidates' encoder evidence: what it learns is which candidate
    # to trust, so the gain is bounded by the encoder (measured: 0.593 -> 0.576 with these seeds)
    hist = [json.loads(s) for s in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2, 3] and last == hist[-1]
    # on fixed crops of training fields, the trained model's loss is below the same model untrained
    rng = np.random.default_rng(9)
    fields, last_model = open_dataset(ds), load_bundle(tmp / "run" / "last.pt")
    items = [tf.training_item(fields.field(i), last_model.encoder, 4, 32, 0.03, rng, 0) for i in range(4)]
    torch.manual_seed(0)  # the trainer's initialisation
    untrained = FusionModel(50, SMALL["channels"], 4, 8, SMALL["k"])
    trained = last_model.model
    losses = []
    for m in (untrained, trained):
        with torch.no_grad():
            logp, _ = m(*batch_inputs([g for g, _, _ in items], [p for _, p, _ in items]))
        lab = torch.as_tensor(np.stack([y for _, _, y in items]))
        losses.append(
            float(torch.nn.functional.nll_loss(logp.reshape(-1, 50), lab.reshape(-1), ignore_index=-1))
        )
    assert losses[1] < 0.99 * losses[0]
    best = load_bundle(tmp / "run" / "best.pt")
    assert best.arch == "fusion" and best.model.k == 4
    chosen = max(hist, key=lambda h: h["val_selection"])
    assert best.meta["metrics"]["epoch"] == chosen["epoch"]  # the best validation epoch is kept
    with pytest.raises(InputError, match="holds a checkpoint"):
        tf.train_fusion(tmp / "run", ds, enc, progress=False, epochs=1, **SMALL)


def test_an_interrupted_run_resumes_to_the_same_weights(data, monkeypatch):
    tmp, ds, enc = data
    whole = tf.train_fusion(tmp / "whole", ds, enc, progress=False, epochs=2, **SMALL)
    real, calls = tf.training_item, {"n": 0}

    def dies_in_epoch_two(*a, **k):
        calls["n"] += 1
        if calls["n"] > SMALL["max_train_fields"] + 2:  # an epoch takes one item per field: die in the second
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tf, "training_item", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        tf.train_fusion(tmp / "cut", ds, enc, progress=False, epochs=2, **SMALL)
    assert json.loads((tmp / "cut" / "config.json").read_text())["epochs"] == 2
    assert torch.load(tmp / "cut" / "resume.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(tf, "training_item", real)
    res = CliRunner().invoke(main, ["train", "--arch", "fusion", "--out", str(tmp / "cut"), "--resume"])
    assert res.exit_code == 0, res.output
    a, b = load_bundle(tmp / "whole" / "last.pt"), load_bundle(tmp / "cut" / "last.pt")
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    cut = [json.loads(s) for s in (tmp / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in cut] == [1, 2] and cut[-1]["val_selection"] == whole["val_selection"]
    # a resumed run keeps its settings
    res = CliRunner().invoke(
        main, ["train", "--arch", "fusion", "--out", str(tmp / "cut"), "--resume", "--epochs", "5"]
    )
    assert res.exit_code == 2 and "keeps its own settings" in res.output


def test_bad_input_is_refused_with_one_line(data, tmp_path):
    _, ds, enc = data
    with pytest.raises(InputError, match="unknown fusion settings"):
        tf.train_fusion(tmp_path / "r", ds, enc, progress=False, heads_count=2)
    with pytest.raises(InputError, match="no resume.pt"):
        tf.train_fusion(tmp_path / "r", ds, enc, progress=False, resume=True)
    res = CliRunner().invoke(main, ["train", "--arch", "fusion", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "needs --online DATASET (or a recipe's fields) and --encoder" in res.output
    np.testing.assert_equal(sorted(p.name for p in tmp_path.iterdir()), [])  # nothing half written


def test_point_spectra_fields_train_on_their_measured_points_only(data, tmp_path):
    """A dataset of point analyses (spectra at 20 % of pixels) trains; every drawn point was measured."""
    from mingraph.acquire.dataset import TileRecord, write_dataset

    _, ds, enc = data
    sim = open_dataset(ds)
    recs = []
    for i in sim.indices("train")[:6] + sim.indices("val")[:2]:
        f = sim.field(i)
        rng = np.random.default_rng(i)
        rc = np.argwhere(f.valid & (rng.random(f.shape) < 0.2))
        recs.append(
            TileRecord(
                f"p{i}",
                "train" if i in sim.indices("train") else "val",
                f.bse,
                f.valid,
                f.labels,
                eds_kind="points",
                spectra=f.eds.spectra(rc[:, 0], rc[:, 1]),
                eds_rc=rc,
            )
        )
    pts_path = write_dataset(tmp_path / "pts", recs, sim.class_names)
    pts = open_dataset(pts_path)
    f = pts.field(0)
    measured = tf.measurable(f)
    assert measured is not None and measured.sum() == len(recs[0].eds_rc)
    rng = np.random.default_rng(0)
    for frac in (0.01, 0.05, 0.5):  # 0.5: more than measured, so every measured point
        rc = tf.draw_points(f.valid, measured, frac, rng)
        assert measured[rc[:, 0], rc[:, 1]].all() and len(np.unique(rc, axis=0)) == len(rc)
        want = min(round(frac * f.valid.sum()), int((measured & f.valid).sum()))
        assert len(rc) == want
    assert tf.measurable(sim.field(0)) is None  # the simulator answers any pixel
    last = tf.train_fusion(
        tmp_path / "run", pts_path, enc, progress=False, epochs=1, **dict(SMALL, max_train_fields=None)
    )
    assert last["epoch"] == 1 and np.isfinite(last["train_loss"])


def test_frequency_weights_by_hand():
    from mingraph.learn.class_weights import frequency_weights

    # frequencies 3/4, 1/4, 0: inverse 4/3 and 4, support-weighted mean 2 -> 2/3 and 2; unseen 0
    np.testing.assert_allclose(frequency_weights(np.array([3, 1, 0]), 1.0), [2 / 3, 2, 0], rtol=1e-6)
    np.testing.assert_allclose(frequency_weights(np.array([3, 1, 0]), 1.0, cap=1.5), [2 / 3, 1, 0], rtol=1e-6)
    np.testing.assert_allclose(frequency_weights(np.array([3, 1]), 0.0), [1, 1], rtol=1e-6)
