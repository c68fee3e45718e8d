"""Evaluation: ranking metrics (CMC, mAP, mINP) under the standard ReID protocol."""
from .rank import RankMetrics, evaluate_distances, evaluate_order, evaluate_rank
from .rows import results_row

__all__ = ["RankMetrics", "evaluate_distances", "evaluate_order", "evaluate_rank", "results_row"]
