"""The paper's released model in mingraph: checkpoint conversion, the ``authors`` graph
convention against their builder, the ONNX encoder against onnxruntime, and a CLI run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import REPO

from mingraph.cli import main
from mingraph.common.errors import InputError
from mingraph.graphs.structure import batch_graphs, build_structured_graph, edge_list
from mingraph.learn.model import GATModel, pyg_state_dict

pytest.importorskip("torch_geometric")
authors = pytest.importorskip("authors_reference")

AUTHORS = REPO.parent / "shared" / "models" / "authors"
CKPT, ONNX = AUTHORS / "model.ckpt", AUTHORS / "eds_emb_model.onnx"
need_models = pytest.mark.skipif(not CKPT.is_file(), reason="../shared/models/authors not present")
need_ort = pytest.mark.skipif(
    __import__("importlib").util.find_spec("onnxruntime") is None, reason="onnxruntime not installed"
)


def _points(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "random":  # integer pixels: many equidistant pairs, so KD-tree ties
        flat = rng.choice(h * w, size=max(3, h * w // 40), replace=False)
        rc = np.stack([flat // w, flat % w], 1)
    elif kind == "grid":  # TIMA "dots": a regular grid, ties everywhere
        rr, cc = np.mgrid[2:h:5, 1:w:4]
        rc = np.stack([rr.ravel(), cc.ravel()], 1)
    elif kind == "collinear":  # qhull fails: the 2-nearest-neighbour fallback, with a tie
        rc = np.array([[3, 1], [3, 4], [3, 5], [3, 9], [3, 13], [3, 17]])
    else:  # three points
        rc = np.array([[0, 0], [h - 1, 2], [4, w - 1]])
    return rng.permutation(rc).astype(np.int32)  # our order need not be row-major


def _as_authors_numbering(g, src, dst):
    """Map our node ids to the builder's (EDS nodes in row-major order of their pixels)."""
    hw = g.height * g.width
    order = np.lexsort((g.eds_rc[:, 1], g.eds_rc[:, 0]))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    m = lambda a: np.where(a >= hw, hw + rank[np.clip(a - hw, 0, None)], a)  # noqa: E731
    return m(src), m(dst)


@pytest.mark.parametrize("kind", ["random", "grid", "collinear", "three"])
def test_authors_convention_equals_their_builder(kind):
    if kind == "collinear":  # their fallback is scikit-learn's kneighbors_graph
        pytest.importorskip("sklearn")
    rng = np.random.default_rng(3)
    h, w = 23, 31
    rc = _points(kind, h, w, rng)
    g = build_structured_graph(
        rng.random((h, w)), rc, np.zeros((len(rc), 64)), lift=5.0, convention="authors"
    )
    s, d, a = edge_list(g, self_loops=False)
    s, d = _as_authors_numbering(g, s, d)
    mask = np.zeros((h, w), bool)
    mask[rc[:, 0], rc[:, 1]] = True
    ei, ea = authors.authors_edges(h, w, mask)
    ours = dict(zip(zip(s.tolist(), d.tolist()), a.tolist()))
    ref = dict(zip(zip(ei[0].tolist(), ei[1].tolist()), ea[:, 0].tolist()))
    assert len(ours) == len(s), "duplicate edges in our list"
    assert ours.keys() == ref.keys()
    np.testing.assert_allclose([ours[k] for k in ref], list(ref.values()), rtol=1e-6)
    if kind == "grid":  # ties exist and are not all lowest-index: the paper convention differs
        paper = build_structured_graph(rng.random((h, w)), rc, np.zeros((len(rc), 64)), lift=5.0)
        assert (paper.nearest_eds != g.nearest_eds).any()


def test_authors_convention_refuses_shared_pixels():
    with pytest.raises(ValueError, match="distinct EDS positions"):
        build_structured_graph(
            np.zeros((8, 8)), [[1, 1], [4, 4], [1, 1]], np.zeros((3, 64)), convention="authors"
        )


