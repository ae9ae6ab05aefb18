"""predict: outputs of a whole field, seamless blocks on large fields, and clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
from click.testing import CliRunner
from conftest import seam_band
from PIL import Image

from mingraph.acquire.fields import Field
from mingraph.acquire.simulate import simulate_tile
from mingraph.acquire.simulate.minerals import class_names
from mingraph.cli import main
from mingraph.common.errors import InputError
from mingraph.common.files import save_artifact
from mingraph.learn.bundle import make_bundle
from mingraph.learn.model import GATModel
from mingraph.learn.tiling import block_margin
from mingraph.learn.train import DEFAULT_CONFIG
from mingraph.spectra.encoder import fit_pca
from mingraph.workflows.predict import measure_points, predict_field, run_predict


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """An untrained paper-shaped model over the simulator's classes with a PCA encoder."""
    torch.manual_seed(0)
    t = simulate_tile(7, 64)
    s = t.field()
    rr, cc = np.nonzero(s.valid)
    enc = fit_pca(s.eds.spectra(rr[::5], cc[::5]))
    model = GATModel(num_classes=len(class_names()), hidden_channels=16).eval()
    b = make_bundle(model, enc, class_names(), dict(DEFAULT_CONFIG), {"note": "test"})
    path = save_artifact(b, tmp_path_factory.mktemp("model") / "m.pt")
    from mingraph.learn.bundle import load_bundle

    return load_bundle(path), path


