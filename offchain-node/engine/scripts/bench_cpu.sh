#!/bin/sh
# CPU benchmark of the engine against PyTorch diffusers on the same model.
# Creates (once) a venv with torch and diffusers from PyPI, then runs the bench.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${HYDROGEN_BENCH_VENV:-$here/target-bench-venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch diffusers transformers numpy safetensors
fi
export HYDROGEN_BENCH_PYTHON="$venv/bin/python"
export HYDROGEN_BENCH_THREADS=${HYDROGEN_BENCH_THREADS:-2}
# Ours on the same number of threads as torch (Burn's CPU backend runs on rayon's pool).
export RAYON_NUM_THREADS=$HYDROGEN_BENCH_THREADS
cd "$here"
exec cargo bench -p hydrogen-engine --bench cpu
