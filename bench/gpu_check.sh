#!/usr/bin/env bash
# The CUDA path measured, in one run of under 8 minutes on one GPU (docs/performance.md, "GPU").
#
#   bench/gpu_check.sh [OUT]        # default OUT: gpu-check (figures: OUT/figures.md, OUT/*.json)
#   SMALL=1 bench/gpu_check.sh OUT  # tiny workloads: a smoke run, also on CPU
#
# Sections, each under its own time limit so one slow part cannot eat the others' time:
#   device 20 s, kernels 60 s (Triton vs torch, fp32 and bf16), backends 90 s (structured vs
#   sparse vs PyG, forward and forward+backward), train 40 s (one epoch, graphs/s),
#   field 270 s (10 000 x 10 000 px at 1 % EDS: simulating it, its 1 M spectra and their
#   embedding on the CPU take most of it; then predict time, peak memory).  480 s in all at most.
# A section that fails or runs out of time is logged in OUT/<section>.log and listed in
# OUT/figures.md; the others still run.  Run from anywhere; PYTHON picks the interpreter.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
OUT="${1:-gpu-check}"
PYTHON="${PYTHON:-python}"
SMALL_FLAG=""
if [ -n "${SMALL:-}" ]; then SMALL_FLAG="--small"; fi
mkdir -p "$OUT"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

run_section() {  # name, seconds
    local name="$1" limit="$2" start end
    start=$(date +%s)
    if timeout "$limit" "$PYTHON" "$HERE/gpu_check.py" "$name" --out "$OUT" $SMALL_FLAG >"$OUT/$name.log" 2>&1; then
        end=$(date +%s)
        echo "$name: ok in $((end - start)) s"
    else
        echo "$name: FAILED or over ${limit} s (see $OUT/$name.log)"
        rm -f "$OUT/$name.json"
    fi
}

command -v nvidia-smi >/dev/null && nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
run_section device 20
run_section kernels 60
run_section backends 90
run_section train 40
run_section field 270
"$PYTHON" "$HERE/gpu_check.py" summary --out "$OUT" >/dev/null
echo "figures: $OUT/figures.md"
