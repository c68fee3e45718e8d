"""One results row per ranked method: what the tables of ``evaluate``, ``train`` and the benchmarks print."""
from __future__ import annotations

from .rank import evaluate_order


def results_row(name: str, ranking, query, gallery, seconds: float) -> dict:
    """``{"method", "rank1", "rank5", "rank10", "mAP", "mINP", "seconds"}``: the metrics as fractions.

    Args:
        name: the row's method name.
        ranking: a :class:`~reidgraph.ranking.Ranking` (it evaluates itself, streaming), or ``[Q, G]`` gallery
            orders (chunks or one tensor).
        query, gallery: :class:`~reidgraph.features.FeatureSet` with ``pids`` and ``camids``.
        seconds: the time the ranking took.
    """
    labels = query.pids, gallery.pids, query.camids, gallery.camids
    m = ranking.evaluate(*labels) if hasattr(ranking, "evaluate") else evaluate_order(ranking, *labels)
    return {"method": name, "rank1": m.rank(1), "rank5": m.rank(5), "rank10": m.rank(10), "mAP": m.mAP,
            "mINP": m.mINP, "seconds": seconds}
