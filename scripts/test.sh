#!/usr/bin/env bash
# Hydrogen's test command: installs what is missing, then tests everything.
#
#   1. install    scripts/install.sh (packages, toolchains, node, cargo-contract)
#   2. lint       cargo fmt --check and cargo clippy -D warnings, in
#                 contracts-ink/ and in the root workspace (skip with
#                 HYDROGEN_LINT=0)
#   3. contract   cargo test in contracts-ink/ (Rust 1.86, off-chain ink! tests)
#   4. bundle     cargo contract build --release of contracts-ink/hydrogen;
#                 exports HYDROGEN_CONTRACT_BUNDLE
#   5. workspace  cargo test --workspace at the root (Rust 1.95) with the SDK's
#                 test-util feature and the node's test engines and crash points
#                 (hydrogen-node/test-engines); chain tests spawn their own dev nodes and
#                 must not skip (HYDROGEN_REQUIRE_CHAIN=1). This includes the
#                 diffusion engine's tests (CPU and lavapipe): the root
#                 Cargo.toml builds Burn's CPU crates optimized even in the
#                 dev profile, so no separate release build is needed
#
# Build outputs persist between runs: CARGO_TARGET_DIR defaults to
# $HYDROGEN_CACHE_DIR/target for the workspace and .../target-ink for the
# contracts (HYDROGEN_CACHE_DIR defaults to ~/.cache/hydrogen); a
# CARGO_TARGET_DIR set by the caller is used for both.
#
# Env: HYDROGEN_LINT=0 skips phase 2; HYDROGEN_PREBUILT_DIR and
# HYDROGEN_BIN_DIR are passed to install.sh.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

cache="${HYDROGEN_CACHE_DIR:-$HOME/.cache/hydrogen}"
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
  target_ws="$CARGO_TARGET_DIR"
  target_ink="$CARGO_TARGET_DIR"
else
  target_ws="$cache/target"
  target_ink="$cache/target-ink"
fi
bin_dir="${HYDROGEN_BIN_DIR:-${CARGO_HOME:-$HOME/.cargo}/bin}"
export PATH="$bin_dir:$PATH"
# A cold build writes about 8 GiB (workspace 5.3, contracts 2.3). Say so
# now rather than fail deep inside a compile with "No space left on device".
need_gib=10
probe="$target_ws"
while [[ ! -d "$probe" ]]; do probe="$(dirname "$probe")"; done
free_gib=$(( $(df -Pk "$probe" | awk 'NR == 2 { print $4 }') / 1048576 ))
if (( free_gib < need_gib )); then
  echo "test.sh: warning: $free_gib GiB free on the disk of $target_ws; a cold build needs about $need_gib GiB (free some, or point HYDROGEN_CACHE_DIR at another disk)" >&2
fi
# CI builds from scratch: incremental artifacts would only cost time and disk.
if [[ -n "${CI:-}" ]]; then export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"; fi

now_ms() { date +%s%3N; }
fmt_ms() { printf '%dm%02d.%ds' $(($1 / 60000)) $(($1 / 1000 % 60)) $(($1 % 1000 / 100)); }

total_start="$(now_ms)"
test_log="$(mktemp)"
results=()
current=""
phase_start=0

