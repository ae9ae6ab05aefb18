"""``mingraph train`` under torchrun: DistributedDataParallel on CPU (gloo, 2 processes) gives the
gradients of one process on the same batches, each rank a disjoint share of the epoch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from test_train import CFG, shards  # noqa: F401  (the module fixture: tiny shards)

from mingraph.graphs.structure import build_structured_graph
from mingraph.learn import distributed as ddp
from mingraph.learn.model import GATModel
from mingraph.learn.train import batch_loss

REPO = Path(__file__).resolve().parents[1]
N_GRAPHS, STEPS, PER_RANK_BATCH, WORLD = 8, 2, 2, 2


def _graphs() -> list:
    """Eight small labelled graphs (random BSE, EDS features and phases), the same in every process."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(N_GRAPHS):
        bse = rng.random((12, 12)).astype(np.float32)
        rc = np.argwhere(rng.random((12, 12)) < 0.2).astype(np.int32)
        g = build_structured_graph(bse, rc, rng.normal(size=(len(rc), 64)).astype(np.float32))
        g.labels = rng.integers(0, 3, (12, 12)).astype(np.int64)
        g.eds_labels = g.labels[rc[:, 0], rc[:, 1]]
        out.append(g)
    return out


def _model() -> GATModel:
    torch.manual_seed(5)
    return GATModel(in_channels=65, hidden_channels=8, num_classes=3, heads=2)


def _order() -> np.ndarray:
    return np.random.default_rng([0, 0, 1]).permutation(N_GRAPHS)


def _rank_main(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist, device = ddp.setup("cpu")
    graphs = _graphs()
    model = _model()
    net = ddp.wrap(model, dist, device)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    mine = ddp.share(_order(), dist)
    grads = []
    for step in range(STEPS):
        batch = [graphs[k] for k in mine[step * PER_RANK_BATCH : (step + 1) * PER_RANK_BATCH]]
        loss, _, _ = batch_loss(net, batch, "structured", device)
        opt.zero_grad()
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        opt.step()
    torch.save({"share": mine, "grads": grads, "params": list(model.parameters())}, f"{out}/rank{rank}.pt")
    net = loss = None
    ddp.teardown(dist)
    ddp.end_worker()  # as `mingraph train` does under torchrun


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_gradients_equal_one_process_on_the_same_batches(tmp_path):
    mp.spawn(_rank_main, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    # each rank a disjoint share of the epoch's graphs, together all of them
    shares = [set(r["share"].tolist()) for r in ranks]
    assert not shares[0] & shares[1] and shares[0] | shares[1] == set(range(N_GRAPHS))
    # one process, the same batches: the gradient of the mean of the ranks' batch losses
    graphs, model = _graphs(), _model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(STEPS):
        opt.zero_grad()
        losses = []
        for r in ranks:
            ks = r["share"][step * PER_RANK_BATCH : (step + 1) * PER_RANK_BATCH]
            losses.append(batch_loss(model, [graphs[k] for k in ks], "structured", torch.device("cpu"))[0])
        (sum(losses) / WORLD).backward()
        for r in ranks:  # every rank holds the averaged gradient
            for g_ddp, p in zip(r["grads"][step], model.parameters()):
                torch.testing.assert_close(g_ddp, p.grad, rtol=1e-5, atol=1e-6)
        opt.step()
    for r in ranks:
        for a, b in zip(r["params"], model.parameters()):
            torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)


def _torchrun(shards_dir: Path, out: Path) -> subprocess.CompletedProcess:
    cfg = shards_dir / "ddp.json"
    cfg.write_text(json.dumps(dict(CFG, device="cpu")))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}"]
    cmd += ["-m", "mingraph.cli", "train", str(shards_dir / "sh"), "--out", str(out), "--epochs", "2"]
    cmd += ["--config", str(cfg)]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run(cmd + ["--device", "cpu"], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("runs", [2])
def test_train_under_torchrun_is_repeatable(shards, tmp_path, runs):  # noqa: F811
    weights = []
    for i in range(runs):
        res = _torchrun(shards, tmp_path / f"run{i}")
        assert res.returncode == 0, res.stderr[-3000:]
        log = [json.loads(x) for x in (tmp_path / f"run{i}" / "metrics.jsonl").read_text().splitlines()]
        assert [x["epoch"] for x in log] == [0, 1]
        assert all(x["graphs"] == 8 for x in log)  # 4 train tiles x 2 fractions, shared by the 2 ranks
        assert json.loads((tmp_path / f"run{i}" / "config.json").read_text())["world_size"] == WORLD
        weights.append(torch.load(tmp_path / f"run{i}" / "last.pt", weights_only=True)["model_state"])
    for k in weights[0]:
        torch.testing.assert_close(weights[0][k], weights[1][k], rtol=0, atol=0)


@pytest.mark.parametrize(
    "world, out", [("2", "written"), ("1", "written and went on"), (None, "written and went on")]
)
def test_end_worker_leaves_at_once_under_torchrun_only(world, out):
    code = (
        "import sys; from mingraph.learn.distributed import end_worker\n"
        "sys.stdout.write('written'); end_worker(); sys.stdout.write(' and went on')"
    )
    env = {k: v for k, v in os.environ.items() if k != "WORLD_SIZE"} | {"PYTHONPATH": str(REPO)}
    if world is not None:
        env["WORLD_SIZE"] = world
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout == out, res.stderr  # buffered output flushed before leaving


def test_world_size(monkeypatch):
    from mingraph.common.errors import InputError

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert ddp.world_size() == 1
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InputError, match="RANK/WORLD_SIZE: expected integers"):
        ddp.world_size()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert (
        ddp.world_size() == 2
    )  # the fusion trainer runs under torchrun too: test_train_fusion_distributed.py
