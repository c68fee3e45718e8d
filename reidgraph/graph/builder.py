"""Neighbourhood graphs as PyTorch Geometric data (paper eqs. (1)-(10), §3.2).

For each anchor, its top-K candidates by cosine similarity (the anchor itself
left out when it belongs to the candidates) and the anchor form one graph of
``K + 1`` nodes, node 0 the anchor. Its edges are the surviving entries of the
normalised adjacency ``S``: an edge ``j -> i`` with weight ``s_ij``.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .._checks import as_features, as_labels, camera_ids, in_unit_interval, int_in_range, same_dim
from .._pyg import BaseTransform, Data
from .adjacency import check_graph_params, neighborhood_adjacency, normalize_adjacency
from .search import knn


@dataclass(frozen=True)
class GraphSettings:
    """How a neighbourhood graph is built; defaults are the paper's.

    Attributes:
        K: neighbours per anchor (graph of ``K + 1`` nodes).
        k: k-reciprocal neighbourhood size inside a graph.
        lam: weight λ of the soft Jaccard term (eq. 8).
        tau: edges kept per node by the mask (eqs. 9-10).
        edges: ``"joint"`` (eq. 8) or ``"cosine"`` (ablation ``ori``).
        mask: apply the top-τ mask (``False``: ablation ``wo_mask``).
        same_camera_weight: factor on the similarity of two distinct nodes of
            one camera before the graph is built (1: the paper; 0: camera-aware,
            same-camera neighbours ignored). Below 1, graphs need camera ids.
    """

    K: int = 150
    k: int = 20
    lam: float = 0.7
    tau: int = 20
    edges: str = "joint"
    mask: bool = True
    same_camera_weight: float = 1.0

    @property
    def camera_aware(self) -> bool:
        return self.same_camera_weight < 1

    def check(self, num_candidates: int | None = None) -> None:
        """Raise a ``ValueError`` naming the first setting that cannot work."""
        if num_candidates is not None:
            int_in_range("K", self.K, 1, num_candidates,
                         f"only {num_candidates} candidates per anchor; the maximum is K={num_candidates}")
        else:
            int_in_range("K", self.K, 1, 2**31)
        check_graph_params(self.K + 1, self.k, self.lam, self.tau, self.edges)
        in_unit_interval("same_camera_weight", self.same_camera_weight)

    def adjacency(self, x: Tensor, camids: Tensor | None = None) -> Tensor:
        """Normalised adjacency ``S [B, n, n]`` of graphs ``x [B, n, D]`` (cameras ``camids [B, n]``)."""
        return normalize_adjacency(neighborhood_adjacency(
            x, k=self.k, lam=self.lam, tau=self.tau, edges=self.edges, mask=self.mask, camids=camids,
            same_camera_weight=self.same_camera_weight))

    def as_dict(self) -> dict:
        return asdict(self)


def dense_to_edges(s: Tensor) -> tuple[Tensor, Tensor]:
    """Non-zero entries of ``s [n, n]`` as ``(edge_index [2, E], edge_weight [E])``.

    Entry ``s[i, j]`` becomes the edge ``j -> i`` (source ``j``, target ``i``).
    """
    target, source = s.nonzero(as_tuple=True)
    return torch.stack([source, target]), s[target, source]


def block_diagonal(s: Tensor) -> Tensor:
    """Batched dense ``s [B, n, n]`` as one sparse CSR ``[B*n, B*n]`` block-diagonal matrix.

    Row ``i`` holds the weights of node ``i``'s incoming edges, which is the
    ``adj_t`` layout PyG's sparse message passing expects. CSR, so that the
    layers sharing it do not each convert it.
    """
    B, n, _ = s.shape
    b, i, j = s.nonzero(as_tuple=True)
    index = torch.stack([b * n + i, b * n + j])
    coo = torch.sparse_coo_tensor(index, s[b, i, j], (B * n, B * n), is_coalesced=True, check_invariants=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()


class NeighborhoodGraph(BaseTransform):
    """PyG transform: add FFGNN edges to a ``Data`` whose ``x [K+1, D]`` is a neighbourhood.

    Node 0 of ``data.x`` is the anchor. Sets ``edge_index [2, E]`` and
    ``edge_weight [E]`` from eqs. 2-10 under ``settings``; camera-aware
    settings read each node's camera from ``data.camids [K+1]``.
    """

    def __init__(self, settings: GraphSettings | None = None):
        self.settings = settings or GraphSettings()

    def forward(self, data: Data) -> Data:
        n = data.x.shape[0]
        check_graph_params(n, self.settings.k, self.settings.lam, self.settings.tau, self.settings.edges)
        camids = getattr(data, "camids", None)
        camids = None if camids is None else camids[None]
        data.edge_index, data.edge_weight = dense_to_edges(self.settings.adjacency(data.x[None], camids)[0])
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings})"


def iter_graph_batches(anchors: Tensor, candidates: Tensor, neighbors: Tensor, settings: GraphSettings,
                       batch_size: int, progress: bool = False, anchor_camids: Tensor | None = None,
                       candidate_camids: Tensor | None = None) -> Iterator[tuple[slice, Tensor, Tensor]]:
    """Dense graphs for consecutive batches of anchors.

    Args:
        anchors: ``[Q, D]``; candidates: ``[G, D]``; both L2-normalised by the caller.
        neighbors: ``[Q, K]`` candidate indices of each anchor's neighbours.
        anchor_camids, candidate_camids: ``[Q]`` / ``[G]`` cameras, checked by
            the caller (see :func:`graph_camids`); used by camera-aware settings.

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
        yield rows, x, settings.adjacency(x, camids)


