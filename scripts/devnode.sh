#!/usr/bin/env bash
# Runs the Hydrogen dev chain: one substrate-contracts-node in the background,
# instant seal (a block per transaction), blocks final at once, and a ticker
# that sends a remark every second so the chain's clock keeps moving while
# nothing else happens (without it no deadline passes on an idle chain).
#
# Usage: scripts/devnode.sh start [--base-path DIR] [--chain SPEC] [--no-ticker]
#        scripts/devnode.sh stop | status | wait
#
#   start   start the node and its ticker unless they run already, then wait
#           for JSON-RPC
#   stop    SIGTERM, SIGKILL after 10 s; removes a temporary base path
#   status  print whether it runs (exit 0) or not (exit 3)
#   wait    wait until JSON-RPC answers (exit 1 after the timeout)
#
# Env:
#   HYDROGEN_STATE_DIR        pidfile, log, ... (default: <repo>/.hydrogen/devnode)
#   HYDROGEN_RPC_PORT         JSON-RPC/WebSocket port (default: 9944)
#   HYDROGEN_CHAIN_SPEC       chain spec (default: chain-spec/dev-raw.json)
#   HYDROGEN_DEVNODE_TIMEOUT  seconds to wait for JSON-RPC (default: 60)
#   HYDROGEN_NODE_BIN         node binary (default: substrate-contracts-node on PATH)
#   HYDROGEN_TICKER_BIN       ticker binary (default: hydrogen-ticker, built with
#                             cargo into $CARGO_TARGET_DIR or ~/.cache/hydrogen/target)
#   HYDROGEN_TICK_MS          milliseconds between ticker blocks (default: 1000)
#
# Without --base-path the chain lives in a new temporary directory that `stop`
# deletes: every start begins at genesis. The node listens on 127.0.0.1 only,
# with no peer discovery, so dev nodes of other checkouts never join it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${HYDROGEN_STATE_DIR:-$repo/.hydrogen/devnode}"
timeout="${HYDROGEN_DEVNODE_TIMEOUT:-60}"
node="${HYDROGEN_NODE_BIN:-substrate-contracts-node}"
pidfile="$state/node.pid"
logfile="$state/node.log"
tickerpid="$state/ticker.pid"
tickerlog="$state/ticker.log"

