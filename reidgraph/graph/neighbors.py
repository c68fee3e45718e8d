"""Each anchor's graph nodes: its top-K candidates by cosine similarity, or indices the caller chose."""
from __future__ import annotations

import torch
from torch import Tensor

from .search import knn


def graph_neighbors(anchors: Tensor, candidates: Tensor, K: int, given=None, *, backend: str = "auto",
                    exclude=None) -> Tensor:
    """``[Q, K]`` candidate indices of each anchor's neighbours, best first.

    Args:
        anchors: ``[Q, D]``; candidates: ``[G, D]``; both L2-normalised.
        K: neighbours per anchor.
        given: optional ``[Q, K]`` indices to use instead of the top-K (e.g. the
            paper's random-graph ablation ``rdm``); checked, not searched.
        backend: kNN backend (see :func:`reidgraph.graph.knn`).
        exclude: optional ``[Q]`` position of each anchor among the candidates,
            so that an anchor is not its own neighbour.
    """
    if given is None:
        return knn(anchors, candidates, K, backend=backend, exclude=exclude)[1]
    given = torch.as_tensor(given, device=anchors.device).long()
    if given.shape != (anchors.shape[0], K) or not bool(((given >= 0) & (given < candidates.shape[0])).all()):
        raise ValueError(f"neighbors must be [{anchors.shape[0]}, K={K}] candidate indices in "
                         f"[0, {candidates.shape[0] - 1}], got shape {tuple(given.shape)}")
    return given
