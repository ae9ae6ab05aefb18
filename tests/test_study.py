"""The study command end to end on a tiny simulated dataset and protocol."""

from __future__ import annotations

import json

from PIL import Image

from mingraph.acquire.importing import simulate_dataset
from mingraph.workflows import study


def test_tiny_study_runs_every_step_and_writes_results(tmp_path, monkeypatch):
    ds = simulate_dataset(tmp_path / "ds", 40, 32, seed=1, progress=False)  # 35 train, 2 val, 3 test
    tiny = {
        "description": "test",
        "encoder_tiles_points": 30,
        "encoder_epochs": 1,
        "fractions": [0.01, 0.1],
        "max_tiles": {"train": 8, "val": 2, "test": 3},
        "train": {
            "epochs": 1,
            "max_train_graphs": 8,
            "val_max_graphs": 4,
            "hidden_channels": 8,
            "batch_size": 4,
        },
        "online": False,
        "unet": {"epochs": 2, "patience": 1, "max_tiles": 4, "val_max_tiles": 2},
        "fusion": {"epochs": 1, "crop": 32, "channels": 8, "max_train_fields": 8, "val_max_fields": 2},
    }
    monkeypatch.setitem(study.PROTOCOLS, "tiny", tiny)
    path = study.run_study(ds, tmp_path / "st", "tiny", workers=1, docs=tmp_path / "docs")
    text = path.read_text()
    metrics = json.loads((tmp_path / "st" / "eval" / "metrics.json").read_text())
    methods = {r["method"] for r in metrics["results"]}
    both = {"fusion model", "GAT (paper)", "GAT (kNN graph)", "nearest EDS", "UNet (BSE only)"}
    assert (
        both | {"fusion model, shipped (default_model.pt)"} <= methods
    )  # the study's models and the shipped one
    assert "measured-classes ceiling (oracle)" in methods
    assert (
        len(methods) == 10
    )  # and the two classical fusion baselines, the learnt candidate pick, the oracle row
    real = {r["fraction_asked"]: r["fraction"] for r in metrics["results"]}
    assert set(real) == {0.01, 0.1} and all(abs(real[f] - f) < 0.002 for f in real)  # rounding only
    for m in methods:
        assert all(f"| {m} | {100 * real[f]:.3g} |" in text for f in real)  # labelled by the real fraction
    assert metrics["tiles"] == 3 and len(metrics["results"]) == 20  # 10 methods, 2 fractions
    assert f"| nearest EDS | {100 * real[0.01]:.3g} | " in text and "| +0.000 / +0.000 |" in text
    for name in ("f1-vs-fraction.png", "delaunay-vs-knn.png"):
        Image.open(tmp_path / "docs" / "img" / name).verify()
    assert (tmp_path / "docs" / "study.md").read_text() == text
    # a second run resumes: nothing is retrained, results are rewritten identically; a finished
    # fusion run without resume state (older runs wrote none) is kept, not trained again
    (tmp_path / "st" / "fusion" / "resume.pt").unlink()
    fusion_last = (tmp_path / "st" / "fusion" / "last.pt").stat().st_mtime_ns
    again = study.run_study(ds, tmp_path / "st", "tiny", workers=1)
    assert again.read_text().split("## Table 1")[1] == text.split("## Table 1")[1]
    assert (tmp_path / "st" / "fusion" / "last.pt").stat().st_mtime_ns == fusion_last  # not rewritten
