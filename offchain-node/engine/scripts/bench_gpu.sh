#!/bin/sh
# GPU benchmark at SD 1.5's shape against PyTorch diffusers on the same GPU.
# Makes (once) a venv with torch and diffusers and a random-weight SD 1.5
# model in diffusers layout, then runs `cargo bench --bench gpu`.
# HYDROGEN_BENCH_PYTHON: a Python that already has torch (CUDA) and diffusers.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${HYDROGEN_BENCH_PYTHON:-}" ]; then
    venv=${HYDROGEN_BENCH_VENV:-$here/target-bench-venv}
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet torch diffusers transformers numpy safetensors
    fi
    HYDROGEN_BENCH_PYTHON="$venv/bin/python"
fi
export HYDROGEN_BENCH_PYTHON
model=${HYDROGEN_BENCH_MODEL:-${TMPDIR:-/tmp}/hydrogen-sd15-random}
if [ ! -f "$model/model_index.json" ]; then
    # OpenAI's CLIP vocabulary, as shipped in a dev-dependency's crate source.
    (cd "$here" && cargo fetch >/dev/null)
    vocab=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path '*instant-clip-tokenizer-0.1.0/bpe_simple_vocab_16e6.txt' | head -n1)
    "$HYDROGEN_BENCH_PYTHON" "$here/scripts/sd15_random.py" --vocab "$vocab" --out "$model"
fi
export HYDROGEN_BENCH_MODEL="$model"
cd "$here"
# HYDROGEN_ENGINE_FEATURES: the engine's cargo features (vulkan for SPIR-V/tensor cores).
exec cargo bench -p hydrogen-engine ${HYDROGEN_ENGINE_FEATURES:+--features "$HYDROGEN_ENGINE_FEATURES"} --bench gpu