def test_whole_field_outputs(bundle, tmp_path):
    b, _ = bundle
    s = simulate_tile(3, 80).field("f")
    rc, emb = measure_points(s, b, 0.02, "random", 1)
    res = run_predict(tmp_path / "out", s, b, rc, emb, {"input": "test"})
    out = tmp_path / "out"
    lab = tifffile.imread(out / "phase_map.tif")
    assert lab.shape == (80, 80) and (lab[~s.valid] == 255).all() and (lab[s.valid] < 50).all()
    legend = json.loads((out / "legend.json").read_text())
    assert [c["name"] for c in legend["classes"]] == class_names()
    conf = tifffile.imread(out / "confidence.tif")
    assert ((conf[s.valid] > 0) & (conf[s.valid] <= 1)).all()
    for p in ("overlay.png", "confidence.png", "mineralogy/modal.png"):
        Image.open(out / p).verify()
    modal = (out / "mineralogy" / "modal.csv").read_text()
    assert "area_pct" in modal and "mass_pct" in modal
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"]["eds_points"] == len(rc) and 0 <= summary["metrics"]["f1_weighted"] <= 1
    assert res["metrics"] == summary["metrics"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_blocks_match_the_whole_field(bundle):
    """Blocks with the margin give the whole-field answer away from seams and at them."""
    b, _ = bundle
    s = simulate_tile(11, 192).field("big")
    rc, emb = measure_points(s, b, 0.02, "random", 2)
    whole = predict_field(b, s.bse, s.valid, rc, emb, block=4096, progress=False)
    tiled = predict_field(b, s.bse, s.valid, rc, emb, block=64, progress=False)
    seam = seam_band(s.shape, 64, 3)
    v = s.valid
    # an untrained model: probabilities near 1/50, so compare them, not only the argmax
    diff = np.abs(whole.confidence - tiled.confidence)
    assert diff[seam & v].max() < 1e-3 and diff[~seam & v].max() < 1e-3
    assert (whole.labels == tiled.labels)[v].mean() > 0.98


def test_margin_follows_eds_spacing():
    assert block_margin((1000, 1000), 10000) == 40  # spacing 10 px -> 4 spacings
    assert block_margin((100, 100), 10000) == 32 and block_margin((100, 100), 0) == 32


def test_bad_inputs(bundle, tmp_path):
    b, path = bundle
    s = simulate_tile(3, 40).field("f")
    rc, emb = measure_points(s, b, 0.05, "random", 1)
    with pytest.raises(InputError, match=r"outside the 40x40 image"):
        run_predict(
            tmp_path / "o", s, b, np.vstack([rc, [[40, 2]]]), np.vstack([emb, emb[:1]]), {"input": "pts"}
        )
    with pytest.raises(InputError, match="expects 64 values per EDS point"):
        run_predict(tmp_path / "o", s, b, rc, emb[:, :32], {"input": "pts"})
    empty = Field(s.bse, s.valid, None, s.class_names, 1.0, s.eds, eds_mask=np.zeros(s.shape, bool))
    with pytest.raises(InputError, match="selects no valid pixel"):
        measure_points(empty, b, 0.01, "mask")
    assert not (tmp_path / "o").exists()
    r = CliRunner()

    def predict(points, model, out, *more):
        """``mingraph predict`` of the BSE image b.png with these points, model and output folder (paths)."""
        return r.invoke(
            main,
            [
                "predict",
                "--bse",
                str(tmp_path / "b.png"),
                "--points",
                str(points),
                *more,
                "--model",
                str(model),
                "--out",
                str(out),
            ],
        )

    Image.fromarray((s.bse * 65535).astype(np.uint16)).save(tmp_path / "b.png")
    np.savez(tmp_path / "p.npz", rc=rc, spectra=s.eds.spectra(rc[:, 0], rc[:, 1]))
    Image.fromarray(np.ones((30, 40), np.uint8)).save(tmp_path / "v.png")
    res = predict(tmp_path / "p.npz", path, tmp_path / "o", "--valid", str(tmp_path / "v.png"))
    assert (
        res.exit_code == 2
        and "v.png: valid: shape (30, 40) differs from the BSE image (40, 40)" in res.output
    )
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    res = predict(tmp_path / "bad.npz", path, tmp_path / "o")
    assert res.exit_code == 2 and "bad.npz: points: unreadable" in res.output
    # a model trained for other classes than the dataset's
    other = make_bundle(
        GATModel(num_classes=3, hidden_channels=8), b.encoder, ["a", "b", "c"], dict(DEFAULT_CONFIG), {}
    )
    save_artifact(other, tmp_path / "other.pt")
    res = predict(tmp_path / "p.npz", tmp_path / "other.pt", tmp_path / "o2")
    assert res.exit_code == 0  # a measured field has no classes of its own: the model's are used
    res = predict(tmp_path / "p.npz", tmp_path / "nope.pt", tmp_path / "o3")
    assert res.exit_code == 2 and "nope.pt: model: file not found" in res.output
    # the points round trip through the CLI gives a report
    res = predict(tmp_path / "p.npz", path, tmp_path / "ok")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ok" / "report.html").is_file()


def test_device_option(bundle, tmp_path):
    """--device picks where the model runs; a device that is not there is refused before any output."""
    _, path = bundle
    base = ["--simulate", "40", "--model", str(path), "--fraction", "0.05"]
    r = CliRunner()
    for dev in ("cpu", "auto"):
        res = r.invoke(main, ["predict", *base, "--device", dev, "--out", str(tmp_path / dev)])
        assert res.exit_code == 0, res.output
    a, b = (tifffile.imread(tmp_path / d / "phase_map.tif") for d in ("cpu", "auto"))
    if not torch.cuda.is_available():  # auto is the CPU here: the same map
        assert np.array_equal(a, b)
    bad = [
        (d, f"--device: device: expected cpu, cuda, cuda:N or auto, got '{d}'") for d in ("nonsense", "meta")
    ]
    if not torch.cuda.is_available():
        bad.append(("cuda", "--device: device: CUDA was asked for but no CUDA device is available"))
    for dev, msg in bad:
        for cmd in (["predict", *base], ["predict-sample", str(tmp_path / "none"), "--model", str(path)]):
            res = r.invoke(main, [*cmd, "--device", dev, "--out", str(tmp_path / "x")])
            assert res.exit_code == 2 and msg in res.output, res.output
            assert not (tmp_path / "x").exists()
