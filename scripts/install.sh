#!/usr/bin/env bash
# shellcheck disable=SC2317  # the step functions are called indirectly, through run_step
# Installs what Hydrogen needs to build and test, skipping whatever is there:
#
#   1. Debian packages: xz-utils curl ca-certificates pkg-config libssl-dev, mesa-vulkan-drivers libvulkan1;
#      protobuf-compiler clang libclang-dev too, but only when a chain tool has
#      to be built from source (step 3).
#   2. Rust toolchains (rustup must exist): 1.95.0 with clippy and rustfmt for
#      the workspace; 1.86.0 with rust-src, clippy, rustfmt and the
#      wasm32-unknown-unknown target for contracts-ink/.
#   3. substrate-contracts-node 0.42.0 and cargo-contract 5.0.3 in
#      $HYDROGEN_BIN_DIR (default: ${CARGO_HOME:-~/.cargo}/bin): kept if the
#      binary there reports that version; else unpacked from
#      $HYDROGEN_PREBUILT_DIR/<tool>.xz (or <tool>) when its SHA-256 matches
#      that directory's SHA256SUMS; else built from crates.io with cargo
#      install (about 60-70 min for the node and 30 min for cargo-contract
#      on 2 cores).
#
# Usage: scripts/install.sh [--dry-run]
#   --dry-run  check and report, change nothing (prebuilt binaries are still
#              unpacked to a temporary file and checksummed)
#
# Env: HYDROGEN_PREBUILT_DIR, HYDROGEN_BIN_DIR (see above).
set -euo pipefail
shopt -s inherit_errexit

NODE_VERSION=0.42.0
CONTRACT_VERSION=5.0.3
WORKSPACE_TOOLCHAIN=1.95.0
INK_TOOLCHAIN=1.86.0
# mesa-vulkan-drivers (lavapipe) and libvulkan1: the engine's wgpu path runs on the CPU in tests.
BASE_PACKAGES=(xz-utils curl ca-certificates pkg-config libssl-dev mesa-vulkan-drivers libvulkan1)
BUILD_PACKAGES=(protobuf-compiler clang libclang-dev)
# Real servers the tests and benchmarks start on loopback: nginx balances
# relay replicas (tests/tests/relay.rs) and is the relay benchmark's reference;
# headless Chromium and its WebDriver run the web pages' browser tests
# (tests/tests/browser.rs); PostgreSQL's server (initdb, postgres, pg_ctl in
# /usr/lib/postgresql/<version>/bin) runs the bridge's store tests on
# Postgres as well as SQLite (bridge/tests/store.rs).
TEST_PACKAGES=(nginx-light chromium chromium-driver postgresql)

dry_run=0
case "${1:-}" in
  "") ;;
  --dry-run) dry_run=1 ;;
  -h|--help) awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "$0"; exit 0 ;;
  *) echo "install.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

bin_dir="${HYDROGEN_BIN_DIR:-${CARGO_HOME:-$HOME/.cargo}/bin}"
prebuilt="${HYDROGEN_PREBUILT_DIR:-}"

say() { echo "install: $*"; }
warn() { echo "install: $*" >&2; }

# ---------------------------------------------------------------- step bookkeeping

summary=()
failed=0
now_ms() { date +%s%3N; }
elapsed() { # START_MS -> "1.2s"
  local ms=$(( $(now_ms) - $1 ))
  printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100))
}
# run_step NAME FUNCTION: the function prints what it does and echoes its
# outcome ("ok", "installed ...", "would install ...") as its last line on fd 3.
run_step() {
  local name="$1" fn="$2" start outcome rc=0
  start="$(now_ms)"
  echo "==> $name"
  exec 4>&1
  # Not `|| rc=$?`: that would switch off errexit inside the step.
  set +e
  outcome="$(set -e; "$fn" 3>&1 >&4 | tail -n 1)"
  rc=$?
  set -e
  exec 4>&-
  if (( rc != 0 )); then
    outcome="FAILED${outcome:+ after: $outcome} (see the output above)"
    failed=1
  fi
  local took
  took="$(elapsed "$start")"
  echo "    $name: $outcome ($took)"
  summary+=("$(printf '%-28s %-8s %s' "$name" "$took" "$outcome")")
}
outcome() { echo "$*" >&3; }

