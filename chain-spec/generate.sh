#!/usr/bin/env bash
# Regenerates chain-spec/dev.json: the `--dev` spec of substrate-contracts-node
# 0.42.0 plus pre-funded sr25519 accounts for the demo app and the nodes.
#
# The spec keeps the name "Development": substrate-contracts-node runs its
# instant-seal dev service only for a spec of that name; any other name takes
# the parachain collator path.
#
# It also writes the same spec in raw form (genesis as storage key/values)
# next to it, dev-raw.json: same genesis hash, but the node skips building
# genesis from the runtime and starts about twice as fast (devnode.sh uses it).
#
# Usage: chain-spec/generate.sh [OUT]   (default: chain-spec/dev.json; the raw
#        spec goes to OUT with -raw before .json)
# Env:   HYDROGEN_NODE_BIN  node binary (default: from PATH)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/dev.json}"
node="${HYDROGEN_NODE_BIN:-substrate-contracts-node}"
want_version="0.42.0"

command -v "$node" >/dev/null || { echo "generate.sh: $node not found (run scripts/install.sh)" >&2; exit 1; }
version="$("$node" --version)"
case "$version" in
  "substrate-contracts-node $want_version-"*) ;;
  *) echo "generate.sh: need substrate-contracts-node $want_version, found: $version" >&2; exit 1 ;;
esac

# Extra accounts, on top of the node's own dev accounts (Alice..Ferdie and
# their //stash). Each gets the dev accounts' balance, 1 << 60.
extra=(//HydrogenApp //HydrogenApp2)
for i in $(seq 1 12); do extra+=("//Node$i"); done

mkdir -p "$(dirname "$out")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$node" build-spec --dev --disable-default-bootnode > "$tmp/base.json" 2> "$tmp/build-spec.log" \
  || { cat "$tmp/build-spec.log" >&2; exit 1; }

# The derivation code checks itself against the node's dev accounts first.
python3 "$here/dev_accounts.py" --self-test "${extra[@]}" > "$tmp/accounts.txt"

# Python, not jq: jq 1.6 rounds u128 balances to doubles.
python3 - "$tmp/base.json" "$tmp/accounts.txt" "$out.tmp" <<'PY'
import json, sys

base, accounts, out = sys.argv[1:]
spec = json.load(open(base))
assert spec["name"] == "Development", spec["name"]
balances = spec["genesis"]["runtimeGenesis"]["patch"]["balances"]["balances"]
have = {addr for addr, _ in balances}
dev_balance = balances[0][1]
assert dev_balance == 1 << 60, dev_balance
# A spec loaded from a file is parsed as the parachain ChainSpec, whose
# extensions (deny_unknown_fields) require these two fields; the dev service
# ignores them.
ext = {"relay_chain": "rococo-local", "para_id": 1000}
spec = {k: v for k, v in spec.items() if k not in ext}
genesis = spec.pop("genesis")
spec.update(ext)
spec["genesis"] = genesis
for line in open(accounts):
    _uri, addr, _pk = line.split()
    if addr not in have:
        balances.append([addr, dev_balance])
        have.add(addr)
with open(out, "w") as f:
    json.dump(spec, f, indent=2)
    f.write("\n")
PY
mv "$out.tmp" "$out"

raw="${out%.json}-raw.json"
"$node" build-spec --chain "$out" --raw --disable-default-bootnode > "$raw.tmp" 2> "$tmp/build-raw.log" \
  || { cat "$tmp/build-raw.log" >&2; rm -f "$raw.tmp"; exit 1; }
mv "$raw.tmp" "$raw"

echo "wrote $out and $raw (from $version)"
echo "pre-funded with $((1 << 60)) each, besides the dev accounts:"
sed 's/^/  /' "$tmp/accounts.txt"
