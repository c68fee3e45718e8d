"""Neighborhood graphs as a PyG ``Dataset``: each anchor's graph built when it is read (paper eqs. (1)-(10)).

:func:`~reidgraph.graph.build_graphs` holds every graph at once, ``A (K+1) D`` floats of node features:
4.17 GB for Market-1501's 3,368 queries at ``K = 150``, ``D = 2048``. :class:`NeighborhoodDataset` holds
the L2-normalised features and an ``[A, K]`` neighbor table, ``A K`` int64 indices (4.04 MB there), and
builds graph ``i`` in :meth:`~NeighborhoodDataset.get`: the same ``Data`` as ``build_graphs(...)[i]``.
"""
from __future__ import annotations

from numbers import Integral
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .._pyg import Data, Dataset, dense_to_sparse

from .._checks import given_neighbors, same_dim
from ..features import FeatureSet
from .batches import iter_graph_batches
from .search import knn
from .settings import GraphSettings


class NeighborhoodDataset(Dataset):
    r"""PyG ``Dataset`` of neighborhood graphs, one per anchor, each built on access from a neighbor table.

    Graph ``i`` holds anchor ``i`` (node 0) and its top-K candidates by cosine similarity,
    :math:`\mathcal{N}_K(a_i) = \operatorname{top-}K_j\, a_i^\top c_j` on L2-normalised features, with the
    edges of the normalised adjacency :math:`S = \Lambda^{-1/2} A \Lambda^{-1/2}` (eqs. 2-10 under
    ``settings``): an edge ``j -> i`` of weight :math:`s_{ij}`. It is ``build_graphs(...)[i]`` exactly.

    The candidates are either the anchors' own set (``gallery=None``: each image's graph over the rest of
    the set, itself excluded; ``n_id`` indexes the set) or a separate ``gallery`` (``n_id`` indexes
    ``[gallery; features]``: anchor ``i`` is node ``G + i``). The neighbor table is searched once here with
    :func:`~reidgraph.graph.knn`, or given.

    Memory: the features, ``(A + G) D`` floats (``A D`` for one set), and ``A K`` int64 neighbor indices;
    :func:`~reidgraph.graph.build_graphs` holds ``A (K+1) D`` floats of node features (docs/dataset.md).

    Args:
        features: the anchors, a :class:`~reidgraph.features.FeatureSet` (its ``pids`` become ``y``, its
            ``camids`` ``camids``) or an ``[A, D]`` tensor.
        settings: graph settings (the paper's by default); camera-aware ones need ``camids``.
        gallery: optional candidates, a ``FeatureSet`` or a ``[G, D]`` tensor.
        neighbors: optional ``[A, >= K]`` candidate indices of each anchor's neighbors, best first (e.g.
            from :meth:`~reidgraph.graph.AnnIndex.search`); its first ``K`` columns are used.
        backend: kNN backend of the search (see :func:`~reidgraph.graph.knn`).
        transform: optional PyG transform applied to each graph when read.

    Shapes:
        - each graph: ``x [K+1, D]`` (L2-normalised), ``edge_index [2, E]``, ``edge_weight [E]``,
          ``n_id [K+1]``, ``anchor_id [1]``; ``y [K+1]`` when the features have ``pids``, ``camids [K+1]``
          when they have ``camids``.
        - attributes: ``anchors [A, D]``, ``candidates [G, D]`` (the same tensor as ``anchors`` for one set,
          ``G = A``), ``neighbors [A, K]``, ``anchor_labels`` / ``anchor_camids [A]`` and
          ``candidate_labels`` / ``candidate_camids [G]`` (or ``None``).
    """

    def __init__(self, features: FeatureSet | Tensor, settings: GraphSettings | None = None, *,
                 gallery: FeatureSet | Tensor | None = None, neighbors=None, backend: str = "auto",
                 transform: Callable[[Data], Data] | None = None):
        super().__init__(transform=transform)
        self.settings = settings or GraphSettings()
        self.features = features if isinstance(features, FeatureSet) else FeatureSet(features)
        self.gallery = gallery if gallery is None or isinstance(gallery, FeatureSet) else FeatureSet(gallery)
        candidates = self.features if gallery is None else self.gallery
        self.anchors = F.normalize(self.features.feats, dim=1)
        self.candidates = self.anchors if gallery is None else F.normalize(self.gallery.feats, dim=1).to(self.anchors)
        same_dim(self.anchors, self.candidates, "features", "gallery")
        self.settings.check(len(candidates) - int(gallery is None))
        device = self.anchors.device
        self.anchor_labels, self.candidate_labels = _both(self.features.pids, candidates.pids, "pids", device)
        self.anchor_camids, self.candidate_camids = _both(self.features.camids, candidates.camids, "camids", device)
        if self.settings.camera_aware and self.anchor_camids is None:
            raise ValueError(f"same_camera_weight={self.settings.same_camera_weight} builds camera-aware graphs, "
                             "which need the camera of every image: give the features"
                             f"{'' if gallery is None else ' and the gallery'} camids")
        if neighbors is None:
            _, neighbors = knn(self.anchors, self.candidates, self.settings.K, backend=backend,
                               exclude="self" if gallery is None else None)
        self.neighbors = given_neighbors(neighbors, len(self.anchors), len(self.candidates),
                                         self.settings.K).to(device)

    def len(self) -> int:
        return self.neighbors.shape[0]

    def __getitem__(self, idx):
        if isinstance(idx, Integral) and not -len(self) <= idx < len(self):
            raise IndexError(f"graph {idx} is out of range: the dataset holds {len(self)}; "
                             f"index from 0 to {len(self) - 1}")
        return super().__getitem__(idx)

    def get(self, idx: int) -> Data:
        """Anchor ``idx``'s graph, built now: ``build_graphs(...)[idx]`` (see the class docstring)."""
        if not 0 <= idx < self.len():
            raise IndexError(f"anchor {idx} is out of range: the dataset has {self.len()} anchors; "
                             f"pass one from 0 to {self.len() - 1}")
        rows = slice(idx, idx + 1)
        nodes = self.neighbors[idx]
        cameras = None if self.anchor_camids is None else self.anchor_camids[rows]
        (_, x, s), = iter_graph_batches(self.anchors[rows], self.candidates, self.neighbors[rows], self.settings, 1,
                                        anchor_camids=cameras, candidate_camids=self.candidate_camids)
        # Row i of S holds the edges j -> i (PyG's adj_t); dense_to_sparse reads row = source: S^T.
        edge_index, edge_weight = dense_to_sparse(s[0].t())
        anchor_node = idx if self.gallery is None else len(self.candidates) + idx
        data = Data(x=x[0], edge_index=edge_index, edge_weight=edge_weight,
                    n_id=torch.cat([nodes.new_tensor([anchor_node]), nodes]), anchor_id=nodes.new_tensor([idx]))
        if self.anchor_labels is not None:
            data.y = torch.cat([self.anchor_labels[rows], self.candidate_labels[nodes]])
        if cameras is not None:
            data.camids = torch.cat([cameras, self.candidate_camids[nodes]])
        return data


def _both(anchor_values: Tensor | None, candidate_values: Tensor | None, name: str, device: torch.device):
    """``(anchor_values, candidate_values)`` on ``device`` when both are given, ``(None, None)`` when neither;
    a one-line ``ValueError`` when one is."""
    if anchor_values is None and candidate_values is None:
        return None, None
    if anchor_values is None or candidate_values is None:
        having, lacking = ("features", "gallery") if candidate_values is None else ("gallery", "features")
        raise ValueError(f"{having} has {name} but {lacking} has none; give both {name}, or neither")
    return anchor_values.to(device), candidate_values.to(device)