die() { echo "devnode: $*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }

# The port of a running node is the one it was started with.
port() {
  if [[ -f "$state/rpc-port" ]]; then cat "$state/rpc-port"; else echo "${HYDROGEN_RPC_PORT:-9944}"; fi
}

rpc() { # METHOD [PORT] -> JSON reply on stdout; fails when nothing answers
  curl -sf --max-time 2 -H 'Content-Type: application/json' \
    -d "{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"$1\",\"params\":[]}" \
    "http://127.0.0.1:${2:-$(port)}"
}

alive() { # PIDFILE PATTERN -> the pid in PIDFILE if it runs a command line with PATTERN
  [[ -f "$1" ]] || return 1
  local pid
  pid="$(cat "$1")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid.
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
  echo "$pid"
}

pid_alive() { alive "$pidfile" '--finalize-delay-sec'; } # our running node

log_tail() {
  if [[ -f "$logfile" ]]; then
    echo "---- last 30 lines of $logfile ----" >&2
    tail -n 30 "$logfile" >&2
    echo "----" >&2
  fi
}

wait_rpc() { # wait until system_health answers, or the node dies, or timeout
  local pid="${1:-}" start=$SECONDS
  until rpc system_health >/dev/null 2>&1; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      echo "devnode: the node exited during startup" >&2
      log_tail
      return 1
    fi
    if (( SECONDS - start >= timeout )); then
      echo "devnode: no JSON-RPC answer on port $(port) after ${timeout}s" >&2
      log_tail
      return 1
    fi
    sleep 0.5
  done
}

ticker_alive() { alive "$tickerpid" 'hydrogen-ticker'; } # our running ticker

ticker_bin() { # path of the ticker binary, built if missing
  if [[ -n "${HYDROGEN_TICKER_BIN:-}" ]]; then echo "$HYDROGEN_TICKER_BIN"; return; fi
  local target="${CARGO_TARGET_DIR:-${HYDROGEN_CACHE_DIR:-$HOME/.cache/hydrogen}/target}"
  if [[ ! -x "$target/debug/hydrogen-ticker" || -n "$(find "$repo/sdk/src" "$repo/sdk/Cargo.toml" -newer "$target/debug/hydrogen-ticker" -print -quit)" ]]; then
    echo "devnode: building hydrogen-ticker" >&2
    (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build -q -p hydrogen-sdk --bin hydrogen-ticker) >&2
  fi
  echo "$target/debug/hydrogen-ticker"
}

start_ticker() {
  local pid bin
  if pid="$(ticker_alive)"; then return 0; fi
  bin="$(ticker_bin)" || die "cannot build hydrogen-ticker (set HYDROGEN_TICKER_BIN, or start with --no-ticker)"
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "$tickerpid" "$bin" \
    --url "ws://127.0.0.1:$(port)" --period-ms "${HYDROGEN_TICK_MS:-1000}" \
    > "$tickerlog" 2>&1 < /dev/null &
  local _
  for _ in $(seq 50); do [[ -s "$tickerpid" ]] && break; sleep 0.1; done
  echo "devnode: ticker (pid $(cat "$tickerpid" 2>/dev/null || echo '?')) makes a block every ${HYDROGEN_TICK_MS:-1000} ms (log $tickerlog)"
}

stop_ticker() {
  local pid
  if pid="$(ticker_alive)"; then
    kill -TERM "$pid" 2>/dev/null || true
    local _
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$tickerpid"
}

cleanup_state() {
  if [[ -f "$state/temp-base-path" ]]; then
    local dir
    dir="$(cat "$state/temp-base-path")"
    # Only ever delete what `start` created.
    [[ "$dir" == */hydrogen-devnode.* && -d "$dir" ]] && rm -rf "$dir"
  fi
  rm -f "$pidfile" "$state/rpc-port" "$state/temp-base-path" "$state/base-path"
}

cmd_start() {
  local base_path="" chain="${HYDROGEN_CHAIN_SPEC:-}" ticker=1
  while (( $# )); do
    case "$1" in
      --base-path) base_path="${2:?--base-path needs a directory}"; shift 2 ;;
      --chain) chain="${2:?--chain needs a file}"; shift 2 ;;
      --no-ticker) ticker=0; shift ;;
      *) usage ;;
    esac
  done

  local pid
  if pid="$(pid_alive)"; then
    echo "devnode: already running (pid $pid, ws://127.0.0.1:$(port), log $logfile)"
    if (( ticker )); then start_ticker; fi
    return 0
  fi
  cleanup_state # a stale pidfile from a node that died

  if [[ -z "$chain" ]]; then
    chain="$repo/chain-spec/dev-raw.json"
    [[ -f "$chain" ]] || chain="$repo/chain-spec/dev.json"
  fi
  [[ -f "$chain" ]] || die "chain spec not found: $chain"
  command -v "$node" >/dev/null || die "$node not found on PATH (run scripts/install.sh)"

  local port="${HYDROGEN_RPC_PORT:-9944}"
  # The node would quietly fall back to a random port if this one is taken.
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is already in use (another dev node? set HYDROGEN_RPC_PORT)"
  fi

  mkdir -p "$state"
  if [[ -z "$base_path" ]]; then
    base_path="$(mktemp -d "${TMPDIR:-/tmp}/hydrogen-devnode.XXXXXX")"
    echo "$base_path" > "$state/temp-base-path"
  fi
  mkdir -p "$base_path"
  echo "$base_path" > "$state/base-path"
  echo "$port" > "$state/rpc-port"

  local args=(
    --chain "$chain"
    --base-path "$base_path"
    --rpc-port "$port"
    --rpc-cors all
    --finalize-delay-sec 0
    --listen-addr /ip4/127.0.0.1/tcp/0
    --no-mdns --reserved-only
    --no-prometheus --no-telemetry
  )
  local started=$SECONDS
  # setsid: the node outlives this script and ignores a Ctrl-C meant for the
  # caller's terminal; the inner shell records its own pid, then becomes the node.
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "$pidfile" "$node" "${args[@]}" \
    > "$logfile" 2>&1 < /dev/null &
  local _
  for _ in $(seq 50); do [[ -s "$pidfile" ]] && break; sleep 0.1; done
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [[ -n "$pid" ]] || { log_tail; die "the node did not start"; }

  echo "devnode: starting $node (pid $pid) on port $port, chain $chain"
  if ! wait_rpc "$pid"; then
    cmd_stop >/dev/null
    exit 1
  fi
  echo "devnode: ready after $((SECONDS - started))s: ws://127.0.0.1:$port (base path $base_path, log $logfile)"
  if (( ticker )); then start_ticker; fi
}

cmd_stop() {
  local pid
  stop_ticker
  if ! pid="$(pid_alive)"; then
    cleanup_state
    echo "devnode: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local _
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "devnode: pid $pid still running 10 s after SIGTERM, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  cleanup_state
  echo "devnode: stopped (pid $pid)"
}

cmd_status() {
  local pid
  if ! pid="$(pid_alive)"; then
    echo "devnode: not running"
    return 3
  fi
  local health header best="?"
  health="$(rpc system_health 2>/dev/null || echo "no answer yet")"
  if header="$(rpc chain_getHeader 2>/dev/null)"; then
    best="$(printf '%s' "$header" | sed -n 's/.*"number":"\(0x[0-9a-fA-F]*\)".*/\1/p')"
    if [[ -n "$best" ]]; then best=$((best)); else best="?"; fi
  fi
  echo "devnode: running (pid $pid) ws://127.0.0.1:$(port) best #$best"
  echo "  health: $health"
  echo "  base path: $(cat "$state/base-path" 2>/dev/null || echo '?'), log: $logfile"
  if pid="$(ticker_alive)"; then
    echo "  ticker: running (pid $pid), log: $tickerlog"
  else
    echo "  ticker: not running: the chain's clock stands still while it is idle"
  fi
}

cmd_wait() {
  local pid=""
  pid="$(pid_alive || true)"
  wait_rpc "$pid" || exit 1
  echo "devnode: ws://127.0.0.1:$(port) answers"
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  wait) cmd_wait ;;
  *) usage ;;
esac
