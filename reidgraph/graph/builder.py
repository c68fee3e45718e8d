"""Neighborhood graphs as PyTorch Geometric ``Data``, one per anchor (paper eqs. (1)-(10), §3.2).

For each anchor, its top-K candidates by cosine similarity (the anchor itself
left out when it belongs to the candidates) and the anchor form one graph of
``K + 1`` nodes, node 0 the anchor. Its edges are the surviving entries of the
normalised adjacency ``S``: an edge ``j -> i`` with weight ``s_ij``.

Node ids (``n_id``) index one table of images, ``torch.cat([candidates, anchors])``:
anchor ``q`` is row ``G + q``, or its own row among the candidates when it is drawn
from them (``exclude``; then every id is a candidate row). Either way ``n_id[1:]`` indexes the candidates, and
``anchor_id`` holds the anchor's row in ``anchors``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import as_features, as_labels, int_in_range, same_dim
from .._pyg import Data
from .batches import iter_graph_batches
from .cameras import graph_camids
from .data import both_or_neither, neighborhood_data
from .exclusion import exclusions
from .neighbors import graph_neighbors
from .settings import GraphSettings


def build_graphs(anchors, candidates, settings: GraphSettings | None = None, *,
                 anchor_labels=None, candidate_labels=None, exclude=None, neighbors=None,
                 anchor_camids=None, candidate_camids=None,
                 backend: str = "auto", batch_size: int = 256, progress: bool = False) -> list[Data]:
    """One PyG graph per anchor: the anchor and its top-K candidates.

    Args:
        anchors: ``[Q, D]`` anchor features.
        candidates: ``[G, D]`` candidate features (the gallery).
        settings: graph settings (the paper's by default).
        anchor_labels, candidate_labels: optional ``[Q]`` / ``[G]`` identity labels.
        exclude: as :func:`reidgraph.graph.knn`'s: ``"self"`` (anchors and
            candidates are one set) or a ``[Q]`` position of each anchor among
            the candidates (``-1``: not among them). Such an anchor is not its
            own neighbor, and its node is its candidate row; an anchor with
            ``-1`` (or every anchor, without ``exclude``) is node ``G + q``.
        neighbors: optional ``[Q, K]`` candidate indices to use as each
            anchor's nodes instead of its top-K (e.g. the paper's random-graph
            ablation ``rdm``).
        anchor_camids, candidate_camids: ``[Q]`` / ``[G]`` camera ids, needed by
            camera-aware settings (``same_camera_weight < 1``); kept as ``camids``.
        backend: kNN backend (see :func:`reidgraph.graph.knn`).
        batch_size: anchors whose dense graphs are built at once (memory bound).
        progress: show a progress bar.

    Returns:
        ``Q`` ``Data`` objects with ``x [K+1, D]`` (L2-normalised features, so
        a model sees the same scale whatever network made them), ``edge_index [2, E]``,
        ``edge_weight [E]`` (edge ``j -> i`` carries ``s_ij``), ``n_id [K+1]`` (node ``i``'s row in
        ``torch.cat([candidates, anchors])``: the anchor ``q`` is ``G + q``, or its row in
        ``candidates`` where ``exclude`` places it there), ``anchor_id [1]`` (the anchor's row ``q`` in ``anchors``), with labels
        ``y [K+1]`` and, with cameras, ``camids [K+1]``. Batch them with ``Batch.from_data_list`` or
        PyG's ``DataLoader`` (neither shifts ``n_id`` nor ``anchor_id``).
    """
    settings = settings or GraphSettings()
    anchors = F.normalize(as_features(anchors, "anchors"), dim=1)
    candidates = F.normalize(as_features(candidates, "candidates"), dim=1).to(anchors)
    same_dim(anchors, candidates, "anchors", "candidates")
    settings.check(candidates.shape[0] - int(exclude is not None))
    int_in_range("batch_size", batch_size, 1, 2**31)
    anchor_camids, candidate_camids = graph_camids(settings, anchor_camids, candidate_camids, anchors.shape[0],
                                                   candidates.shape[0], "anchor", "candidate")
    anchor_labels, candidate_labels = both_or_neither(anchor_labels, candidate_labels, "labels")
    if anchor_labels is not None:
        anchor_labels = as_labels(anchor_labels, anchors.shape[0], "anchor_labels", "anchors")
        candidate_labels = as_labels(candidate_labels, candidates.shape[0], "candidate_labels", "candidates")
    exclude = exclusions(anchors.shape[0], candidates.shape[0], exclude, anchors.device)
    neighbors = graph_neighbors(anchors, candidates, settings.K, neighbors, backend=backend, exclude=exclude)
    positions = torch.arange(anchors.shape[0], device=neighbors.device)
    anchor_nodes = positions + candidates.shape[0]  # an anchor not drawn from the candidates: row G + q
    if exclude is not None:  # one drawn from them (exclude[q] >= 0) is its own candidate row
        exclude = exclude.to(neighbors.device)
        anchor_nodes = torch.where(exclude >= 0, exclude, anchor_nodes)
    graphs = []
    for rows, x, s in iter_graph_batches(anchors, candidates, neighbors, settings, batch_size, progress,
                                         anchor_camids, candidate_camids):
        for b, q in enumerate(positions[rows].tolist()):
            graphs.append(neighborhood_data(x[b], s[b], q, anchor_nodes[q], neighbors[q],
                                            anchor_labels=anchor_labels, candidate_labels=candidate_labels,
                                            anchor_camids=anchor_camids, candidate_camids=candidate_camids))
    return graphs
