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

from .._pyg import Data, Dataset
from .._checks import given_neighbors, same_dim
from ..features import FeatureSet
from .batches import iter_graph_batches
from .cameras import graph_camids
from .data import both_or_neither, neighborhood_data
from .search import knn
from .settings import GraphSettings


class NeighborhoodDataset(Dataset):
    r"""PyG ``Dataset`` of neighborhood graphs, one per anchor, each built on access from a neighbor table.

    Graph ``i`` holds anchor ``i`` (node 0) and its top-K candidates by cosine similarity,
    :math:`\mathcal{N}_K(a_i) = \operatorname{top-}K_j\, a_i^\top c_j` on L2-normalised features, with the
    edges of the normalised adjacency :math:`S = \Lambda^{-1/2} A \Lambda^{-1/2}` (eqs. 2-10 under
    ``settings``): an edge ``j -> i`` of weight :math:`s_{ij}`. It is ``build_graphs(...)[i]`` key for key and
    bit for bit, given the features' ``pids`` and ``camids`` as labels and cameras, with one difference:
    ``build_graphs`` keeps ``camids`` only for camera-aware settings, while the dataset adds ``camids`` to
    every graph whenever the features have them (the cross-camera list loss reads them).

    The candidates are either the anchors' own set (``gallery=None``: each image's graph over the rest of
    the set, itself excluded; ``n_id`` indexes the set) or a separate ``gallery`` (``n_id`` indexes
    ``[gallery; features]``: anchor ``i`` is node ``G + i``). The neighbor table is searched once here with
    :func:`~reidgraph.graph.knn`, or given.

    Memory: the L2-normalised features, ``(A + G) D`` floats (``A D`` for one set; the features given are
    not kept), their labels and cameras, and ``A K`` int64 neighbor indices;
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
        # Only the L2-normalised rows are kept (with the labels): the given features are not held.
        features = features if isinstance(features, FeatureSet) else FeatureSet(features)
        candidates = (features if gallery is None else gallery if isinstance(gallery, FeatureSet)
                      else FeatureSet(gallery))
        self.anchors = F.normalize(features.feats, dim=1)
        self.candidates = self.anchors if gallery is None else F.normalize(candidates.feats, dim=1).to(self.anchors)
        same_dim(self.anchors, self.candidates, "features", "gallery")
        self.settings.check(len(candidates) - int(gallery is None))
        device = self.anchors.device
        sets = ("features", "features" if gallery is None else "gallery")
        self.anchor_labels, self.candidate_labels = _on(device, *both_or_neither(features.pids, candidates.pids,
                                                                                "pids", *sets))
        self.anchor_camids, self.candidate_camids = _on(device, *both_or_neither(
            features.camids, candidates.camids, "camids", *sets))
        # camera-aware settings need the cameras; kept either way, as the graphs' camids (the list loss reads them)
        graph_camids(self.settings, self.anchor_camids, self.candidate_camids, len(self.anchors), len(self.candidates),
                     *sets, remedy=f"give the features{'' if gallery is None else ' and the gallery'} camids")
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
        anchor_node = idx if self.candidates is self.anchors else len(self.candidates) + idx
        return neighborhood_data(x[0], s[0], idx, nodes.new_tensor(anchor_node), nodes,
                                 anchor_labels=self.anchor_labels, candidate_labels=self.candidate_labels,
                                 anchor_camids=self.anchor_camids, candidate_camids=self.candidate_camids)


def _on(device: torch.device, *tensors: Tensor | None) -> tuple[Tensor | None, ...]:
    return tuple(None if t is None else t.to(device) for t in tensors)
