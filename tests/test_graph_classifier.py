"""build-graphs --classifier: the physics classifier's probabilities as the EDS features, the
authors' ONNX encoder's embeddings, the record in each shard, a GAT trained on them, and shards
of other classifiers or class lists refused; without the option the shards are as before."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from mingraph.acquire.dataset import open_dataset, write_dataset
from mingraph.acquire.importing import simulated_record
from mingraph.acquire.simulate import simulate_tile
from mingraph.acquire.simulate.minerals import MINERALS, class_names
from mingraph.cli.group import main
from mingraph.common.errors import InputError
from mingraph.graphs.build import build_graphs
from mingraph.graphs.shards import Shard, open_shards
from mingraph.spectra.calibrate import Instrument
from mingraph.spectra.encoder import fit_pca, save_encoder
from mingraph.spectra.point_classifier import PhysicsClassifier

sys.path.insert(0, str(Path(__file__).parent))
from test_shards import _dense_dataset  # noqa: E402

ONNX = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "authors" / "eds_emb_model.onnx"


def _mineral_list(path: Path, names: list[str]) -> Path:
    formula = {m.name: m.formula for m in MINERALS}
    path.write_text("name,formula,density\n" + "".join(f"{n},{formula[n]},3.0\n" for n in names))
    return path


@pytest.fixture(scope="module")
def physics(tmp_path_factory):
    """Three simulated 32² fields (train, train, val) and their shards at 3 % EDS, built by the
    command with --classifier physics over a list of the minerals they hold and two more."""
    tmp = tmp_path_factory.mktemp("physics")
    tiles = [simulate_tile(s, 32) for s in (0, 2, 4)]
    recs = [
        simulated_record(t, f"sim-{i}", split)
        for i, (t, split) in enumerate(zip(tiles, ["train", "train", "val"]))
    ]
    ds = write_dataset(tmp / "ds", recs, class_names())
    fields = [open_dataset(ds).field(i) for i in range(3)]
    present = sorted({f.class_names[k] for f in fields for k in np.unique(f.labels[f.valid])})
    minerals = _mineral_list(
        tmp / "minerals.csv", present + [n for n in ("quartz", "pyrite") if n not in present]
    )
    res = CliRunner().invoke(
        main,
        ["build-graphs", str(ds), str(tmp / "sh"), "--fractions", "0.03", "--classifier", "physics"]
        + ["--minerals", str(minerals)],
    )
    assert res.exit_code == 0, res.output
    return tmp, minerals


def test_physics_features_are_the_classifiers_probabilities(physics):
    tmp, minerals = physics
    ds = open_dataset(tmp / "ds")
    idx = open_shards(tmp / "sh")
    clf_names = PhysicsClassifier(Instrument(beam_kev=20.0), minerals).names
    assert len(idx) == 3 and not (tmp / "sh" / "encoder.pt").exists()
    rec = idx.point_features
    assert rec["classifier"] == "physics" and rec["class_names"] == clf_names
    assert rec["feature_width"] == len(clf_names) + 1 and rec["unknown_column"] == "unknown"
    assert [rec["class_names"][c] if c >= 0 else None for c in rec["label_columns"]] == [
        n if n in clf_names else None for n in ds.class_names
    ]
    for k in range(len(idx)):
        g, info = idx.graph(k), idx.info(k)
        sh, row = idx.shards[idx.entries[k][0]], idx.entries[k][1]
        assert sh.spectra(row) is None  # features, not spectra
        spectra = ds.field(info["tile_index"]).eds.spectra(g.eds_rc[:, 0], g.eds_rc[:, 1])
        # independently: a fresh classifier at the simulator's 25 kV calibrates on these spectra
        ref_clf = PhysicsClassifier(Instrument(beam_kev=25.0), minerals)
        ref = ref_clf.class_probabilities(spectra)
        assert g.n_eds > 5 and g.eds_feat.shape == (g.n_eds, len(clf_names) + 1)
        np.testing.assert_allclose(g.eds_feat, ref, atol=1e-6)
        np.testing.assert_allclose(g.eds_feat.sum(1), 1.0, atol=1e-4)
        cal = sh.point_features["calibrations"][row]
        assert (cal["tile_id"], cal["fraction"], cal["draw"]) == (
            info["tile_id"],
            info["fraction"],
            info["draw"],
        )
        assert cal["calibration"]["instrument"] == pytest.approx(ref_clf.fit.instrument.to_dict())
    # the features name the field's minerals: most points' top class is their label's mineral
    hits = [
        rec["class_names"][c] == ds.class_names[label]
        for g in idx
        for c, label in zip(g.eds_feat.argmax(1), g.eds_labels)
        if c < len(clf_names) and label >= 0
    ]
    assert len(hits) > 10 and np.mean(hits) > 0.5, hits


def test_a_gat_trains_on_physics_features(physics, tmp_path):
    from mingraph.learn.bundle import load_bundle
    from mingraph.learn.train import train

    tmp, _ = physics
    width = open_shards(tmp / "sh").point_features["feature_width"]
    cfg = {"epochs": 1, "batch_size": 2, "hidden_channels": 8, "heads": 4, "seed": 0}
    last = train(tmp_path / "run", tmp / "sh", config=cfg, progress=False)
    assert last["epoch"] == 0 and np.isfinite(last["train_loss"])
    b = load_bundle(tmp_path / "run" / "best.pt")
    assert b.model.in_channels == width + 1 and b.encoder is None
    assert b.config["point_features"]["classifier"] == "physics"
    assert b.config["point_features"]["feature_width"] == width
    # an encoder has no place here: refused in one line
    enc = save_encoder(
        fit_pca(np.random.default_rng(0).poisson(1.0, (20, 3000)).astype(np.float32)), tmp_path / "e.pt"
    )
    with pytest.raises(
        InputError, match="physics classifier's class probabilities, not embeddings: drop --encoder"
    ):
        train(tmp_path / "run2", tmp / "sh", config=dict(cfg, encoder=str(enc)), progress=False)


def test_shards_of_other_classifiers_or_class_lists_are_refused(physics, tmp_path):
    tmp, minerals = physics
    folder = tmp_path / "mixed"
    shutil.copytree(tmp / "sh", folder)
    # raw-spectra shards (no --classifier) of the same dataset
    build_graphs(tmp / "ds", tmp_path / "plain", fractions=[0.03], progress=False)
    shutil.copy(tmp_path / "plain" / "train-00000.arrow", folder / "zz-plain.arrow")
    res = CliRunner().invoke(main, ["train", str(folder), "--out", str(tmp_path / "run"), "--epochs", "1"])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "zz-plain.arrow: point_features.classifier: expected 'physics'" in line
    assert "got 'spectra'" in line
    # the physics over another mineral list
    other = _mineral_list(tmp_path / "other.csv", open_shards(tmp / "sh").point_features["class_names"][:-1])
    build_graphs(
        tmp / "ds",
        tmp_path / "other",
        fractions=[0.03],
        progress=False,
        classifier="physics",
        minerals=other,
        max_tiles={"val": 0},
        tiles_per_shard=1,
    )
    (folder / "zz-plain.arrow").unlink()
    shutil.copy(tmp_path / "other" / "train-00001.arrow", folder / "zz-other.arrow")
    with pytest.raises(
        InputError, match=r"zz-other.arrow: point_features.class_names: expected .* as in train-00000.arrow"
    ):
        open_shards(folder)


def test_bad_choices_are_one_line_before_anything_is_written(physics, tmp_path):
    tmp, minerals = physics
    ds = tmp / "ds"
    enc = save_encoder(
        fit_pca(np.random.default_rng(0).poisson(1.0, (20, 3000)).astype(np.float32)), tmp_path / "e.pt"
    )
    cases = [
        (
            ["--classifier", "physics", "--encoder", str(enc)],
            "--encoder: physics: the physics classifier's features need no encoder",
        ),
        (["--minerals", str(minerals)], "--minerals: classifier: goes with --classifier physics"),
        (["--beam-kev", "15"], "--beam-kev: classifier: goes with --classifier physics"),
        (["--classifier", "encoder"], "--classifier: encoder: needs --encoder FILE"),
        (["--classifier", "onnx", "--encoder", str(enc)], "e.pt: kind: expected the authors' ONNX encoder"),
        (
            ["--classifier", "physics", "--minerals", str(tmp_path / "none.csv")],
            "none.csv: mineral library: file not found",
        ),
    ]
    for args, msg in cases:
        res = CliRunner().invoke(
            main, ["build-graphs", str(ds), str(tmp_path / "out"), "--fractions", "0.05", *args]
        )
        assert res.exit_code == 2, (args, res.output)
        assert res.output.strip() == f"error: {msg}" or (res.output.count("\n") == 1 and msg in res.output), (
            args,
            res.output,
        )
        assert not (tmp_path / "out").exists()
    # a list that names none of the dataset's classes
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("name,formula,density\nmy quartz,SiO2,2.65\n")
    with pytest.raises(
        InputError,
        match=r"dataset.json: class_names: no class of the dataset .* is named by the mineral list",
    ):
        build_graphs(
            ds, tmp_path / "out", fractions=[0.05], progress=False, classifier="physics", minerals=foreign
        )
    assert not (tmp_path / "out").exists()


def test_a_damaged_feature_record_is_refused(physics, tmp_path):
    tmp, _ = physics
    src = sorted((tmp / "sh").glob("*.arrow"))[0]
    table = pa.ipc.open_file(pa.memory_map(str(src))).read_all()
    meta = dict(table.schema.metadata)
    rec = json.loads(meta[b"point_features"])
    for change, msg in [
        ({"feature_width": rec["feature_width"] + 1}, "point_features.feature_width: expected"),
        ({"classifier": "magic"}, "point_features.classifier: expected one of physics, encoder, onnx"),
        ({"calibrations": []}, "point_features.calibrations: expected one per graph"),
    ]:
        meta[b"point_features"] = json.dumps(rec | change).encode()
        bad = tmp_path / "bad.arrow"
        t = table.replace_schema_metadata(meta)
        with pa.OSFile(str(bad), "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
            w.write_table(t)
        with pytest.raises(InputError, match=f"bad.arrow: {msg}"):
            Shard(bad)


def _content_digest(path: Path) -> tuple[str, list[str]]:
    """A shard's metadata (less the producer's version) and columns, as one digest."""
    t = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    meta = {k.decode(): v.decode() for k, v in t.schema.metadata.items() if k != b"producer"}
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in t.column_names:
        h.update(repr(t.column(name).to_pylist()).encode())
    return h.hexdigest()[:16], sorted(meta)


# the shards of raw spectra that build_graphs wrote before --classifier existed (commit 7d56c6b)
BEFORE = {
    "test-00000.arrow": "7b07021a523922aa",
    "train-00000.arrow": "de9b4fbc986355b7",
    "val-00000.arrow": "fd681d3f0145d46d",
}


def test_without_the_option_shards_are_as_before(tmp_path):
    ds = _dense_dataset(tmp_path / "ds")
    build_graphs(ds, tmp_path / "sh", fractions=[0.1, 0.3], progress=False, tiles_per_shard=2)
    got = {p.name: _content_digest(p) for p in sorted((tmp_path / "sh").glob("*.arrow"))}
    assert {k: v[0] for k, v in got.items()} == BEFORE
    assert all(v[1] == ["format", "job", "job_digest", "n_graphs", "schema_version"] for v in got.values())
    # --classifier encoder stores the same embeddings as --encoder alone, and says so
    s = open_dataset(ds).field(0)
    enc = save_encoder(fit_pca(s.eds.spectra(*np.nonzero(s.valid))), tmp_path / "enc.pt")
    build_graphs(ds, tmp_path / "a", fractions=[0.2], encoder=enc, progress=False)
    build_graphs(ds, tmp_path / "b", fractions=[0.2], encoder=enc, progress=False, classifier="encoder")
    a, b = open_shards(tmp_path / "a"), open_shards(tmp_path / "b")
    assert a.point_features == {"classifier": "encoder", "class_names": None, "feature_width": 64}
    assert b.point_features == a.point_features
    for k in range(len(a)):
        assert np.array_equal(a.graph(k).eds_feat, b.graph(k).eds_feat)
    assert "point_classifier" not in a.shards[0].job and b.shards[0].job["point_classifier"] == {
        "classifier": "encoder"
    }


@pytest.mark.skipif(not ONNX.is_file(), reason="the authors' ONNX encoder is not in shared/models/authors")
def test_onnx_features_are_the_authors_encoders_embeddings(tmp_path):
    pytest.importorskip("onnxruntime")
    from mingraph.learn.train import train
    from mingraph.spectra.encoder import load_encoder
    from mingraph.spectra.onnx_encoder import onnx_encoder

    ds = _dense_dataset(tmp_path / "ds")
    res = CliRunner().invoke(
        main,
        [
            "build-graphs",
            str(ds),
            str(tmp_path / "sh"),
            "--fractions",
            "0.2",
            "--classifier",
            "onnx",
            "--encoder",
            str(ONNX),
        ],
    )
    assert res.exit_code == 0, res.output
    idx = open_shards(tmp_path / "sh")
    assert idx.point_features == {"classifier": "onnx", "class_names": None, "feature_width": 64}
    assert load_encoder(tmp_path / "sh" / "encoder.pt").kind == "onnx"
    ref = onnx_encoder(ONNX)
    dsx = open_dataset(ds)
    for k in range(len(idx)):
        g = idx.graph(k)
        spec = dsx.field(idx.info(k)["tile_index"]).eds.spectra(g.eds_rc[:, 0], g.eds_rc[:, 1])
        np.testing.assert_allclose(g.eds_feat, ref.embed(spec), atol=1e-5)
    cfg = {"epochs": 1, "batch_size": 2, "hidden_channels": 8, "heads": 4}
    train(tmp_path / "run", tmp_path / "sh", config=cfg, progress=False)  # the encoder beside the shards


@pytest.fixture(scope="module")
def physics_gat(physics, tmp_path_factory):
    """A GAT trained one epoch on the physics shards of :func:`physics`."""
    from mingraph.learn.train import train

    tmp, minerals = physics
    run = tmp_path_factory.mktemp("physics-gat") / "run"
    cfg = {"epochs": 1, "batch_size": 2, "hidden_channels": 8, "heads": 4, "seed": 0}
    train(run, tmp / "sh", config=cfg, progress=False)
    return run / "best.pt", minerals, tmp / "ds"


def test_a_gat_trained_on_physics_predicts_with_the_physics(physics_gat, tmp_path):
    model, minerals, ds = physics_gat
    res = CliRunner().invoke(
        main,
        [
            "predict",
            "--simulate",
            "48",
            "--fraction",
            "0.03",
            "--model",
            str(model),
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert res.exit_code == 0, res.output
    legend = json.loads((tmp_path / "p" / "legend.json").read_text())
    shown = [e["name"] for e in legend["classes"]]
    assert shown == class_names()  # the dataset's classes, not the mineral list's
    rec = json.loads((tmp_path / "p" / "point_classifier.json").read_text())
    assert rec["classifier"] == "physics" and rec["minerals"] == str(minerals)
    assert rec["calibration"]["instrument"]["beam_kev"] == pytest.approx(25.0)  # the simulator's beam
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["summary"]["eds_points"] > 30
    # a dataset's field too: its labels scored in the model's classes, nearest-EDS beside it
    res = CliRunner().invoke(
        main,
        ["predict", str(ds), "--tile", "sim-2", "--fraction", "0.05", "--model", str(model)]
        + ["--out", str(tmp_path / "d")],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "d" / "summary.json").read_text())["metrics"]
    assert 0.0 <= metrics["f1_weighted"] <= 1.0 and metrics["nearest_eds_f1_weighted"] > 0.3, metrics


def test_the_gats_point_features_are_the_physics_probabilities(physics_gat):
    from mingraph.learn.bundle import load_model, point_classes
    from mingraph.workflows.field_input import open_field

    model, minerals, _ = physics_gat
    b = load_model(model)
    assert b.encoder is None and b.class_names == class_names()
    f = open_field(b, simulate=48, fraction=0.03, seed=1, say=lambda s: None)
    assert f.classifier == "physics" and f.bundle.class_names == class_names()
    # independently: a fresh classifier over the list, at the simulator's 25 kV, on the same spectra
    sample = simulate_tile(1, 48).field("x")
    spectra = sample.eds.spectra(f.rc[:, 0], f.rc[:, 1])
    ref_clf = PhysicsClassifier(Instrument(beam_kev=25.0), minerals)
    ref = ref_clf.class_probabilities(spectra)
    assert f.evidence.shape == (len(f.rc), len(ref_clf.names) + 1) == (len(f.rc), b.model.eds_dim)
    np.testing.assert_allclose(f.evidence, ref, atol=1e-6)
    assert len({tuple(r) for r in np.round(ref, 3)}) > 1  # the points differ
    # their classes: the most probable column's mineral as a dataset class, unknown -1
    top = ref.argmax(1)
    want = [class_names().index(ref_clf.names[c]) if c < len(ref_clf.names) else -1 for c in top]
    got = point_classes(f.bundle, f.evidence)
    assert got.tolist() == want and (got >= 0).mean() > 0.5


def test_a_gat_trained_on_physics_refuses_another_list_or_classifier(physics_gat, tmp_path):
    model, minerals, _ = physics_gat
    names = PhysicsClassifier(Instrument(beam_kev=25.0), minerals).names
    swapped = _mineral_list(tmp_path / "swapped.csv", [names[1], names[0], *names[2:]])
    same = _mineral_list(tmp_path / "same.csv", list(names))
    fewer = _mineral_list(tmp_path / "fewer.csv", list(names[:-1]))
    base = ["predict", "--simulate", "48", "--model", str(model), "--out", str(tmp_path / "o")]
    for extra, msg in [
        (
            ["--minerals", str(swapped)],
            f"{model}: point_features.class_names: expected the {len(names)} classes",
        ),
        (
            ["--minerals", str(fewer)],
            f"{model}: point_features.class_names: expected the {len(names)} classes",
        ),
        (["--classifier", "encoder"], "--classifier: encoder: "),
        (["--classifier", "onnx"], "--classifier: onnx: "),
    ]:
        res = CliRunner().invoke(main, base + extra)
        assert res.exit_code == 2, (extra, res.output)
        line = res.output.strip()
        assert "\n" not in line and msg in line, (extra, line)
        assert not (tmp_path / "o").exists()
    assert (
        "'" + names[1] + "', expected '" + names[0] + "'"
        in CliRunner().invoke(main, base + ["--minerals", str(swapped)]).output
    )
    assert "give --classifier physics" in CliRunner().invoke(main, base + ["--classifier", "encoder"]).output
    # the same classes in another file: accepted
    res = CliRunner().invoke(main, base + ["--minerals", str(same)])
    assert res.exit_code == 0, res.output


def test_predict_sample_with_a_physics_gat_reports_the_datasets_classes(physics_gat, tmp_path):
    import csv

    model, _, ds = physics_gat
    out = tmp_path / "ps"
    args = ["predict-sample", str(ds), "--model", str(model), "--out", str(out), "--fraction", "0.05"]
    res = CliRunner().invoke(main, args + ["--workers", "1", "--beam-kev", "25"])
    assert res.exit_code == 0, res.output
    with open(out / "sample" / "mineralogy" / "modal.csv") as fh:
        phases = [row["phase"] for row in csv.DictReader(fh)]
    assert phases[: len(class_names())] == class_names()
    assert json.loads((out / "fields" / "sim-0" / "field.json").read_text())["eds_points"] > 20
    assert '"physics"' in (out / "run.json").read_text()
