"""bench/gpu_check.sh, the prepared GPU check: its shell is valid, and every section runs end to
end with tiny workloads on the CPU (Numba stands in for Triton there), writing its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_check.sh"


def test_script_is_valid_bash():
    assert os.access(SCRIPT, os.X_OK)
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_every_section_runs_small_on_cpu(tmp_path):
    env = dict(os.environ, SMALL="1", PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
    res = subprocess.run(
        [str(SCRIPT), str(tmp_path / "gc")], env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr
    assert "FAILED" not in res.stdout, res.stdout + "".join(
        p.read_text()[-2000:] for p in (tmp_path / "gc").glob("*.log")
    )
    kernels = json.loads((tmp_path / "gc" / "kernels.json").read_text())
    assert kernels["cases"] and all(c["ok"] for c in kernels["cases"])  # numba equals the torch reference
    field = json.loads((tmp_path / "gc" / "field.json").read_text())
    assert field["side_px"] == 256 and field["pixel_accuracy"] > 0.5
    train = json.loads((tmp_path / "gc" / "train.json").read_text())
    assert train["graphs"] == 8 and train["graphs_per_s"] > 0
    backends = json.loads((tmp_path / "gc" / "backends.json").read_text())
    assert {"forward_structured_s", "train_structured_s", "forward_sparse_s"} <= set(backends)
    figures = (tmp_path / "gc" / "figures.md").read_text()
    assert "## kernels" in figures and "## field" in figures
