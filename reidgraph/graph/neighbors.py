"""Each anchor's graph nodes: its top-K candidates by cosine similarity, or indices the caller chose."""
from __future__ import annotations

from torch import Tensor

from .._checks import given_neighbors
from .search import knn


def graph_neighbors(anchors: Tensor, candidates: Tensor, K: int, given=None, *, backend: str = "auto",
                    exclude=None) -> Tensor:
    """``[Q, K]`` candidate indices of each anchor's neighbors, best first.

    Args:
        anchors: ``[Q, D]``; candidates: ``[G, D]``; both L2-normalised.
        K: neighbors per anchor.
        given: optional ``[Q, K]`` indices to use instead of the top-K (e.g. the
            paper's random-graph ablation ``rdm``); checked, not searched.
        backend: kNN backend (see :func:`reidgraph.graph.knn`).
        exclude: optional ``[Q]`` position of each anchor among the candidates,
            so that an anchor is not its own neighbor.
    """
    if given is None:
        return knn(anchors, candidates, K, backend=backend, exclude=exclude)[1]
    return given_neighbors(given, anchors.shape[0], candidates.shape[0], K).to(anchors.device)
