"""Results rows as text tables for the terminal: what ``reidgraph`` prints, kept apart from what computes the rows."""
from __future__ import annotations

METRICS = ("rank1", "rank5", "rank10", "mAP", "mINP")


def results_table(rows: list[dict]) -> str:
    """Rows of :func:`~reidgraph.evaluation.results_row` as a table: metrics in percent, time in seconds."""
    lines = [f"{'method':<26}{'rank-1':>8}{'rank-5':>8}{'rank-10':>8}{'mAP':>8}{'mINP':>8}{'time (s)':>10}"]
    lines += [f"{r['method']:<26}" + "".join(f"{100 * r[k]:8.1f}" for k in METRICS) + f"{r['seconds']:10.1f}"
              for r in rows]
    return "\n".join(lines)
