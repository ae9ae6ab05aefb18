"""evaluate: scores on fixed draws, baselines against brute-force references, written outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from test_train import CFG, shards  # noqa: F401  (the module-scoped dataset fixture)

from mingraph.acquire.dataset import open_dataset
from mingraph.analyse.evaluate import EVAL_SEED, evaluate
from mingraph.graphs.build import build_graphs, field_graph
from mingraph.graphs.structure import build_structured_graph
from mingraph.learn.baselines import UNet, train_unet
from mingraph.learn.bundle import load_bundle
from mingraph.learn.train import train
from mingraph.spectra.encoder import classify, fit_cnn, save_encoder
from mingraph.spectra.fit import labelled_spectra
from mingraph_kernels.nearest import nearest_eds_labels as label_nearest


@pytest.fixture(scope="module")
def trained(shards, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("eval")
    x, y = labelled_spectra(shards / "ds", "train", 60, progress=False)
    enc = save_encoder(fit_cnn(x, y, 3, epochs=4, progress=False), tmp / "cnn.pt")
    build_graphs(shards / "ds", tmp / "sh", fractions=[0.1], encoder=enc, progress=False)
    train(tmp / "run", tmp / "sh", config=dict(CFG, epochs=4, encoder=str(enc)), progress=False)
    train_unet(shards / "ds", tmp / "unet.pt", epochs=2, progress=False)
    return tmp


def nearest_eds_labels(graph, eds_classes):
    """Nearest-EDS labelling as evaluate's method gives it: the kernel on the graph's own map."""
    return label_nearest(
        graph.height, graph.width, graph.eds_rc, np.asarray(eds_classes, np.int64), nearest=graph.nearest_eds
    )


def test_nearest_eds_labels_brute_force():
    rng = np.random.default_rng(2)
    rc = np.array([[0, 0], [5, 5], [2, 7]], np.int32)
    g = build_structured_graph(rng.random((8, 9)).astype(np.float32), rc, np.zeros((3, 64), np.float32))
    cls = np.array([4, 1, 2])
    got = nearest_eds_labels(g, cls)
    for r in range(8):
        for c in range(9):
            d = [(r - a) ** 2 + (c - b) ** 2 for a, b in rc]
            assert got[r, c] == cls[int(np.argmin(d))]
    empty = build_structured_graph(
        np.zeros((2, 3), np.float32), np.zeros((0, 2), np.int32), np.zeros((0, 64), np.float32)
    )
    assert (nearest_eds_labels(empty, np.zeros(0)) == -1).all()


def test_unet_any_size():
    net = UNet(5, base=4, depth=2).eval()
    import torch

    for h, w in [(1, 1), (1, 7), (13, 6), (16, 16)]:
        assert net(torch.zeros(1, 1, h, w)).shape == (1, 5, h, w)


def test_evaluate_writes_scores_and_matches_references(shards, trained):  # noqa: F811
    res = evaluate(
        trained / "run",
        shards / "ds",
        trained / "ev",
        fractions=[0.05, 0.2],
        split="test",
        unet=trained / "unet.pt",
        progress=False,
    )
    methods = {(r["method"], r["fraction_asked"]) for r in res["results"]}
    assert {m for m, _ in methods} >= {"GAT (paper)", "nearest EDS", "UNet (BSE only)"}
    assert any(m.startswith("geodesic nearest EDS") for m, _ in methods)
    assert (
        any(m.startswith("BSE-segment vote") for m, _ in methods)
        and ("learnt candidate pick", 0.2) in methods
    )
    assert {f for _, f in methods} == {0.05, 0.2}
    ds = open_dataset(shards / "ds")
    s = ds.field(ds.indices("test")[0])
    n_valid = int(((s.labels >= 0) & s.valid).sum())
    # the nearest-EDS score recomputed independently: same draw, brute-force Voronoi, per-class F1
    b = load_bundle(trained / "run" / "best.pt")
    t = ds.indices("test")[0]
    g, sp = field_graph(s, t, 0.2, 0, "random", EVAL_SEED, 1.0, b.encoder)
    cls = classify(b.encoder, sp)
    pred = np.array(
        [
            [cls[np.argmin(((g.eds_rc - [r, c]) ** 2).sum(1))] for c in range(s.shape[1])]
            for r in range(s.shape[0])
        ]
    )
    f1s, weights = [], []
    for k in range(3):
        tp = np.sum((pred == k) & (s.labels == k))
        p = tp / max(np.sum(pred == k), 1)
        rcl = tp / max(np.sum(s.labels == k), 1)
        f1s.append(2 * p * rcl / (p + rcl) if p + rcl else 0.0)
        weights.append(np.sum(s.labels == k) / n_valid)
    row = next(r for r in res["results"] if r["method"] == "nearest EDS" and r["fraction_asked"] == 0.2)
    assert row["f1_weighted"] == pytest.approx(float(np.dot(f1s, weights)))
    assert row["points"] == len(g.eds_rc) and row["fraction"] == len(g.eds_rc) / s.valid.sum()
    assert row["support"] == n_valid
    with open(trained / "ev" / "confusion-gat-0.2.csv") as fh:
        table = list(csv.reader(fh))
    assert table[0][1:] == ["quartz", "hematite", "cassiterite", "unclassified"]
    # one test tile: the paper's tile mean equals the pooled weighted score
    assert row["tile_mean_f1"] == pytest.approx(row["f1_weighted"]) and row["tiles_scored"] == 1
    assert sum(int(v) for r in table[1:] for v in r[1:]) == n_valid
    assert json.loads((trained / "ev" / "metrics.json").read_text())["results"] == json.loads(
        json.dumps(res["results"])
    )
    for p in [trained / "ev" / "confusion-gat-0.05.png", *map(str, res["overlays"])]:
        Image.open(p).verify()
    # same seed, same numbers
    again = evaluate(trained / "run", shards / "ds", trained / "ev2", fractions=[0.05, 0.2], progress=False)
    assert [r["f1_weighted"] for r in again["results"] if r["method"] == "GAT (paper)"] == [
        r["f1_weighted"] for r in res["results"] if r["method"] == "GAT (paper)"
    ]


def test_evaluate_refuses_unlabelled_data_and_foreign_baselines(shards, trained, tmp_path):  # noqa: F811
    from mingraph.acquire.dataset import TileRecord, write_dataset
    from mingraph.common.errors import InputError

    rng = np.random.default_rng(0)
    rec = TileRecord(
        "u0",
        "test",
        np.full((16, 16), 0.5, np.float32),
        np.ones((16, 16), bool),
        None,
        eds_kind="dense",
        spectra=rng.poisson(0.5, (16, 16, 3000)).astype(np.float32),
    )
    unlabelled = write_dataset(tmp_path / "u", [rec], ["quartz", "hematite", "cassiterite"])
    with pytest.raises(InputError, match="no labelled valid pixel"):
        evaluate(trained / "run", unlabelled, tmp_path / "ev", fractions=[0.1], progress=False)
    assert not (tmp_path / "ev").exists()
    train_unet(
        write_dataset(
            tmp_path / "o",
            [TileRecord("o0", "train", rec.bse, rec.valid, np.zeros((16, 16), np.int32))],
            ["a", "b", "c"],
        ),
        tmp_path / "unet.pt",
        epochs=1,
        progress=False,
    )
    with pytest.raises(InputError, match="UNet's classes differ"):
        evaluate(
            trained / "run",
            shards / "ds",
            tmp_path / "ev",
            fractions=[0.1],
            unet=tmp_path / "unet.pt",
            progress=False,
        )
