#!/usr/bin/env bash
# The first hour of a node runner and an app developer, scripted: what
# README.md and offchain-node/README.md tell them to do, step by step, with
# the documented commands, on this machine and on the CPU:
#
#   1. a dev chain with the contract:   scripts/run.sh --chain-only --keep
#   2. a relay:                         hydrogen-relay --contract … --data-dir …
#   3. three nodes, as the node guide says: init --import //NodeN, a config
#      file (own key_file, data_dir, http_listen; backend cpu), models
#      create-tiny, run
#   4. the README's app example:        examples/generate with the README task
#
# and checks that an image comes out within the task's deadline. The end-to-
# end suite runs it (tests/tests/walkthrough.rs); by hand:
#
#   tests/walkthrough.sh            (builds what is missing first)
#
# Env: HYDROGEN_WALKTHROUGH_BIN  folder with hydrogen-node, hydrogen-relay and
#                                examples/generate (default: build them into
#                                $CARGO_TARGET_DIR or ~/.cache/hydrogen/target)
#      HYDROGEN_WALKTHROUGH_KEEP=1  keep the work folder and logs
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
cache="${HYDROGEN_CACHE_DIR:-$HOME/.cache/hydrogen}"
target="${CARGO_TARGET_DIR:-$cache/target}"
work="$(mktemp -d "${TMPDIR:-/tmp}/hydrogen-walkthrough.XXXXXX")"
pids=()

step() { echo; echo "==== $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The chain of this walkthrough only: its own port and state folder.
export HYDROGEN_RPC_PORT="$(free_port)"
export HYDROGEN_STATE_DIR="$work/devnode"

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  scripts/devnode.sh stop >/dev/null 2>&1 || true
  if (( rc != 0 )); then
    for log in "$work"/*.log "$work"/node*/node.log "$HYDROGEN_STATE_DIR"/*.log; do
      [[ -f "$log" ]] || continue
      echo "---- last 40 lines of $log ----" >&2
      tail -n 40 "$log" >&2
    done
  fi
  if [[ "${HYDROGEN_WALKTHROUGH_KEEP:-0}" == 1 ]]; then
    echo "walkthrough: kept $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT

bin="${HYDROGEN_WALKTHROUGH_BIN:-}"
if [[ -z "$bin" ]]; then
  step "0. build: hydrogen-node, hydrogen-relay, the generate example"
  cargo build -q -p hydrogen-node --bin hydrogen-node -p hydrogen-relay --bin hydrogen-relay \
    -p hydrogen-sdk --example generate
  bin="$target/debug"
fi
for f in hydrogen-node hydrogen-relay examples/generate; do
  [[ -x "$bin/$f" ]] || { echo "walkthrough: $bin/$f is missing" >&2; exit 1; }
done

step "1. the dev chain with the contract (README: scripts/run.sh --chain-only --keep)"
scripts/run.sh --chain-only --keep
# shellcheck disable=SC1091 # written by run.sh
source "$HYDROGEN_STATE_DIR/contracts.env"
echo "chain $HYDROGEN_URL, contract $HYDROGEN_CONTRACT"

step "2. the relay (relay/README.md)"
relay_port="$(free_port)"
relay_url="http://127.0.0.1:$relay_port"
"$bin/hydrogen-relay" --rpc-url "$HYDROGEN_URL" --contract "$HYDROGEN_CONTRACT" \
  --data-dir "$work/relay" --listen "127.0.0.1:$relay_port" > "$work/relay.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf "$relay_url/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "$relay_url/readyz" >/dev/null || { echo "walkthrough: the relay is not ready" >&2; exit 1; }
echo "relay $relay_url ready"

step "3. three nodes (offchain-node/README.md, sections 2 to 6)"
for i in 1 2 3; do
  home="$work/node$i"
  mkdir -p "$home"
  cat > "$home/config.toml" <<EOF
chain_url = "$HYDROGEN_URL"
contract = "$HYDROGEN_CONTRACT"
relay_url = "$relay_url"
key_file = "$home/key.json"
data_dir = "$home/data"
models_dir = "$home/models"
backend = "cpu"
http_listen = "127.0.0.1:$(free_port)"

[gpu]
vram_gb = 8
EOF
  # Section 2, with a dev account as section 3 suggests for the dev chain.
  echo "//Node$i" | "$bin/hydrogen-node" --config "$home/config.toml" init --import
  # Section 4.
  "$bin/hydrogen-node" --config "$home/config.toml" models create-tiny
  # Section 6.
  "$bin/hydrogen-node" --config "$home/config.toml" run > "$home/node.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 150); do
    grep -q "in the network" "$work/node$i/node.log" 2>/dev/null && break
    sleep 0.2
  done
  grep -q "in the network" "$work/node$i/node.log" || { echo "walkthrough: node $i did not join" >&2; exit 1; }
  "$bin/hydrogen-node" --config "$work/node$i/config.toml" status | sed "s/^/node$i: /" || true
done

step "4. the app (README: the generate example with the README's task)"
task='{"base_model": "hydrogen/tiny-sd", "prompt": "a red fox in snow",
  "task_config": {"num_images": 1, "image_width": 64, "image_height": 64, "steps": 8}}'
mkdir -p "$work/out"
started=$SECONDS
(cd "$work/out" && timeout 600 "$bin/examples/generate" \
  "$HYDROGEN_URL" "$relay_url" "$HYDROGEN_CONTRACT" //HydrogenApp "$task") | tee "$work/app.log"
png="$(head -n 1 "$work/app.log")"
[[ -s "$work/out/$png" ]] || { echo "walkthrough: no image" >&2; exit 1; }
head -c 8 "$work/out/$png" | grep -q PNG || { echo "walkthrough: $png is not a PNG" >&2; exit 1; }
echo
echo "walkthrough: $png in $((SECONDS - started)) s, from the documented commands alone"
