#!/usr/bin/env python3
"""Smoke-check a running dev chain started from chain-spec/dev.json.

1. Every account that generate.sh pre-funds exists on chain with a balance
   (reads System.Account storage over JSON-RPC).
2. A signed `System.remark` from SIGNER is sealed into a new block at once
   and finalized (instant seal; devnode.sh starts the node with
   --finalize-delay-sec 0).

Standard library only. Usage:
  check_dev_chain.py [--url http://127.0.0.1:9944] [--signer //HydrogenApp2] [--no-tx]
"""

import argparse
import hashlib
import json
import os
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dev_accounts  # noqa: E402

FUNDED = ["//Alice", "//Bob", "//HydrogenApp", "//HydrogenApp2"] + [f"//Node{i}" for i in range(1, 13)]
# twox128("System") ++ twox128("Account")
SYSTEM_ACCOUNT = bytes.fromhex("26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9")


def rpc(url, method, params=()):
    body = json.dumps({"id": 1, "jsonrpc": "2.0", "method": method, "params": list(params)}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        reply = json.load(resp)
    if "error" in reply:
        raise SystemExit(f"{method}: {reply['error']}")
    return reply["result"]


def compact(n):
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return ((n << 2) | 1).to_bytes(2, "little")
    return ((n << 2) | 2).to_bytes(4, "little")


def free_balance(url, pubkey):
    key = SYSTEM_ACCOUNT + hashlib.blake2b(pubkey, digest_size=16).digest() + pubkey
    raw = rpc(url, "state_getStorage", ["0x" + key.hex()])
    if raw is None:
        return None
    # AccountInfo { nonce: u32, consumers, providers, sufficients, data: { free: u128, .. } }
    return int.from_bytes(bytes.fromhex(raw[2:])[16:32], "little")


def remark_extrinsic(url, signer, text):
    """A signed v4 System.remark for contracts-node-runtime 0.42.0."""
    pubkey = dev_accounts.public_key(signer)
    nonce = rpc(url, "system_accountNextIndex", [dev_accounts.ss58(pubkey)])
    version = rpc(url, "state_getRuntimeVersion")
    genesis = bytes.fromhex(rpc(url, "chain_getBlockHash", [0])[2:])
    call = bytes([0, 0]) + compact(len(text)) + text  # System(0).remark(0)
    # Signed extensions: CheckNonZeroSender, CheckSpecVersion, CheckTxVersion,
    # CheckGenesis, CheckEra (immortal), CheckNonce, CheckWeight,
    # ChargeTransactionPayment (tip 0).
    extra = b"\x00" + compact(nonce) + compact(0)
    implicit = (version["specVersion"].to_bytes(4, "little")
                + version["transactionVersion"].to_bytes(4, "little") + genesis + genesis)
    payload = call + extra + implicit
    if len(payload) > 256:
        payload = hashlib.blake2b(payload, digest_size=32).digest()
    body = (b"\x84" + b"\x00" + pubkey                               # signed v4, MultiAddress::Id
            + b"\x01" + dev_accounts.sign(signer, payload)           # MultiSignature::Sr25519
            + extra + call)
    return compact(len(body)) + body


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:9944")
    ap.add_argument("--signer", default="//HydrogenApp2")
    ap.add_argument("--no-tx", action="store_true", help="only check balances")
    args = ap.parse_args()
    url = args.url.replace("ws://", "http://").replace("wss://", "https://")

    failed = 0
    for uri in FUNDED:
        pk = dev_accounts.public_key(uri)
        free = free_balance(url, pk)
        ok = free is not None and free > 0
        failed += not ok
        print(f"{'ok ' if ok else 'BAD'} {uri:15} {dev_accounts.ss58(pk)} free={free}")

    if not args.no_tx:
        number = lambda h: int(h["number"], 16)  # noqa: E731
        before = number(rpc(url, "chain_getHeader"))
        xt = remark_extrinsic(url, args.signer, b"hydrogen dev chain check")
        start = time.monotonic()
        rpc(url, "author_submitExtrinsic", ["0x" + xt.hex()])
        while number(rpc(url, "chain_getHeader")) == before and time.monotonic() - start < 10:
            time.sleep(0.02)
        sealed = time.monotonic() - start
        best = number(rpc(url, "chain_getHeader"))
        while time.monotonic() - start < 10:
            finalized = number(rpc(url, "chain_getHeader", [rpc(url, "chain_getFinalizedHead")]))
            if finalized >= best:
                break
            time.sleep(0.05)
        ok = best > before and finalized >= best
        failed += not ok
        print(f"{'ok ' if ok else 'BAD'} remark from {args.signer}: best #{before} -> #{best} "
              f"in {sealed:.2f}s, finalized #{finalized} after {time.monotonic() - start:.2f}s")

    print(f"{len(FUNDED) + (not args.no_tx) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
