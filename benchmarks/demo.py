"""The README's main job, timed: ``reidgraph demo`` run several times, each in a fresh process and folder.

Records the wall time of each whole command (images generated, three stages, the picture), their median,
each run's results table (``runs/demo/run/results.json``) and the CPU::

    python benchmarks/demo.py --repeats 3 --out benchmarks/results/demo_cpu2.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_io import cpu, save


def run_once(folder: Path) -> dict:
    """One ``reidgraph demo --out folder``: its wall seconds and its results rows."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reidgraph.cli", "demo", "--out", str(folder), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": json.loads((folder / "run" / "results.json").read_text())["rows"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs, each in a fresh process (default 3)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    runs = []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as work:
            runs.append(run_once(Path(work) / "demo"))
        print(f"run {i + 1}: {runs[-1]['seconds']:.1f} s", flush=True)
    median = statistics.median(r["seconds"] for r in runs)
    for row in runs[-1]["rows"]:
        print(f"  {row['method']}: rank-1 {100 * row['rank1']:.1f}, mAP {100 * row['mAP']:.1f}")
    print(f"reidgraph demo: median {median:.1f} s of {args.repeats} runs on {cpu()}")
    save(args.out, {"command": "reidgraph demo", "cpu": cpu(), "date": str(datetime.date.today()),
                    "median_seconds": median, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