@need_models
def test_checkpoint_loads_into_the_paper_architecture():
    from mingraph.learn.convert import read_authors_checkpoint

    model, hp = read_authors_checkpoint(CKPT)
    ck = torch.load(CKPT, map_location="cpu", weights_only=True)["state_dict"]
    ours = pyg_state_dict(model)
    assert len(ours) == len(ck) == 18 and hp["out_channels"] == 50
    for k, v in ck.items():
        key = k.replace("features.", "0.", 1).replace("classification.", "1.", 1)
        assert torch.equal(ours[key], v), k


@need_models
@pytest.mark.parametrize("convention", ["paper", "authors"])
@pytest.mark.parametrize("kind", ["random", "grid"])
def test_logits_equal_pyg_gat_from_the_checkpoint(convention, kind):
    from mingraph.learn.convert import read_authors_checkpoint

    model, _ = read_authors_checkpoint(CKPT)
    seq = authors.authors_gat(CKPT)
    rng = np.random.default_rng(11)
    h, w = 40, 37
    rc = _points(kind, h, w, rng)
    emb = rng.normal(size=(len(rc), 64)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)  # like the ONNX encoder's output
    lift = 5.0 if convention == "authors" else 1.0
    g = build_structured_graph(rng.random((h, w)), rc, emb, lift=lift, convention=convention)
    s, d, a = edge_list(g, self_loops=False)
    x = np.zeros((h * w + len(rc), 65), np.float32)
    x[: h * w, 0] = g.bse.reshape(-1)
    x[h * w :, 1:] = emb
    ref = authors.authors_logits(
        seq, torch.from_numpy(x), torch.from_numpy(np.stack([s, d])), torch.from_numpy(a)[:, None]
    )
    scale = ref.abs().max()
    with torch.no_grad():
        for backend in ("structured", "sparse"):
            pix, eds = model(batch_graphs([g]), backend=backend)
            got = torch.cat([pix.reshape(h * w, -1), eds])
            assert (got - ref).abs().max() <= 1e-4 * scale, backend


@need_models
@need_ort
def test_onnx_encoder_equals_onnxruntime(tmp_path):
    from mingraph.spectra.encoder import encoder_blob, encoder_from_blob
    from mingraph.spectra.onnx_encoder import onnx_encoder

    rng = np.random.default_rng(0)
    spectra = rng.poisson(rng.uniform(0.05, 4.0, 3000), size=(300, 3000)).astype(np.float32)
    ref = authors.authors_embed(ONNX, spectra)
    enc = onnx_encoder(ONNX)
    got = enc.embed(spectra, batch=128)  # several batches
    assert got.shape == (300, 64) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # L2-normalised by the net
    again = encoder_from_blob(encoder_blob(enc)).embed(spectra)  # as stored in a model file
    np.testing.assert_array_equal(again, got)
    assert enc.embed(np.zeros((0, 3000), np.float32)).shape == (0, 64)


@need_ort
def test_onnx_encoder_refuses_a_file_that_is_not_onnx(tmp_path):
    from mingraph.spectra.onnx_encoder import onnx_encoder

    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(InputError, match="x.onnx: onnx: not a loadable ONNX model"):
        onnx_encoder(bad)
    with pytest.raises(InputError, match="file not found"):
        onnx_encoder(tmp_path / "missing.onnx")


@need_models
def test_convert_refuses_a_checkpoint_of_another_architecture(tmp_path):
    ck = torch.load(CKPT, map_location="cpu", weights_only=True)
    ck["hyper_parameters"]["heads"] = 8
    torch.save(ck, tmp_path / "other.ckpt")
    r = CliRunner().invoke(
        main,
        [
            "convert-model",
            "--from",
            "authors",
            str(tmp_path / "other.ckpt"),
            "--encoder",
            str(ONNX),
            str(tmp_path / "m.pt"),
        ],
    )
    assert r.exit_code == 2 and "hyper_parameters.heads: expected 4" in r.output
    assert not (tmp_path / "m.pt").exists()


