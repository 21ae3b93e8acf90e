#!/usr/bin/env python3
"""Reads the Hydrogen contract from Python with substrate-interface.

    python3 contracts-ink/examples/read.py ws://127.0.0.1:9944 <CONTRACT> <hydrogen.contract>

Prints the protocol parameters and the node counts, decoded with the bundle's
metadata. `sdk/tests/chain.rs` runs it when substrate-interface is installed
(`pip install substrate-interface`).
"""
import sys

from substrateinterface import Keypair, SubstrateInterface
from substrateinterface.contracts import ContractInstance


def main() -> None:
    url, address, bundle = sys.argv[1:4]
    substrate = SubstrateInterface(url=url)
    contract = ContractInstance.create_from_address(
        contract_address=address, metadata_file=bundle, substrate=substrate
    )
    alice = Keypair.create_from_uri("//Alice")
    params = contract.read(alice, "params")
    print("params:", params.contract_result_data)
    counts = contract.read(alice, "node_counts")
    print("node counts:", counts.contract_result_data)
    # Errors are named variants of hydrogen_types::Error, e.g. NotPendingOwner.
    refused = contract.read(alice, "accept_ownership")
    print("accept_ownership as Alice:", refused.contract_result_data)


if __name__ == "__main__":
    main()
