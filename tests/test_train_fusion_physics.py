"""The fusion model trained on the physics classifier's probabilities (issue 23, item 2: the
point evidence of the classifier it will be given): the columns the labels are scored in, by name;
the probabilities as the physics gives them; one-line refusals; a miniature trained end to end
from the command line, recorded, and predicting with the physics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from test_train_fusion_recipe import _train, _write, mini_recipe

from mingraph.acquire.dataset import open_dataset
from mingraph.acquire.simulate import simulate_tile
from mingraph.acquire.simulate.minerals import class_names as mineral_names
from mingraph.cli import main
from mingraph.common.errors import InputError
from mingraph.learn import train_fusion as tf
from mingraph.learn.bundle import load_model, with_classifier
from mingraph.learn.training_evidence import instrument_of, physics_evidence
from mingraph.spectra.calibrate import Instrument
from mingraph.spectra.point_classifier import PhysicsClassifier

BEAM = Instrument(beam_kev=25.0, takeoff_deg=35.0, fwhm_mnka_ev=130.0)  # the simulator's


def test_physics_columns_are_the_library_minerals_of_the_same_names():
    names = mineral_names()
    ev = physics_evidence(names, BEAM, "ds")
    lib = PhysicsClassifier(BEAM).names
    assert ev.width == len(lib) + 1 and ev.palette_skip == 1 and ev.scored == len(lib)
    assert [lib[c] for c in ev.columns] == list(names)  # by name, every class
    lab = np.array([[0, -1, 5], [len(names) - 1, 3, -1]])
    want = [[lib.index(names[v]) if v >= 0 else -1 for v in row] for row in lab]
    assert ev.labels(lab).tolist() == want


def test_physics_probabilities_are_the_classifiers():
    s = simulate_tile(4242, 24).field()
    rc = np.argwhere(s.valid)[::17]
    spectra = s.eds.spectra(rc[:, 0], rc[:, 1])
    got = physics_evidence(mineral_names(), BEAM, "ds").probabilities(spectra)
    want = PhysicsClassifier(BEAM).class_probabilities(spectra)
    np.testing.assert_array_equal(got, want)
    assert got.shape == (len(rc), len(PhysicsClassifier(BEAM).names) + 1)


def test_a_class_not_in_the_library_is_refused_in_one_line():
    with pytest.raises(InputError) as e:
        physics_evidence(["quartz", "unobtainium", "mordorite"], BEAM, "my-dataset")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("my-dataset: class_names:") and "unobtainium, mordorite" in msg


def test_the_instrument_of_a_simulated_dataset_is_the_simulators():
    s = simulate_tile(1, 16)
    got = instrument_of(s.eds_params, True, "ds")
    assert (got.beam_kev, got.takeoff_deg, got.fwhm_mnka_ev) == (25.0, 35.0, 130.0)
    with pytest.raises(InputError, match="beam"):
        instrument_of({}, False, "ds")  # a measured field that states no beam energy


def test_training_items_score_labels_in_the_physics_columns():
    f = simulate_tile(7, 48).field()
    ev = physics_evidence(mineral_names(), BEAM, "ds")
    graph, probs, labels = tf.training_item(f, None, 4, 32, 0.05, np.random.default_rng(0), 1, None, ev)
    assert probs.shape == (graph.n_eds, ev.width) and np.allclose(probs.sum(1), 1, atol=1e-5)
    lib = PhysicsClassifier(BEAM).names
    names = mineral_names()
    # the same crop with the labels as they are (the encoder's columns): the physics' are their names
    _, _, plain = tf.training_item(f, _Uniform(len(names)), 4, 32, 0.05, np.random.default_rng(0), 1)
    assert ((labels >= 0) == (plain >= 0)).all()
    assert [lib[v] for v in labels[labels >= 0]] == [names[v] for v in plain[plain >= 0]]


class _Uniform:
    """A stand-in encoder: uniform class probabilities (only the labels are compared)."""

    kind, unknown_column = "cnn", False

    def __init__(self, n):
        self.n_classes = n


@pytest.fixture(autouse=True)
def _uniform_probabilities(monkeypatch):
    real = tf.class_probabilities

    def fake(encoder, spectra):
        if isinstance(encoder, _Uniform):
            return np.full((len(spectra), encoder.n_classes), 1 / encoder.n_classes, np.float32)
        return real(encoder, spectra)

    monkeypatch.setattr(tf, "class_probabilities", fake)


def test_balanced_weights_with_the_physics_are_refused_in_one_line(tmp_path):
    res = _train(_write(tmp_path / "r.json", mini_recipe(classifier="physics", balanced=0.5)), tmp_path / "r")
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert (
        "\n" not in line and f"{tmp_path / 'r.json'}: balanced: class weights are per dataset class" in line
    )
    assert not (tmp_path / "r").exists()  # refused before any work
    both = _train(
        _write(tmp_path / "q.json", mini_recipe(classifier="physics")),
        tmp_path / "q",
        "--set",
        "balanced=0.5",
    )
    assert (
        both.exit_code == 2
        and "train: balanced: class weights" in both.output
        and not (tmp_path / "q").exists()
    )


def test_a_miniature_trained_on_the_physics_is_recorded_and_predicts_with_it(tmp_path):
    res = _train(_write(tmp_path / "p.json", mini_recipe(classifier="physics", epochs=1)), tmp_path / "p")
    assert res.exit_code == 0, res.output
    hist = [json.loads(s) for s in (tmp_path / "p" / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite(hist[0]["train_loss"]) and 0 <= hist[0]["val_f1_weighted_0.05"] <= 1
    b = load_model(tmp_path / "p" / "last.pt")
    assert b.meta["recipe"]["classifier"] == "physics"
    ev = b.meta["point_evidence"]
    assert ev["classifier"] == "physics" and ev["class_names"] == PhysicsClassifier(BEAM).names
    assert ev["physics"]["calibration"] is None  # simulated fields: the simulator's instrument as it is
    info = CliRunner().invoke(main, ["model", "info", str(tmp_path / "p" / "last.pt")])
    assert info.exit_code == 0 and 'classifier: "physics"' in info.output
    # predicting with the physics: labels in the library's minerals, never a class it has no column of
    from mingraph.workflows.predict import predict_field

    phys = with_classifier(b, "physics", BEAM)
    s = simulate_tile(4242, 40).field()
    rc = np.argwhere(s.valid & (np.random.default_rng(0).random(s.shape) < 0.05)).astype(np.int32)
    probs = phys.encoder.class_probabilities(s.eds.spectra(rc[:, 0], rc[:, 1]))
    out = predict_field(phys, s.bse, s.valid, rc, probs, progress=False)
    assert out.labels.shape == s.shape and out.labels.max() < len(phys.class_names)
    ds = open_dataset(tmp_path / "p" / "fields")
    assert ds.class_names == mineral_names()