def _field_inputs(tmp_path, h=60, w=70, seed=5):
    """A BSE image (uint16 PNG) and point spectra (.npz) with two simulated phases."""
    from PIL import Image

    from mingraph.acquire.simulate.eds_physics import mineral_spectrum

    rng = np.random.default_rng(seed)
    phase = (np.add.outer(np.arange(h), np.arange(w) * 0.6) + rng.normal(0, 4, (h, w)) > 50).astype(int)
    bse = np.where(phase == 1, 0.42, 0.38) + rng.normal(0, 0.01, (h, w))
    Image.fromarray(np.round(bse * 65535).astype(np.uint16)).save(tmp_path / "bse.png")
    flat = rng.choice(h * w, size=h * w // 25, replace=False)
    rc = np.stack([flat // w, flat % w], 1)
    shapes = [mineral_spectrum("quartz"), mineral_spectrum("albite")]
    lam = np.stack([shapes[p] / shapes[p].sum() * 2000 for p in phase[rc[:, 0], rc[:, 1]]])
    np.savez(tmp_path / "points.npz", rc=rc, spectra=rng.poisson(lam).astype(np.float32))
    return tmp_path / "bse.png", tmp_path / "points.npz"


@need_models
@need_ort
def test_cli_convert_then_predict_matches_the_authors_pipeline(tmp_path):
    import tifffile

    from mingraph.acquire.formats.images import read_bse

    model = tmp_path / "authors.pt"
    run = CliRunner().invoke(
        main, ["convert-model", "--from", "authors", str(CKPT), "--encoder", str(ONNX), str(model)]
    )
    assert run.exit_code == 0, run.output
    bse, points = _field_inputs(tmp_path)
    out = tmp_path / "out"
    run = CliRunner().invoke(
        main,
        ["predict", "--model", str(model), "--bse", str(bse), "--points", str(points), "--out", str(out)],
    )
    assert run.exit_code == 0, run.output
    ours = tifffile.imread(out / "phase_map.tif")
    with np.load(points) as z:
        ref = authors.authors_predict(CKPT, ONNX, read_bse(bse), z["rc"], z["spectra"])
    assert ours.shape == ref.shape and ours.min() >= 0 and ours.max() < 50
    assert (ours == ref).mean() >= 0.995


def test_shards_record_and_rebuild_the_authors_convention(tmp_path):
    from test_shards import _dense_dataset

    from mingraph.acquire.dataset import open_dataset
    from mingraph.graphs.build import build_graphs, field_graph
    from mingraph.graphs.shards import open_shards

    ds_path = _dense_dataset(tmp_path / "ds", h=16, w=13)
    kw = dict(fractions=[0.2], progress=False, tiles_per_shard=1)
    build_graphs(ds_path, tmp_path / "paper", **kw)
    build_graphs(ds_path, tmp_path / "authors", convention="authors", **kw)
    paper, theirs = open_shards(tmp_path / "paper"), open_shards(tmp_path / "authors")
    assert theirs.shards[0].job["convention"] == "authors" and theirs.shards[0].lift == 5.0
    assert paper.shards[0].lift == 1.0 and "convention" in paper.shards[0].job
    ds = open_dataset(ds_path)
    for sh in theirs.shards:
        t = sh.job["tile_indices"][0]
        ref, _ = field_graph(ds.field(t), t, 0.2, 0, lift=5.0, convention="authors")
        g = sh.graph(0, eds_feat=np.zeros((ref.n_eds, 64), np.float32))  # shards of raw spectra
        assert g.convention == "authors"
        for a, b in zip(edge_list(g), edge_list(ref)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="authors graphs link EDS nodes by Delaunay only"):
        theirs.shards[0].graph(0, eds_feat=np.zeros((ref.n_eds, 64), np.float32), eds_edges="knn")
    with pytest.raises(InputError, match="convention"):
        build_graphs(ds_path, tmp_path / "x", convention="theirs", **kw)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_authors_convention_with_fewer_than_three_points(n):
    """The builder refuses < 3 points; mingraph links 2 points (mutual nearest: 2d) and runs."""
    rc = np.array([[2, 3], [6, 1]][:n], np.int32).reshape(-1, 2)
    g = build_structured_graph(np.full((9, 8), 0.5), rc, np.ones((n, 64)), lift=5.0, convention="authors")
    s, d, a = edge_list(g, self_loops=False)
    eds_eds = (s >= 72) & (d >= 72)
    assert eds_eds.sum() == (2 if n == 2 else 0)
    if n == 2:
        np.testing.assert_allclose(a[eds_eds], 2 * np.sqrt(16 + 4), rtol=1e-6)
    if n:
        own = (s == 72) & (d == 2 * 8 + 3)
        assert a[own].tolist() == [10.0]  # 2h under the point
    model = GATModel(hidden_channels=8, num_classes=3).double()
    with torch.no_grad():
        p1, e1 = model(batch_graphs([g]), backend="structured")
        p2, e2 = model(batch_graphs([g]), backend="sparse")
    torch.testing.assert_close(p1, p2)
    torch.testing.assert_close(e1, e2)


def test_structured_gradients_equal_sparse_in_the_authors_convention():
    """Training in the authors convention: the fused Numba backward (distances stored / 2, edge
    constants × 2) gives the gradients of the explicit-edge-list backend."""
    rng = np.random.default_rng(2)
    h, w = 17, 19
    rc = _points("random", h, w, rng)
    g = build_structured_graph(
        rng.random((h, w)), rc, rng.normal(size=(len(rc), 64)), lift=5.0, convention="authors"
    )
    torch.manual_seed(0)
    model = GATModel(hidden_channels=8, num_classes=5).double()
    grads = []
    for backend in ("structured", "sparse"):
        model.zero_grad()
        pix, eds = model(batch_graphs([g]), backend=backend)
        (pix.square().sum() + eds.sum()).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-6, atol=1e-6, msg=k)  # fastmath sums


@need_models
@need_ort
def test_predict_refuses_two_points_on_one_pixel_for_the_authors_model(tmp_path):
    model = tmp_path / "authors.pt"
    from mingraph.learn.convert import convert_authors

    convert_authors(CKPT, ONNX, model)
    bse, points = _field_inputs(tmp_path, 20, 20)
    with np.load(points) as z:
        rc, spectra = z["rc"], z["spectra"]
    np.savez(points, rc=np.concatenate([rc, rc[:1]]), spectra=np.concatenate([spectra, spectra[:1]]))
    r = CliRunner().invoke(
        main,
        [
            "predict",
            "--model",
            str(model),
            "--bse",
            str(bse),
            "--points",
            str(points),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 2 and "distinct EDS positions" in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_training_on_authors_shards_records_the_convention(tmp_path):
    from test_shards import _dense_dataset

    from mingraph.graphs.build import build_graphs
    from mingraph.learn.bundle import load_bundle
    from mingraph.learn.train import train
    from mingraph.spectra.encoder import fit_pca, save_encoder

    ds = _dense_dataset(tmp_path / "ds", n_tiles=4, h=16, w=13)
    spectra = np.random.default_rng(1).poisson(0.3, size=(50, 3000)).astype(np.float32)
    enc = save_encoder(fit_pca(spectra), tmp_path / "enc.pt")
    build_graphs(ds, tmp_path / "sh", fractions=[0.2], encoder=enc, progress=False, convention="authors")
    cfg = {"batch_size": 2, "hidden_channels": 8, "heads": 4, "epochs": 1}
    train(tmp_path / "run", tmp_path / "sh", config=cfg, progress=False)
    b = load_bundle(tmp_path / "run" / "best.pt")
    assert b.config["convention"] == "authors" and b.config["lift"] == 5.0
