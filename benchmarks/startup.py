"""Start-up cost of the command line: CPU time of ``reidgraph --help`` and ``reidgraph COMMAND --help`` against
``python -c "import torch"``, medians of ``--runs`` runs, each in a fresh process, in one run of this script.

Example:
    python benchmarks/startup.py --out benchmarks/results/startup_cpu2.json
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys

from results_io import cpu, save


def cpu_seconds(argv: list[str]) -> float:
    """User + system CPU seconds of one run of ``argv`` (its children included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (default: 5)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    from reidgraph.cli import COMMANDS

    cases = {"import torch": [sys.executable, "-c", "import torch"],
             "reidgraph --help": [sys.executable, "-m", "reidgraph.cli", "--help"],
             **{f"reidgraph {name} --help": [sys.executable, "-m", "reidgraph.cli", name, "--help"]
                for name in COMMANDS}}
    runs = {name: [] for name in cases}
    for _ in range(args.runs):  # interleaved, so that load on the machine falls on every case alike
        for name, argv in cases.items():
            runs[name].append(cpu_seconds(argv))
    medians = {name: statistics.median(times) for name, times in runs.items()}
    torch_cpu = medians["import torch"]
    print(f"CPU seconds, median of {args.runs}; {cpu()}")
    for name, median in medians.items():
        extra = "" if name == "import torch" else f"  ({median - torch_cpu:+.2f} s against import torch)"
        print(f"{name:<32}{median:8.2f}{extra}")
    save(args.out, {"machine": cpu(), "runs": args.runs, "cpu_seconds": runs, "medians": medians,
                    "help_minus_torch": medians["reidgraph --help"] - torch_cpu})
    return 0


if __name__ == "__main__":
    sys.exit(main())
