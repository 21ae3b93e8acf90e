#!/usr/bin/env bash
# Runs Hydrogen locally: installs what is missing, builds the contract, the
# node daemon and the local-network runner, then runs the whole network on
# this machine with one image task through it.
#
# Usage: scripts/run.sh [hydrogen-localnet options]
#        scripts/run.sh --web [hydrogen-localnet options]
#        scripts/run.sh --chain-only [--keep]
#
#   (default)     a dev chain in a temporary directory, the contract, the
#                 relay and three hydrogen-node daemons on the small model
#                 trained to draw shapes (offchain-node/engine/shapes);
#                 one task submitted through the SDK; the PNGs and
#                 summary.json written to ./hydrogen-output. Everything stops
#                 at the end or on Ctrl-C. Options go to hydrogen-localnet
#                 (--help lists them), e.g. --models-dir DIR --model ID
#                 --prompt TEXT --size 512 --steps 25 --backend wgpu for real
#                 images from a diffusers model.
#   --web         the same network, no task: the HTTP bridge (hydrogen-bridge
#                 serve, paying from the funded app account) and each node's
#                 web UI, until Ctrl-C. Prints the Image Generator's URL with
#                 an API key in its fragment (http://127.0.0.1:8780/#key=...;
#                 --bridge-listen ADDR moves it), the API key for the
#                 /v1 API, and the node UIs' URLs with their control token.
#   --chain-only  the dev chain with the contract deployed, until Ctrl-C (or
#                 with --keep, left running; stop it with scripts/devnode.sh stop)
#
# Env: HYDROGEN_RPC_PORT (default 9944, --chain-only) and the other
# devnode.sh variables; HYDROGEN_CONTRACT_BUNDLE to deploy an existing bundle
# instead of building; HYDROGEN_DEPLOY_BIN to deploy with a built
# hydrogen-deploy instead of `cargo run`; HYDROGEN_CACHE_DIR / CARGO_TARGET_DIR as in
# scripts/test.sh.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

keep=0
chain_only=0
case "${1:-}" in
  --chain-only)
    chain_only=1
    case "${2:-}" in
      "") ;;
      --keep) keep=1 ;;
      *) echo "run.sh: unknown argument: $2 (try --help)" >&2; exit 2 ;;
    esac ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
esac

cache="${HYDROGEN_CACHE_DIR:-$HOME/.cache/hydrogen}"
target_ws="${CARGO_TARGET_DIR:-$cache/target}"
# The contract builds with its own toolchain into its own cache, whatever
# CARGO_TARGET_DIR says: sharing one folder with the 1.95 workspace would
# rebuild both each time.
target_ink="$cache/target-ink"
export PATH="${HYDROGEN_BIN_DIR:-${CARGO_HOME:-$HOME/.cargo}/bin}:$PATH"
port="${HYDROGEN_RPC_PORT:-9944}"
export HYDROGEN_RPC_PORT="$port"
url="ws://127.0.0.1:$port"
state="${HYDROGEN_STATE_DIR:-$repo/.hydrogen/devnode}"

started_here=0
# shellcheck disable=SC2317 # called by the EXIT trap
on_exit() {
  local rc=$?
  if (( started_here && ! keep )); then
    echo
    scripts/devnode.sh stop || true
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "==== install"
scripts/install.sh

bundle="${HYDROGEN_CONTRACT_BUNDLE:-}"
if [[ -n "$bundle" ]]; then
  [[ -f "$bundle" ]] || { echo "run.sh: HYDROGEN_CONTRACT_BUNDLE=$bundle does not exist" >&2; exit 1; }
  echo "==== contract: using $bundle"
else
  echo "==== contract: cargo contract build --release"
  (cd contracts-ink && CARGO_TARGET_DIR="$target_ink" cargo contract build --release --manifest-path hydrogen/Cargo.toml)
  bundle="$target_ink/ink/hydrogen/hydrogen.contract"
  [[ -f "$bundle" ]] || { echo "run.sh: the build wrote no $bundle" >&2; exit 1; }
fi

if (( ! chain_only )); then
  build=(-p hydrogen-node --bin hydrogen-node -p hydrogen-tests --bin hydrogen-localnet)
  for arg in "$@"; do
    if [[ "$arg" == --web ]]; then
      build+=(-p hydrogen-bridge --bin hydrogen-bridge)
      export HYDROGEN_BRIDGE_BIN="$target_ws/debug/hydrogen-bridge"
    fi
  done
  echo "==== build: ${build[*]}"
  CARGO_TARGET_DIR="$target_ws" cargo build "${build[@]}"
  export HYDROGEN_DAEMON_BIN="$target_ws/debug/hydrogen-node"
  export HYDROGEN_CONTRACT_BUNDLE="$bundle"
  export HYDROGEN_NODE_BIN="${HYDROGEN_NODE_BIN:-$(command -v substrate-contracts-node)}"
  export HYDROGEN_CHAIN_SPEC="${HYDROGEN_CHAIN_SPEC:-$repo/chain-spec/dev-raw.json}"
  echo "==== network"
  # exec: Ctrl-C goes straight to the runner, which stops what it started.
  trap - EXIT INT TERM
  exec "$target_ws/debug/hydrogen-localnet" "$@"
fi

echo "==== dev chain"
if ! scripts/devnode.sh status >/dev/null 2>&1; then
  started_here=1
fi
scripts/devnode.sh start

echo "==== deploy"
# A dev chain: nodes that join may take a task at once (no selection warm-up).
# --fund: the documented node and app accounts get HYD to stake and pay with.
deploy=(env CARGO_TARGET_DIR="$target_ws" cargo run -q -p hydrogen-sdk --bin hydrogen-deploy --)
if [[ -n "${HYDROGEN_DEPLOY_BIN:-}" ]]; then deploy=("$HYDROGEN_DEPLOY_BIN"); fi
address="$("${deploy[@]}" --url "$url" --bundle "$bundle" --warmup-ms 0 --fund)"
mkdir -p "$state"
{
  echo "HYDROGEN_URL=$url"
  echo "HYDROGEN_CONTRACT=$address"
} > "$state/contracts.env"

echo
echo "Hydrogen is running on the dev chain:"
echo "  chain:              $url"
echo "  hydrogen contract:  $address"
echo "  (also written to $state/contracts.env)"
echo "  funded keys:        //Alice (owner, sudo, the rest of the HYD supply)"
echo "                      //Node1 .. //Node12 (HYD for two stakes each)"
echo "                      //HydrogenApp, //HydrogenApp2 (10000 HYD each)"
echo "  block time:         1 s (scripts/devnode.sh runs a ticker so deadlines pass)"

if (( keep )); then
  echo
  echo "The chain keeps running (--keep); stop it with: scripts/devnode.sh stop"
  exit 0
fi

echo
echo "Press Ctrl-C to stop the chain."
# Wake up now and then to notice a node that died on its own.
while scripts/devnode.sh status >/dev/null 2>&1; do
  sleep 2 &
  wait $! || true
done
echo "run.sh: the dev node exited; see $state/node.log" >&2
exit 1
