#!/usr/bin/env python3
"""Shows that the property test's reference model catches real bugs.

    cd contracts-ink && ./inject-bugs.py

For each bug below: writes it into the contract (or the shared types), runs
`cargo test model` with 2,000 sequences, prints the model's first complaint,
and restores the file with `git checkout`. Every bug must be caught; the
script exits 1 if one is not. Run it on a clean tree.
"""
import os
import subprocess
import sys

LIB = "hydrogen/src/lib.rs"
TYPES = "../sdk/types/src/lib.rs"

BUGS = {
    "paid nodes are never released": (
        LIB,
        "                    self.pay_node(task_id, id, amount);\n                    self.release(id);",
        "                    self.pay_node(task_id, id, amount);",
    ),
    "timed-out tasks are never refunded": (
        LIB,
        "            if task.status.is_final() && task.all_settled() {\n                self.refund(task_id, task);",
        "            if task.status.is_final() && task.all_settled()"
        " && task.status != TaskStatus::Aborted(AbortReason::Timeout) {\n"
        "                self.refund(task_id, task);",
    ),
    "selection ignores min_vram_gb": (
        LIB,
        "let eligible = self.registry.eligible(task.min_vram_gb);\n"
        "                    chosen = self\n"
        "                        .registry\n"
        "                        .pick(task.min_vram_gb, ",
        "let eligible = self.registry.eligible(0);\n"
        "                    chosen = self\n"
        "                        .registry\n"
        "                        .pick(0, ",
    ),
    "kick-out one miss late (off by one)": (
        LIB,
        "            if node.missed >= self.params.max_missed {\n                node.current_task = None;",
        "            if node.missed > self.params.max_missed {\n                node.current_task = None;",
    ),
    "fee shares by commit order changed": (
        TYPES,
        "pub const ORDER_WEIGHTS: [u128; NODES_PER_TASK] = [10, 9, 6];",
        "pub const ORDER_WEIGHTS: [u128; NODES_PER_TASK] = [10, 8, 7];",
    ),
}


def main() -> int:
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    missed = []
    for name, (path, good, bad) in BUGS.items():
        text = open(path).read()
        if text.count(good) != 1:
            print(f"{name}: the code to break is not there any more; update this script")
            return 1
        open(path, "w").write(text.replace(good, bad))
        try:
            run = subprocess.run(
                ["cargo", "test", "--quiet", "model"],
                env={**os.environ, "PROPTEST_CASES": "2000"},
                capture_output=True,
                text=True,
            )
        finally:
            subprocess.run(["git", "checkout", "--quiet", path], check=True)
        lines = (run.stdout + run.stderr).splitlines()
        complaint = next(
            (lines[i + 1].strip() for i, l in enumerate(lines) if "panicked at" in l and i + 1 < len(lines)),
            None,
        )
        if run.returncode == 0 or complaint is None:
            missed.append(name)
            print(f"NOT CAUGHT  {name}")
        else:
            print(f"caught      {name}: {complaint}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
