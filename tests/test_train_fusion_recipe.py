"""The fusion model's recipe: one file of every training choice, a miniature of it trained end to
end from the command line, its record in the model file (``mingraph model info``), repeatable
weights, and one-line refusals of bad recipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mingraph.acquire.dataset import open_dataset
from mingraph.acquire.simulate import simulate_tile
from mingraph.cli import main
from mingraph.common.errors import InputError
from mingraph.learn import recipe as rcp
from mingraph.learn import train_fusion as tf
from mingraph.learn.bundle import default_model_path, load_model
from mingraph.version import __version__

REPO = Path(__file__).resolve().parents[1]
MINI_SEEDS, MINI_VAL = [100000, 100006], [100400, 100402]


def mini_recipe(**over) -> dict:
    """A one-minute miniature of the shipped recipe: its keys, smaller fields, crops and model."""
    obj = json.loads(rcp.shipped_recipe_path().read_text())
    obj.update(
        fields={"simulate": {"size": 32, "train_seeds": MINI_SEEDS, "val_seeds": MINI_VAL}},
        epochs=2,
        batch_size=2,
        crop=32,
        draws=2,
        channels=8,
        k=4,
        val_fractions=[0.05],
        threads=1,
        device="cpu",
    )
    return obj | over


def _train(recipe, out, *extra):
    return CliRunner().invoke(
        main, ["train", "--arch", "fusion", "--recipe", str(recipe), "--out", str(out), *extra]
    )


def _write(path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recipe")
    res = _train(_write(tmp / "mini.json", mini_recipe()), tmp / "a")
    assert res.exit_code == 0, res.output
    return tmp


def test_the_shipped_file_records_the_shipped_recipe():
    """The independent reference is the shipped model file itself: what its trainer recorded."""
    shipped = torch.load(default_model_path(), map_location="cpu", weights_only=False)
    r = rcp.load_recipe(rcp.shipped_recipe_path())
    assert set(r) == set(rcp.DEFAULTS)  # the file names every choice, nothing else
    meta = shipped["meta"]
    assert rcp.resolve(meta["recipe"]) == rcp.resolve(r)
    for key in ("channels", "heads", "head_dim", "k", "palette", "mask_input", "standardise"):
        assert r[key] == shipped["model_config"][key], key
    assert meta["code"]["git_commit"] and meta["code"]["git_dirty"] is False  # committed code
    sim = r["fields"]["simulate"]
    assert meta["data"]["train_field_seeds"] == list(range(*sim["train_seeds"]))
    assert meta["data"]["val_field_seeds"] == list(range(*sim["val_seeds"]))
    assert set(range(*sim["val_seeds"])).isdisjoint(range(*sim["train_seeds"]))
    assert set(range(*sim["val_seeds"])).isdisjoint(range(4242, 4254))  # tests/test_default_model.py's
    assert r["encoder"] == "shipped"


def test_the_prototype_recipe_names_every_choice_and_its_file():
    """The reconstruction of the model shipped before issue 23's retrain: a valid recipe that
    names the file it reconstructs (in the repository's history, not in the tree)."""
    obj = json.loads((rcp.recipes_folder() / "fusion-prototype-a.json").read_text())
    assert len(obj["reconstructs"]["sha256"]) == 64
    r = rcp.load_recipe(rcp.recipes_folder() / "fusion-prototype-a.json")
    assert set(r) == set(rcp.DEFAULTS) and r["draws"] == 3 and r["noise"] == "fixed"


def test_model_info_on_the_shipped_file_prints_its_recipe():
    res = CliRunner().invoke(main, ["model", "info", str(default_model_path())])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "not recorded" not in out
    assert "recipe: (the repository's fusion-default.json)" in out
    assert "train_seeds: [100000, 100400]" in out and "palette: 16" in out
    assert "git_commit:" in out and "train_field_seeds:" in out


def test_model_info_names_the_reconstruction_of_a_file_without_a_record(tmp_path, monkeypatch):
    from mingraph.common.files import save_artifact
    from mingraph.learn.bundle import make_bundle
    from mingraph.learn.fusion_model import FusionModel

    f = tmp_path / "old.pt"
    save_artifact(make_bundle(FusionModel(3, 8, 2, 4, 4), None, list("abc"), {"epochs": 6}, {}), f)
    res = CliRunner().invoke(main, ["model", "info", str(f)])
    assert "not recorded in this file: recipe, code version, data seeds" in res.output
    assert "reconstructed recipe" not in res.output and "epochs: 6" in res.output
    folder = tmp_path / "recipes"
    folder.mkdir()
    rec = json.loads((rcp.recipes_folder() / "fusion-prototype-a.json").read_text())
    rec["reconstructs"]["sha256"] = rcp.file_sha256(f)
    (folder / "old.json").write_text(json.dumps(rec))
    monkeypatch.setattr(rcp, "recipes_folder", lambda: folder)
    res = CliRunner().invoke(main, ["model", "info", str(f)])
    assert (
        f"reconstructed recipe (written afterwards, not recorded when it was trained): {folder / 'old.json'}"
        in res.output
    )
    assert "3 fixed draws each" in res.output


def test_train_help_gives_each_architectures_epochs():
    from mingraph.learn.train import DEFAULT_CONFIG
    from mingraph.learn.trainers import DEFAULT_EPOCHS

    assert DEFAULT_EPOCHS == {"paper": DEFAULT_CONFIG["epochs"], "fusion": rcp.DEFAULTS["epochs"]}
    assert (DEFAULT_CONFIG["epochs"], rcp.DEFAULTS["epochs"]) == (120, 6)  # the paper's; the shipped file's
    res = CliRunner().invoke(main, ["train", "--help"])
    text = " ".join(res.output.split())
    assert "120 for paper" in text and "6 for fusion" in text and "--recipe" in text


def test_miniature_end_to_end_records_its_recipe_and_predicts(mini_run):
    run = mini_run / "a"
    # the fields are the recipe's seeds: the same BSE as the simulator gives for those seeds
    ds = open_dataset(run / "fields")
    assert ds.indices("train") and len(ds.indices("train")) == 6 and len(ds.indices("val")) == 2
    field, tile = ds.field(ds.indices("train")[3]), simulate_tile(100003, 32)
    np.testing.assert_allclose(field.bse, tile.bse, rtol=0, atol=1 / 65535)  # stored as 16-bit levels
    np.testing.assert_array_equal(field.labels, tile.labels)
    hist = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2]
    assert all(h["steps"] == 6 * 2 // 2 for h in hist)  # 6 fields × 2 draws, batch 2
    res = CliRunner().invoke(main, ["model", "info", str(run / "last.pt")])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "not recorded" not in out
    assert "crop: 32" in out and "draws: 2" in out and 'noise: "fresh"' in out
    assert "train_seeds: [100000, 100006]" in out
    assert f'mingraph: "{__version__}"' in out
    b = load_model(run / "last.pt")
    assert b.meta["data"]["train_field_seeds"] == list(range(*MINI_SEEDS))
    assert b.meta["data"]["val_field_seeds"] == list(range(*MINI_VAL))
    body = {k: v for k, v in mini_recipe().items() if k not in ("format", "version", "about")}
    assert b.meta["recipe"] == rcp.resolve(body)  # the whole recipe, as given
    commit = b.meta["code"]["git_commit"]
    assert commit is None or (len(commit) == 40 and int(commit, 16) >= 0)
    # the file loads and predicts a field it never saw
    from mingraph.workflows.predict import predict_field

    s = simulate_tile(4242, 40).field()
    rng = np.random.default_rng(0)
    rc = np.argwhere(s.valid & (rng.random(s.shape) < 0.05)).astype(np.int32)
    from mingraph.learn.bundle import point_features

    feats = point_features(b, s.eds.spectra(rc[:, 0], rc[:, 1]))
    phases = predict_field(b, s.bse, s.valid, rc, feats, progress=False).labels
    assert phases.shape == s.shape and phases[s.valid].min() >= 0 and phases.max() < 50


def test_the_same_recipe_gives_the_same_weights_and_another_seed_others(mini_run):
    """Two runs of the one command, each in a process of its own as a user runs it, end with the
    same weights bit for bit; another seed ends elsewhere.  (In one process, the first run can
    differ from later ones in the last bits: docs/results.md, 'The shipped model's recipe'.)"""
    tmp = mini_run
    cmd = [
        sys.executable,
        "-m",
        "mingraph.cli",
        "train",
        "--arch",
        "fusion",
        "--recipe",
        str(tmp / "mini.json"),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for name in ("b1", "b2"):
        res = subprocess.run(
            cmd + ["--out", str(tmp / name)], env=env, capture_output=True, text=True, timeout=600
        )
        assert res.returncode == 0, res.stderr[-3000:]
    res = _train(tmp / "mini.json", tmp / "c", "--seed", "1")
    assert res.exit_code == 0, res.output
    b1, b2, a, c = (
        torch.load(tmp / n / "last.pt", weights_only=True)["model_state"] for n in ("b1", "b2", "a", "c")
    )
    for k in b1:
        assert torch.equal(b1[k], b2[k]), k
        torch.testing.assert_close(a[k], b1[k], rtol=0, atol=1e-4)  # in-process: the same but last bits
    assert max(float((a[k] - c[k]).abs().max()) for k in a) > 1e-3


def test_fixed_draws_repeat_every_epoch_and_fresh_ones_do_not():
    cfg = {"draws": 3, "seed": 7, "noise": "fixed"}
    e0, e1 = tf.epoch_plan(5, cfg, 0), tf.epoch_plan(5, cfg, 1)
    assert [f for f, _, _ in e0] != [f for f, _, _ in e1]  # another order ...
    assert sorted(map(str, e0)) == sorted(map(str, e1))  # ... of the same items
    counts = np.bincount([f for f, _, _ in e0], minlength=5)
    assert counts.tolist() == [3] * 5 and sorted({d for _, d, _ in e0}) == [1, 2, 3]
    fresh = {"draws": 3, "seed": 7, "noise": "fresh"}
    f0, f1 = tf.epoch_plan(5, fresh, 0), tf.epoch_plan(5, fresh, 1)
    assert sorted({d for _, d, _ in f0}) == [1, 2, 3] and sorted({d for _, d, _ in f1}) == [4, 5, 6]
    assert not {str(k) for _, _, k in f0} & {str(k) for _, _, k in f1}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"crop": 0}, "crop: expected a positive integer, got 0"),
        ({"noise": "sometimes"}, 'noise: expected "fresh" or "fixed", got "sometimes"'),
        ({"fraction_range": [0.05, 0.01]}, "fraction_range: expected [low, high]"),
        ({"crops": 96}, "crops: not a recipe field; known: fields, encoder"),
        ({"fields": {"simulate": {"size": 32}}}, 'fields: expected {"simulate"'),
        ({"format": "other"}, 'format: expected "mingraph-fusion-recipe"'),
    ],
)
def test_a_bad_recipe_is_refused_in_one_line_naming_file_and_field(tmp_path, change, message):
    path = _write(tmp_path / "bad.json", mini_recipe(**change))
    res = _train(path, tmp_path / "r")
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and f"{path}: {message}" in line
    assert not (tmp_path / "r").exists()


