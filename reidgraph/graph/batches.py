"""Dense neighborhood graphs for consecutive batches of anchors, memory bounded by the batch size."""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .settings import GraphSettings


def iter_graph_batches(anchors: Tensor, candidates: Tensor, neighbors: Tensor, settings: GraphSettings,
                       batch_size: int, progress: bool = False, anchor_camids: Tensor | None = None,
                       candidate_camids: Tensor | None = None) -> Iterator[tuple[slice, Tensor, Tensor]]:
    """Dense graphs for consecutive batches of anchors.

    Args:
        anchors: ``[Q, D]``; candidates: ``[G, D]``; both L2-normalised and checked finite by the caller, as
            are ``settings`` (:meth:`~reidgraph.graph.GraphSettings.check`).
        neighbors: ``[Q, K]`` candidate indices of each anchor's neighbors.
        anchor_camids, candidate_camids: ``[Q]`` / ``[G]`` cameras, checked by
            the caller (see :func:`~reidgraph.graph.cameras.graph_camids`); used by camera-aware settings.

    Yields:
        ``(rows, x [b, K+1, D], S [b, K+1, K+1])`` where ``rows`` selects the anchors.
    """
    starts = range(0, anchors.shape[0], batch_size)
    for start in tqdm(starts, desc="graphs", unit="batch", disable=not progress, leave=False):
        rows = slice(start, start + batch_size)
        x = torch.cat([anchors[rows, None], candidates[neighbors[rows]]], dim=1)
        camids = None
        if settings.camera_aware:
            camids = torch.cat([anchor_camids[rows, None], candidate_camids[neighbors[rows]]], dim=1)
        yield rows, x, settings.checked_adjacency(x, camids)
