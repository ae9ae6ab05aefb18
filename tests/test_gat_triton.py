"""The Triton kernels of the structured attention equal the torch reference, forward and backward.

Without a GPU they run under Triton's interpreter (``TRITON_INTERPRET=1``, set before Triton
decorates the kernels, hence a subprocess); with CUDA they also run compiled on the device.
Skipped where Triton is not installed (the CPU build of torch does not ship it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

CASES = ["random", "duplicates", "mixed_0_1_2", "one_row", "one_pixel", "no_eds", "border"]

SCRIPT = """
import json, sys, torch
sys.path.insert(0, {tests!r})
from test_gat_backends import CASES, _topology, _layer_inputs
from mingraph_kernels.gat_structured import structured_attention
device = {device!r}
worst = 0.0
for name in {cases!r}:
    topo = _topology(CASES[name]).to(device)
    for mean in (False, True):
        inputs = [t.detach().to(device).requires_grad_(True) for t in _layer_inputs(topo, heads=3, ch=5, dtype=torch.float32)]
        w = torch.randn(topo.n_nodes, 5 if mean else 15, generator=torch.Generator().manual_seed(1)).to(device)
        res = {{}}
        for impl in ("triton", "torch"):
            for t in inputs:
                t.grad = None
            out = structured_attention(*inputs, topo, mean, impl=impl)
            (out * w).sum().backward()
            res[impl] = [out.detach()] + [t.grad.clone() for t in inputs]
        for a, b in zip(res["triton"], res["torch"]):
            worst = max(worst, float(((a - b).abs() / (1e-4 + 1e-4 * b.abs())).max()))
print(json.dumps({{"worst": worst}}))
"""


def _run(device: str, interpret: bool) -> float:
    env = dict(os.environ)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    code = SCRIPT.format(tests=str(Path(__file__).parent), device=device, cases=CASES)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["worst"]


def test_triton_kernels_match_torch_reference_in_the_interpreter():
    # worst |triton - torch| / (1e-4 + 1e-4 |torch|) over outputs and all four gradients
    assert _run("cpu", interpret=True) <= 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_triton_kernels_match_torch_reference_on_cuda():
    assert _run("cuda", interpret=False) <= 1.0
