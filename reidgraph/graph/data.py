"""One anchor's neighborhood graph as a PyG ``Data``: the assembly shared by every graph builder."""
from __future__ import annotations

import torch
from torch import Tensor

from .._pyg import Data, dense_to_sparse


def adjacency_edges(s: Tensor) -> tuple[Tensor, Tensor]:
    """``(edge_index [2, E], edge_weight [E])`` of one graph's normalised adjacency ``s [n, n]``: edge ``j -> i``
    carries ``s_ij``.

    Row ``i`` of ``S`` holds the edges ``j -> i`` (PyG's ``adj_t``); ``dense_to_sparse`` reads row = source, so
    it is given ``S^T``.
    """
    return dense_to_sparse(s.t())


def neighborhood_data(x: Tensor, s: Tensor, anchor: int, anchor_node: Tensor, nodes: Tensor, *,
                      anchor_labels: Tensor | None = None, candidate_labels: Tensor | None = None,
                      anchor_camids: Tensor | None = None, candidate_camids: Tensor | None = None) -> Data:
    """Anchor ``anchor``'s graph: ``x [K+1, D]``, the edges of ``s [K+1, K+1]``, ``n_id = [anchor_node; nodes]``,
    ``anchor_id = [anchor]``, and ``y`` / ``camids`` (node 0 the anchor's, then its ``nodes [K]``' candidate
    rows) from the ``[Q]`` / ``[G]`` tables that are given."""
    edge_index, edge_weight = adjacency_edges(s)
    rows = slice(anchor, anchor + 1)
    data = Data(x=x, edge_index=edge_index, edge_weight=edge_weight,
                n_id=torch.cat([anchor_node.reshape(1).to(nodes), nodes]), anchor_id=nodes.new_tensor([anchor]))
    if anchor_labels is not None:
        data.y = torch.cat([anchor_labels[rows], candidate_labels[nodes]])
    if anchor_camids is not None:
        data.camids = torch.cat([anchor_camids[rows], candidate_camids[nodes]])
    return data


def both_or_neither(anchor_values, candidate_values, what: str, anchors: str = "anchors",
                    candidates: str = "candidates"):
    """``(anchor_values, candidate_values)`` as given when both or neither are; a one-line ``ValueError`` naming
    the set that lacks ``what`` (e.g. ``"pids"``) when only one is."""
    if (anchor_values is None) != (candidate_values is None):
        having, lacking = (anchors, candidates) if candidate_values is None else (candidates, anchors)
        raise ValueError(f"{having} has {what} but {lacking} has none; give both {what}, or neither")
    return anchor_values, candidate_values