as_root() {
  if (( EUID == 0 )); then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else warn "need root for: $* (and sudo is not installed)"; return 1
  fi
}

# ---------------------------------------------------------------- 1. Debian packages

apt_updated=0
missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}
apt_install() { # PACKAGE...: install the missing ones
  local missing
  mapfile -t missing < <(missing_packages "$@")
  if (( ${#missing[@]} == 0 )); then
    outcome "ok (all present: $*)"
    return 0
  fi
  if (( dry_run )); then
    outcome "would apt-get install ${missing[*]}"
    return 0
  fi
  command -v apt-get >/dev/null || { warn "apt-get not found; install by hand: ${missing[*]}"; return 1; }
  if (( ! apt_updated )); then
    say "apt-get update"
    as_root apt-get update -qq
    apt_updated=1
  fi
  say "apt-get install ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  outcome "installed ${missing[*]}"
}
step_base_packages() { apt_install "${BASE_PACKAGES[@]}"; }
step_test_packages() { apt_install "${TEST_PACKAGES[@]}"; }

# ---------------------------------------------------------------- 2. Rust toolchains

# ensure_toolchain TOOLCHAIN "COMPONENT..." "TARGET..."
ensure_toolchain() {
  local tc="$1" components="$2" targets="$3" done_what=() c t
  command -v rustup >/dev/null || {
    warn "rustup not found. Install rustup (the Rust toolchain installer) first; this script cannot download it."
    return 1
  }
  if ! rustup toolchain list | grep -q "^$tc-"; then
    if (( dry_run )); then outcome "would install toolchain $tc ($components; $targets)"; return 0; fi
    say "rustup toolchain install $tc --profile minimal"
    rustup toolchain install "$tc" --profile minimal
    done_what+=("toolchain $tc")
  fi
  local have_c have_t missing_c=() missing_t=()
  have_c="$(rustup component list --toolchain "$tc" --installed 2>/dev/null || true)"
  for c in $components; do
    grep -q "^$c\(-\|$\)" <<<"$have_c" || missing_c+=("$c")
  done
  have_t="$(rustup target list --toolchain "$tc" --installed 2>/dev/null || true)"
  for t in $targets; do
    grep -qx "$t" <<<"$have_t" || missing_t+=("$t")
  done
  if (( dry_run )) && (( ${#missing_c[@]} + ${#missing_t[@]} )); then
    outcome "would add to $tc: ${missing_c[*]} ${missing_t[*]}"
    return 0
  fi
  if (( ${#missing_c[@]} )); then
    say "rustup component add --toolchain $tc ${missing_c[*]}"
    rustup component add --toolchain "$tc" "${missing_c[@]}"
    done_what+=("${missing_c[@]}")
  fi
  if (( ${#missing_t[@]} )); then
    say "rustup target add --toolchain $tc ${missing_t[*]}"
    rustup target add --toolchain "$tc" "${missing_t[@]}"
    done_what+=("${missing_t[@]}")
  fi
  if (( ${#done_what[@]} )); then outcome "installed ${done_what[*]}"; else outcome "ok ($tc: $components${targets:+ $targets})"; fi
}
step_workspace_toolchain() { ensure_toolchain "$WORKSPACE_TOOLCHAIN" "clippy rustfmt" ""; }
step_ink_toolchain() { ensure_toolchain "$INK_TOOLCHAIN" "rust-src clippy rustfmt" "wasm32-unknown-unknown"; }

# ---------------------------------------------------------------- 3. chain tools

reports_version() { # BINARY TOOL VERSION
  [[ -x "$1" ]] || return 1
  local v
  v="$("$1" --version 2>/dev/null | head -n 1)" || return 1
  [[ "$v" == "$2 $3-"* ]]
}

# try_prebuilt TOOL VERSION: 0 = installed (or would be), 1 = not usable
try_prebuilt() {
  local tool="$1" version="$2"
  if [[ -z "$prebuilt" ]]; then
    say "HYDROGEN_PREBUILT_DIR is not set: no prebuilt $tool"
    return 1
  fi
  local sums="$prebuilt/SHA256SUMS" src=""
  if [[ -f "$prebuilt/$tool.xz" ]]; then src="$prebuilt/$tool.xz"
  elif [[ -f "$prebuilt/$tool" ]]; then src="$prebuilt/$tool"
  fi
  if [[ -z "$src" || ! -f "$sums" ]]; then
    say "no $tool(.xz) with SHA256SUMS in $prebuilt"
    return 1
  fi
  local expected
  expected="$(awk -v f="$tool" '{ n = $2; sub(/^\*/, "", n) } n == f { print $1; exit }' "$sums")"
  if [[ -z "$expected" ]]; then
    say "$sums has no line for $tool"
    return 1
  fi
  # Unpack under the tool's own name (the node names itself after argv[0] in
  # --version) into a directory next to the target, so the final mv is
  # atomic; in a dry run, under /tmp.
  local work
  if (( dry_run )); then work="$(mktemp -d)"; else mkdir -p "$bin_dir"; work="$(mktemp -d "$bin_dir/.hydrogen-install.XXXXXX")"; fi
  local tmp="$work/$tool"
  say "unpacking $src"
  if [[ "$src" == *.xz ]]; then
    xz -dc "$src" > "$tmp" || { rm -rf "$work"; say "could not unpack $src"; return 1; }
  else
    cp "$src" "$tmp"
  fi
  local actual
  actual="$(sha256sum "$tmp" | awk '{ print $1 }')"
  if [[ "$actual" != "$expected" ]]; then
    rm -rf "$work"
    warn "CHECKSUM MISMATCH for $src: unpacked SHA-256 is $actual, SHA256SUMS says $expected; not installing it"
    return 1
  fi
  say "checksum ok: $actual"
  chmod 755 "$tmp"
  if ! reports_version "$tmp" "$tool" "$version"; then
    warn "prebuilt $tool reports \"$("$tmp" --version 2>&1 | head -n 1)\", not $version; not installing it"
    rm -rf "$work"
    return 1
  fi
  if (( dry_run )); then
    rm -rf "$work"
    outcome "would install prebuilt $version (checksum ok)"
    return 0
  fi
  mv -f "$tmp" "$bin_dir/$tool"
  rm -rf "$work"
  outcome "installed prebuilt $version into $bin_dir (checksum ok)"
}

# build_from_source TOOL CRATE VERSION MINUTES [ENV...]
build_from_source() {
  local tool="$1" crate="$2" version="$3" minutes="$4"
  shift 4
  local cmd=(cargo "+$WORKSPACE_TOOLCHAIN" install "$crate@$version" --locked)
  warn "falling back to building $tool from crates.io: ${*:+$* }${cmd[*]}"
  warn "this takes about $minutes min on 2 cores"
  if (( dry_run )); then
    outcome "would build $crate@$version from source (~$minutes min)"
    return 0
  fi
  apt_install "${BUILD_PACKAGES[@]}"
  local root
  root="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: $root is local
  trap "rm -rf '$root'" EXIT
  env "$@" nice -n 19 "${cmd[@]}" --root "$root"
  mkdir -p "$bin_dir"
  mv -f "$root/bin/$tool" "$bin_dir/$tool"
  reports_version "$bin_dir/$tool" "$tool" "$version" || { warn "built $tool does not report $version"; return 1; }
  outcome "built $crate@$version from source into $bin_dir"
}

ensure_tool() { # TOOL CRATE VERSION MINUTES [ENV...]
  local tool="$1" version="$3"
  if reports_version "$bin_dir/$tool" "$tool" "$version"; then
    outcome "ok ($("$bin_dir/$tool" --version | head -n 1) in $bin_dir)"
    return 0
  fi
  if [[ -e "$bin_dir/$tool" ]]; then
    say "$bin_dir/$tool reports \"$("$bin_dir/$tool" --version 2>&1 | head -n 1)\", want $version"
  else
    say "$tool is not in $bin_dir"
  fi
  try_prebuilt "$tool" "$version" && return 0
  build_from_source "$@"
}
step_node() {
  ensure_tool substrate-contracts-node contracts-node "$NODE_VERSION" 60-70 \
    SKIP_ROCOCO_RUNTIME_WASM_BUILD=1 SKIP_WESTEND_RUNTIME_WASM_BUILD=1 \
    SKIP_CONTRACTS_PARACHAIN_RUNTIME_WASM_BUILD=1
}
step_cargo_contract() { ensure_tool cargo-contract cargo-contract "$CONTRACT_VERSION" 30; }
# A PyPI package in a venv of its own: DIR, CHECK (a command that succeeds
# once it is installed), REQUIREMENT, and what is missing without it.
# Optional steps: without PyPI they are skipped, and the tests say so.
pip_venv_step() {
  local dir="$1" check="$2" requirement="$3" without="$4"
  if bash -c "$check" >/dev/null 2>&1; then
    outcome "ok ($dir)"
    return 0
  fi
  if (( dry_run )); then outcome "would install $requirement in $dir"; return 0; fi
  if ! command -v python3 >/dev/null || ! python3 -m venv "$dir" >/dev/null 2>&1 \
     || ! "$dir/bin/pip" install -q "$requirement"; then
    outcome "skipped (no python3 venv or no PyPI; $without)"
    return 0
  fi
  outcome "installed $requirement in $dir"
}

# Python's substrate-interface: the contract README's Python example, which
# sdk/tests/chain.rs runs with it (that part of the test is skipped without it).
SUBSTRATE_INTERFACE_VERSION=1.8.1
python_dir="${HYDROGEN_CACHE_DIR:-$HOME/.cache/hydrogen}/python"
step_python_example() {
  pip_venv_step "$python_dir" "'$python_dir/bin/python3' -c 'import substrateinterface'" \
    "substrate-interface==$SUBSTRATE_INTERFACE_VERSION" "the Python example test is skipped"
}

# An S3-compatible server for the relay's S3 tests: moto's standalone
# server (PyPI `moto[server]`): it speaks the S3 HTTP API on loopback with
# any credentials and installs from the package registry in about a minute,
# where MinIO and Garage have no Debian package or PyPI wheel here.
MOTO_VERSION=5.2.5
s3_dir="${HYDROGEN_CACHE_DIR:-$HOME/.cache/hydrogen}/s3"
step_s3_server() {
  pip_venv_step "$s3_dir" "test -x '$s3_dir/bin/moto_server'" \
    "moto[server]==$MOTO_VERSION" "the relay's S3 tests will say so"
}

# ---------------------------------------------------------------- main

total_start="$(now_ms)"
(( dry_run )) && say "dry run: nothing will be changed"
run_step "Debian packages" step_base_packages
run_step "Rust $WORKSPACE_TOOLCHAIN" step_workspace_toolchain
run_step "Rust $INK_TOOLCHAIN (ink!)" step_ink_toolchain
run_step "substrate-contracts-node" step_node
run_step "cargo-contract" step_cargo_contract
run_step "Python example (substrate-interface)" step_python_example
run_step "S3-compatible test server (moto)" step_s3_server
run_step "test servers (nginx, chromium, postgresql)" step_test_packages

echo
echo "install summary:"
printf '  %s\n' "${summary[@]}"
echo "  total: $(elapsed "$total_start")"
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) echo "  note: $bin_dir is not on PATH; add it: export PATH=\"$bin_dir:\$PATH\"" ;;
esac
exit "$failed"