def graph_camids(settings: GraphSettings, anchor_camids, candidate_camids, num_anchors: int,
                 num_candidates: int, anchors: str = "query", candidates: str = "gallery"):
    """Checked ``[Q]`` / ``[G]`` camera ids for camera-aware ``settings`` (``(None, None)`` otherwise)."""
    if not settings.camera_aware:
        return None, None
    missing = (f"same_camera_weight={settings.same_camera_weight} builds camera-aware graphs, which need "
               f"the camera of every image: pass {anchors}_camids and {candidates}_camids")
    return (camera_ids(anchor_camids, num_anchors, f"{anchors}_camids", anchors, missing),
            camera_ids(candidate_camids, num_candidates, f"{candidates}_camids", candidates, missing))


def build_graphs(anchors, candidates, settings: GraphSettings | None = None, *,
                 anchor_labels=None, candidate_labels=None, anchor_index=None, neighbors=None,
                 anchor_camids=None, candidate_camids=None,
                 backend: str = "auto", batch_size: int = 256, progress: bool = False) -> list[Data]:
    """One PyG graph per anchor: the anchor and its top-K candidates.

    Args:
        anchors: ``[Q, D]`` anchor features.
        candidates: ``[G, D]`` candidate features (the gallery).
        settings: graph settings (the paper's by default).
        anchor_labels, candidate_labels: optional ``[Q]`` / ``[G]`` identity labels.
        anchor_index: optional ``[Q]`` position of each anchor among the
            candidates when anchors are drawn from them: an anchor is then not
            its own neighbour, and ``n_id`` indexes the candidates throughout.
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
        ``edge_weight [E]``, ``n_id [K+1]`` (node 0: the anchor's index in
        ``anchors``, or in ``candidates`` with ``anchor_index``; the rest:
        indices into ``candidates``) and, with labels,
        ``y [K+1]``. Batch them with ``Batch.from_data_list`` or PyG's ``DataLoader``.
    """
    settings = settings or GraphSettings()
    anchors = F.normalize(as_features(anchors, "anchors"), dim=1)
    candidates = F.normalize(as_features(candidates, "candidates"), dim=1).to(anchors)
    same_dim(anchors, candidates, "anchors", "candidates")
    settings.check(candidates.shape[0] - int(anchor_index is not None))
    int_in_range("batch_size", batch_size, 1, 2**31)
    anchor_camids, candidate_camids = graph_camids(settings, anchor_camids, candidate_camids, anchors.shape[0],
                                                   candidates.shape[0], "anchor", "candidate")
    labelled = anchor_labels is not None or candidate_labels is not None
    if labelled:
        if anchor_labels is None or candidate_labels is None:
            raise ValueError("pass both anchor_labels and candidate_labels, or neither")
        anchor_labels = as_labels(anchor_labels, anchors.shape[0], "anchor_labels", "anchors")
        candidate_labels = as_labels(candidate_labels, candidates.shape[0], "candidate_labels", "candidates")
    if neighbors is None:
        _, neighbors = knn(anchors, candidates, settings.K, backend=backend, exclude=anchor_index)
    else:
        neighbors = torch.as_tensor(neighbors, device=anchors.device).long()
        if neighbors.shape != (anchors.shape[0], settings.K) or not bool(
                ((neighbors >= 0) & (neighbors < candidates.shape[0])).all()):
            raise ValueError(f"neighbors must be [{anchors.shape[0]}, K={settings.K}] candidate indices in "
                             f"[0, {candidates.shape[0] - 1}], got shape {tuple(neighbors.shape)}")
    positions = torch.arange(anchors.shape[0], device=neighbors.device)
    anchor_ids = positions if anchor_index is None else torch.as_tensor(anchor_index).to(neighbors)
    graphs = []
    for rows, x, s in iter_graph_batches(anchors, candidates, neighbors, settings, batch_size, progress,
                                         anchor_camids, candidate_camids):
        for b, q in enumerate(positions[rows].tolist()):
            edge_index, edge_weight = dense_to_edges(s[b])
            data = Data(x=x[b], edge_index=edge_index, edge_weight=edge_weight,
                        n_id=torch.cat([anchor_ids[q:q + 1], neighbors[q]]))
            if labelled:
                data.y = torch.cat([anchor_labels[q:q + 1], candidate_labels[neighbors[q]]])
            if anchor_camids is not None:
                data.camids = torch.cat([anchor_camids[q:q + 1], candidate_camids[neighbors[q]]])
            graphs.append(data)
    return graphs
