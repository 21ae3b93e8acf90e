#!/bin/sh
# Everything the engine measures on a lent GPU, in one go (the device tool
# gives a session ~15 minutes, start included). Run from the repository root:
#
#     offchain-node/engine/scripts/gpu_session.sh [OUT]
#
# 1. builds the profiler, the attention test and the GPU bench (release);
# 2. fused vs materialised attention on the GPU (f32 and f16, every SD head size);
# 3. the profiler's per-block table at SD 1.5's shape, f16 and f32, 512x512;
# 4. scripts/bench_gpu.sh: ours vs diffusers on the same GPU (ratio lines, peak memory, pHash).
# Each step's output goes to OUT (default $OUT or ./gpu-session) and to stdout;
# a failed step is reported and the next one still runs.
# HYDROGEN_GPU_BACKEND: the backend measured (default wgpu); HYDROGEN_ENGINE_FEATURES:
# the engine's cargo features (default vulkan: SPIR-V, tensor cores; add cuda
# for --backend cuda where the machine can build it).
set -u
root=$(cd "$(dirname "$0")/../../.." && pwd)
out=${1:-${OUT:-$root/gpu-session}}
backend=${HYDROGEN_GPU_BACKEND:-wgpu}
mkdir -p "$out"
cd "$root"
export HYDROGEN_BENCH_MODEL=${HYDROGEN_BENCH_MODEL:-${TMPDIR:-/tmp}/hydrogen-sd15-random}
export HYDROGEN_BENCH_OUT="$out/bench"
features=${HYDROGEN_ENGINE_FEATURES-vulkan}
export HYDROGEN_ENGINE_FEATURES="$features"
failed=""
step() {
    name=$1
    shift
    echo "== $name: $*"
    start=$(date +%s)
    if "$@" >"$out/$name.log" 2>&1; then
        echo "== $name ok ($(($(date +%s) - start)) s)"
    else
        echo "== $name FAILED ($(($(date +%s) - start)) s)"
        failed="$failed $name"
    fi
    tail -n 60 "$out/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/gpu.txt" 2>&1 || true
cat "$out/gpu.txt"
step build cargo build --release -p hydrogen-engine --features "$features" --example profile --tests --benches
step attention env HYDROGEN_TEST_GPU="$backend" cargo test --release -p hydrogen-engine \
    --features "$features" --test attention -- --nocapture --test-threads 1
# bench_gpu.sh makes the random-weight SD 1.5 model the profiler uses too.
step bench sh offchain-node/engine/scripts/bench_gpu.sh
for p in f16 f32; do
    step "profile-$p" cargo run --release -p hydrogen-engine --features "$features" --example profile -- \
        "$HYDROGEN_BENCH_MODEL" "$backend" "$p" --size 512 --steps 2
done
grep -h '^ratio ' "$out/bench.log" | tee "$out/ratios.txt"
echo "gpu_session: outputs in $out${failed:+; FAILED:$failed}"
[ -z "$failed" ]
