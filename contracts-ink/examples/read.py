#!/usr/bin/env python3
"""Reads the Hydrogen contract from Python with substrate-interface.

    python3 contracts-ink/examples/read.py ws://127.0.0.1:9944 <CONTRACT> <hydrogen.contract> [TASK_ID]

Prints the protocol parameters, the node counts and, given a task id, that
task (its accounts as SS58 addresses), decoded with the bundle's metadata. `sdk/tests/chain.rs` runs it when substrate-interface is installed
(`pip install substrate-interface`).
"""
import sys

from substrateinterface import Keypair, SubstrateInterface
from substrateinterface.contracts import ContractInstance


def main() -> None:
    url, address, bundle = sys.argv[1:4]
    task_id = int(sys.argv[4]) if len(sys.argv) > 4 else None
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
    if task_id is not None:
        task = contract.read(alice, "task", args={"task_id": task_id})
        print("task:", task.contract_result_data)


if __name__ == "__main__":
    main()
