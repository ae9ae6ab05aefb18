"""The fusion trainer under torchrun: 2 CPU processes (gloo, DistributedDataParallel) end with the
weights of one process that steps on the mean of the two ranks' batch losses, each rank a
disjoint share of the epoch's items."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mingraph.acquire.dataset import open_dataset
from mingraph.learn import recipe as rcp
from mingraph.learn import train_fusion as tf
from mingraph.learn.fusion_model import FusionModel, batch_inputs

REPO = Path(__file__).resolve().parents[1]
WORLD, BATCH, N_FIELDS = 2, 2, 8
RECIPE = {
    "format": "mingraph-fusion-recipe",
    "version": 1,
    "fields": {
        "simulate": {"size": 24, "train_seeds": [100000, 100000 + N_FIELDS], "val_seeds": [100400, 100401]}
    },
    "encoder": "shipped",
    "epochs": 1,
    "batch_size": BATCH,
    "crop": 24,
    "channels": 8,
    "k": 4,
    "lr": 0.01,
    "schedule": "constant",
    "val_fractions": [0.05],
    "threads": 1,
    "device": "cpu",
}


def test_two_gloo_processes_equal_one_process_on_the_mean_of_their_batches(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(RECIPE))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}"]
    cmd += ["-m", "mingraph.cli", "train", "--arch", "fusion", "--recipe", str(tmp_path / "r.json")]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    res = subprocess.run(
        cmd + ["--out", str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["world_size"] == WORLD
    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    per_rank = N_FIELDS // (WORLD * BATCH)
    assert [x["epoch"] for x in log] == [1] and log[0]["steps"] == per_rank  # rank 0's steps
    # one process: the same items, rank r's batch b = positions r, r + W, ... of the epoch's plan
    cfg = rcp.resolve({k: v for k, v in RECIPE.items() if k not in ("format", "version")})
    ds = open_dataset(run / "fields")
    fields = [ds.field(i) for i in ds.indices("train")]
    enc = tf.load_training_encoder("shipped")
    torch.manual_seed(cfg["seed"])
    init = FusionModel(50, cfg["channels"], cfg["heads"], cfg["head_dim"], cfg["k"]).state_dict()
    plan = tf.epoch_plan(len(fields), cfg, 0)
    shares = [np.arange(len(plan))[r::WORLD] for r in range(WORLD)]
    assert not set(shares[0]) & set(shares[1]) and set(np.concatenate(shares)) == set(range(len(plan)))
    lo, hi = np.log(cfg["fraction_range"])

    def train_one_process(ranks: list[int]) -> dict:
        torch.manual_seed(cfg["seed"])
        model = FusionModel(50, cfg["channels"], cfg["heads"], cfg["head_dim"], cfg["k"])
        opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        for b in range(per_rank):
            losses = []
            for share in [shares[r] for r in ranks]:
                items = []
                for j in share[b * BATCH : (b + 1) * BATCH]:
                    f, draw, key = plan[j]
                    rng = np.random.default_rng(key)
                    frac = float(np.exp(rng.uniform(lo, hi)))
                    items.append(tf.training_item(fields[f], enc, cfg["k"], 24, frac, rng, draw))
                logp, _ = model(*batch_inputs([g for g, _, _ in items], [p for _, p, _ in items]))
                lab = torch.as_tensor(np.stack([y for _, _, y in items])).reshape(-1)
                losses.append(F.nll_loss(logp.reshape(-1, 50), lab, ignore_index=-1))
            opt.zero_grad()
            (sum(losses) / len(losses)).backward()
            opt.step()
        return model.state_dict()

    ddp_state = torch.load(run / "last.pt", weights_only=True)["model_state"]

    def gap(state: dict) -> torch.Tensor:
        return torch.cat([(ddp_state[k] - v).abs().flatten() for k, v in state.items()])

    diff, alone = gap(train_one_process([0, 1])), gap(train_one_process([0]))
    moved = torch.cat([(ddp_state[k] - v).abs().flatten() for k, v in init.items()])
    # AdamW divides by the root of the squared gradients, so where a gradient is near 0 the last
    # bits of a sum (the ranks' processes vs this one: docs/results.md) move a weight by up to a
    # few % of a step (lr 0.01); a rank that stepped on its own gradient alone, or on the sum, would
    # be off by about a step almost everywhere
    assert float(diff.max()) < 5e-4 and float((diff > 1e-5).float().mean()) < 0.05, float(diff.max())
    assert float(moved.median()) > 1e-3  # it trained: most weights moved by about a step
    assert float(alone.max()) > 20 * float(diff.max())  # rank 0's batches alone: another model
