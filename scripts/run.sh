#!/usr/bin/env bash
# Runs Hydrogen locally: installs what is missing, builds the contract,
# starts the dev chain and deploys the contract on it, then prints its address.
#
# Usage: scripts/run.sh [--keep]
#   Without --keep the chain runs until Ctrl-C (or until this script fails),
#   then stops. With --keep the script returns and leaves the chain running;
#   stop it with scripts/devnode.sh stop.
#
# Env: HYDROGEN_RPC_PORT (default 9944) and the other devnode.sh variables;
# HYDROGEN_CONTRACT_BUNDLE to deploy an existing bundle instead of building;
# HYDROGEN_CACHE_DIR / CARGO_TARGET_DIR as in scripts/test.sh.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

keep=0
case "${1:-}" in
  "") ;;
  --keep) keep=1 ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *) echo "run.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

cache="${HYDROGEN_CACHE_DIR:-$HOME/.cache/hydrogen}"
target_ws="${CARGO_TARGET_DIR:-$cache/target}"
target_ink="${CARGO_TARGET_DIR:-$cache/target-ink}"
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

echo "==== dev chain"
if ! scripts/devnode.sh status >/dev/null 2>&1; then
  started_here=1
fi
scripts/devnode.sh start

echo "==== deploy"
address="$(CARGO_TARGET_DIR="$target_ws" cargo run -p hydrogen-sdk --bin hydrogen-deploy -- --url "$url" --bundle "$bundle")"
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
echo "  pre-funded keys:    //Alice (owner, sudo), //HydrogenApp, //HydrogenApp2, //Node1 .. //Node12"

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
