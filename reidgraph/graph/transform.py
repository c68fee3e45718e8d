"""The neighborhood graph as a PyG transform, for ``Data`` objects built elsewhere."""
from __future__ import annotations

from .._pyg import BaseTransform, Data
from .adjacency import check_graph_params
from .data import adjacency_edges
from .settings import GraphSettings


class NeighborhoodGraph(BaseTransform):
    """PyG transform: add FFGNN edges to a ``Data`` whose ``x [K+1, D]`` is a neighborhood.

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
        data.edge_index, data.edge_weight = adjacency_edges(self.settings.adjacency(data.x[None], camids)[0])
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings})"
