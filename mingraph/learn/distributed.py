"""Training on several processes, GPUs or nodes: ``torchrun ... -m mingraph.cli train ...``.

Under torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` set, WORLD_SIZE > 1) the trainers start a
process group (NCCL on CUDA, gloo on CPU), wrap the model in DistributedDataParallel and give each
rank a disjoint share of the epoch's graphs: the epoch's order depends only on (seed, epoch), and
rank r takes positions r, r + W, r + 2W, ... of it (:func:`share`).  Each rank forms batches of
``batch_size`` graphs from its share, so one optimiser step sees W × batch_size graphs; DDP
averages the ranks' gradients, i.e. the gradient of the mean of the ranks' batch losses.  The same
seed and world size give the same result.  Ranks with fewer batches in an epoch (graphs of other
sizes batch apart) join through DDP's ``join`` context, so no rank waits forever.  Rank 0 alone
validates and writes metrics and checkpoints.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch

from mingraph.common.errors import InputError


@dataclass(frozen=True)
class Dist:
    """This process's place: rank in [0, world), and its rank on its node (the GPU it takes)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on rank 0 (the process that validates and writes)."""
        return self.rank == 0


SINGLE = Dist()  # one process: no torchrun


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU; a device that is not there, or is neither CPU
    nor CUDA, is refused (InputError)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise InputError("--device", "device", f"expected cpu, cuda, cuda:N or auto, got {name!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device", "device", "CUDA was asked for but no CUDA device is available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(
            "--device",
            "device",
            f"{name} asked for, but this machine has {torch.cuda.device_count()} CUDA devices",
        )
    return dev


def world_size() -> int:
    """The number of processes torchrun started (``WORLD_SIZE``; 1 without torchrun).  Raises
    InputError when it is not an integer."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise InputError(
            "environment", "RANK/WORLD_SIZE", "expected integers (as torchrun sets them)"
        ) from None


def setup(device: str = "auto") -> tuple[Dist, torch.device]:
    """(Dist, device) of this process; joins the torchrun process group when WORLD_SIZE > 1
    (on CUDA each rank takes GPU ``LOCAL_RANK``).  Raises InputError for bad torchrun variables."""
    world = world_size()
    try:
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise InputError(
            "environment", "RANK/WORLD_SIZE", "expected integers (as torchrun sets them)"
        ) from None
    dev = pick_device(device)
    if world <= 1:
        return Dist(), dev
    if not 0 <= rank < world:
        raise InputError("environment", "RANK", f"expected 0 <= RANK < WORLD_SIZE={world}, got {rank}")
    if dev.type == "cuda":
        dev = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local), dev


def wrap(model: torch.nn.Module, dist: Dist, device: torch.device) -> torch.nn.Module:
    """The model as DistributedDataParallel when several processes train it, else as it is."""
    if dist.world <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def share(order: np.ndarray, dist: Dist) -> np.ndarray:
    """This rank's disjoint share of an epoch's order: positions rank, rank + W, ..."""
    return np.asarray(order)[dist.rank :: dist.world]


def joined(model: torch.nn.Module):
    """DDP's join context (ranks may run out of batches at different steps), or a no-op."""
    return model.join() if hasattr(model, "join") and dist_active() else contextlib.nullcontext()


def dist_active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def all_sum(values: list[float], dist: Dist, device: torch.device | None = None) -> list[float]:
    """Sums of ``values`` over every rank (the values themselves on one process); ``device`` the
    rank's device (NCCL reduces CUDA tensors only)."""
    if dist.world <= 1 or not dist_active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def barrier(dist: Dist) -> None:
    """Wait for every rank (nothing on one process)."""
    if dist.world > 1 and dist_active():
        torch.distributed.barrier()


def teardown(dist: Dist) -> None:
    """Leave the process group (the last step of a distributed run): wait for every rank, free
    what still holds the group (a DistributedDataParallel wrapper the caller has dropped), then
    destroy it."""
    if dist.world > 1 and dist_active():
        torch.distributed.barrier()
        gc.collect()
        torch.distributed.destroy_process_group()


def end_worker() -> None:
    """End a torchrun worker that has finished its work (outputs written, :func:`teardown` done):
    flush stdout and stderr and leave with status 0 at once (``os._exit``), without interpreter
    finalisation and C++ static destructors.  There, gloo's worker threads can abort the process
    after a run that finished well (SIGABRT, "terminate called without an active exception"; seen
    once in CI on a rank waiting to exit; see pytorch/pytorch PR 179291 on gloo threads at
    finalisation).  torchrun would then report the whole run failed.  Does nothing outside
    torchrun (WORLD_SIZE unset or 1), so in-process callers such as ``mingraph study`` go on."""
    if world_size() <= 1:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