finish() {
  local rc=$?
  if [[ -n "$current" ]]; then
    results+=("$(printf '%-10s %10s  FAILED (exit %d)' "$current" "$(fmt_ms $(( $(now_ms) - phase_start )))" "$rc")")
  fi
  echo
  echo "test.sh summary:"
  if (( ${#results[@]} )); then printf '  %s\n' "${results[@]}"; fi
  echo "  total      $(printf '%10s' "$(fmt_ms $(( $(now_ms) - total_start )))")"
  if (( rc == 0 )); then echo "test.sh: all phases passed"; else echo "test.sh: FAILED in phase '$current'"; fi
  # What the build left on disk: the first thing to look at after "No space left".
  local used
  used="$(du -sh "$target_ws" 2>/dev/null | cut -f1) in $target_ws"
  if [[ "$target_ink" != "$target_ws" ]]; then
    used+=", $(du -sh "$target_ink" 2>/dev/null | cut -f1) in $target_ink"
  fi
  echo "disk: $used; $(df -Ph "$probe" | awk 'NR == 2 { print $4 }') free"
  # One closing line over every `cargo test` run above.
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { v = $i + 0
         if ($(i+1) ~ /^passed/) p += v; else if ($(i+1) ~ /^failed/) f += v; else if ($(i+1) ~ /^ignored/) ig += v } }
       END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, ig }' "$test_log"
  rm -f "$test_log"
}
trap finish EXIT
# Interrupted, the summary must not read "all phases passed".
trap 'exit 130' INT
trap 'exit 143' TERM

begin() {
  current="$1"
  phase_start="$(now_ms)"
  echo
  echo "==== $1: $2"
}
end() {
  results+=("$(printf '%-10s %10s  ok' "$current" "$(fmt_ms $(( $(now_ms) - phase_start )))")")
  echo "==== $current: ok ($(fmt_ms $(( $(now_ms) - phase_start ))))"
  current=""
}
skip() {
  results+=("$(printf '%-10s %10s  skipped (%s)' "$1" "-" "$2")")
  echo
  echo "==== $1: skipped ($2)"
}
run() { echo "+ $*"; "$@"; }
# run_tests CMD...: run, with the output also kept for the closing count
run_tests() { echo "+ $*"; "$@" 2>&1 | tee -a "$test_log"; }

begin install "scripts/install.sh"
run scripts/install.sh
end

# The node the SDK's tests spawn, and the prefunded dev chain spec for tests
# that want it.
export HYDROGEN_NODE_BIN="${HYDROGEN_NODE_BIN:-$(command -v substrate-contracts-node)}"
export HYDROGEN_CHAIN_SPEC="${HYDROGEN_CHAIN_SPEC:-$repo/chain-spec/dev-raw.json}"

if [[ "${HYDROGEN_LINT:-1}" != 1 ]]; then
  skip lint "HYDROGEN_LINT=0"
else
  begin lint "rustfmt and clippy (-D warnings)"
  (cd contracts-ink && run cargo fmt --all --check)
  (cd contracts-ink && CARGO_TARGET_DIR="$target_ink" run cargo clippy --all-targets -- -D warnings)
  run cargo fmt --all --check
  CARGO_TARGET_DIR="$target_ws" run cargo clippy --workspace --all-targets --features hydrogen-sdk/test-util,hydrogen-node/test-engines -- -D warnings
  end
fi

begin contract "ink! contract tests (contracts-ink/, Rust 1.86)"
(cd contracts-ink && CARGO_TARGET_DIR="$target_ink" run_tests cargo test)
end

begin bundle "cargo contract build --release"
# From inside contracts-ink/ so its rust-toolchain.toml (1.86) applies to
# cargo-contract's own cargo invocations too.
(cd contracts-ink && CARGO_TARGET_DIR="$target_ink" run cargo contract build --release --manifest-path hydrogen/Cargo.toml)
# cargo-contract writes <cargo's target dir>/ink/<package>/<lib>.contract.
bundle="$target_ink/ink/hydrogen/hydrogen.contract"
[[ -f "$bundle" ]] || bundle=""
[[ -n "$bundle" ]] || { echo "test.sh: the build wrote no hydrogen.contract under $target_ink/ink/hydrogen/" >&2; exit 1; }
export HYDROGEN_CONTRACT_BUNDLE="$bundle"
echo "HYDROGEN_CONTRACT_BUNDLE=$bundle ($(stat -c %s "$bundle") bytes)"
end

begin workspace "cargo test --workspace (Rust 1.95, chain tests on dev nodes)"
export HYDROGEN_REQUIRE_CHAIN=1
# Every binary first: cargo test builds a package's binaries only for that
# package's own integration tests, and tests/tests/relay.rs runs (and
# kills) the hydrogen-relay binary. Same features, so nothing rebuilds.
CARGO_TARGET_DIR="$target_ws" run cargo build --workspace --bins --features hydrogen-sdk/test-util,hydrogen-node/test-engines
CARGO_TARGET_DIR="$target_ws" run_tests cargo test --workspace --features hydrogen-sdk/test-util,hydrogen-node/test-engines
end