def test_options_refused_in_one_line(tmp_path):
    runner = CliRunner()
    out = ["--out", str(tmp_path / "r")]
    res = runner.invoke(main, ["train", "--arch", "fusion", "--set", "crop", *out])
    assert res.exit_code == 2 and "--set: crop: expected KEY=VALUE" in res.output
    res = runner.invoke(main, ["train", "--arch", "fusion", "--crop", "64", "--set", "crop=32", *out])
    assert res.exit_code == 2 and "--set: crop: given twice" in res.output
    res = runner.invoke(main, ["train", "--arch", "fusion", "--set", "schedule=weekly", *out])
    assert res.exit_code == 2 and 'train: schedule: expected "one-cycle" or "constant"' in res.output
    res = runner.invoke(main, ["train", "--arch", "paper", "--online", "x", "--crop", "64", *out])
    assert res.exit_code == 2 and "--crop are the fusion model's" in res.output
    (tmp_path / "notjson.json").write_text("{crop: 1")
    with pytest.raises(InputError, match="notjson.json: --recipe: expected a JSON recipe file"):
        rcp.load_recipe(tmp_path / "notjson.json")
    assert not (tmp_path / "r").exists()


def test_instrument_inputs_train_and_are_recorded(mini_run, tmp_path):
    """Masks a user has, a changed detector and TIMA's grid, set from the command line."""
    args = [
        "train",
        "--arch",
        "fusion",
        "--recipe",
        str(mini_run / "mini.json"),
        "--out",
        str(tmp_path / "r"),
    ]
    args += ["--epochs", "1", "--set", 'mask=["none","window","rough"]', "--set", 'points=["random","grid"]']
    args += [
        "--set",
        'bse_augment={"gain":[0.8,1.2],"offset":[-0.05,0.05],"noise":[0,0.02],"drift":0.05,"charging":0.3}',
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    b = load_model(tmp_path / "r" / "last.pt")
    assert b.meta["recipe"]["mask"] == ["none", "window", "rough"]
    assert (
        b.meta["recipe"]["points"] == ["random", "grid"]
        and b.meta["recipe"]["bse_augment"]["charging"] == 0.3
    )
    hist = [json.loads(s) for s in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite(hist[0]["train_loss"]) and hist[0]["steps"] == 6


def test_model_info_refuses_what_is_not_a_model_file_in_one_line(tmp_path):
    (tmp_path / "x.pt").write_text("not a model")
    for path, message in ((tmp_path / "none.pt", "file not found"), (tmp_path / "x.pt", "unreadable")):
        res = CliRunner().invoke(main, ["model", "info", str(path)])
        assert (
            res.exit_code == 2 and res.output.count("\n") == 1 and f"{path}: model: {message}" in res.output
        )
    res = CliRunner().invoke(main, ["model", "info", str(default_model_path().parent / "paper_gat.pt")])
    assert res.exit_code == 0 and "not recorded in this file: code version, data seeds" in res.output
    assert "its config (the paper trainer's settings):" in res.output and "epochs: 8" in res.output


def test_online_data_wins_over_the_recipes_fields_and_the_record_says_so(mini_run, tmp_path):
    res = _train(
        mini_run / "mini.json", tmp_path / "r", "--online", str(mini_run / "a" / "fields"), "--epochs", "1"
    )
    assert res.exit_code == 0, res.output
    b = load_model(tmp_path / "r" / "last.pt")
    assert b.meta["recipe"]["fields"] is None and b.meta["data"]["fields"] is None
    assert b.meta["data"]["dataset"] == "fields" and not (tmp_path / "r" / "fields").exists()
    assert b.meta["data"]["train_field_seeds"] == list(range(*MINI_SEEDS))  # read from the dataset's fields
