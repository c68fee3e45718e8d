r"""GNN re-ranking: k-NN adjacency rows propagated over the k-NN graph.

Zhang, Jiang, Xie, Huang, Xu and Tian, "Understanding Image Retrieval
Re-Ranking: A Graph Neural Network Perspective", arXiv 2020.

All ``N = Q + G`` items are ranked against each other by cosine similarity
:math:`s_{ij}` (each item first in its own list, :math:`\mathcal N_k(i)` its top
``k``). Stage 1 builds the binary ``k1``-NN adjacency, whose rows serve as node
features:

.. math::
    A^{(0)}_{ij} = [\, j \in \mathcal N_{k_1}(i) \,].

Stage 2 runs two rounds of message passing from the ``k2`` nearest neighbors,
weighted by the squared similarity, each after symmetrising the graph:

.. math::
    A^{(l+1)}_{i} = \operatorname{normalize}\Big(\sum_{j \in \mathcal N_{k_2}(i)}
                    s_{ij}^2\, \big(A^{(l)} + A^{(l)\top}\big)_{j}\Big), \qquad l = 0, 1,

with rows L2-normalised. With ``k2 = 1`` the authors skip stage 2 (a node's only
neighbor is itself); the rows of :math:`A^{(0)}` are then just normalised. The
distance is :math:`1 - A_p^\top A_g` over the final rows.

Everything stays sparse (``torch.sparse`` COO, CPU or CUDA): :math:`A^{(0)}` has
``N k1`` entries and each round multiplies a row count by at most ``2 k2``, so
memory is ``O(N k1 k2^2)`` at worst (much less on real data, where the
neighborhoods overlap), plus one ``[N, chunk]`` block.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from reidgraph._checks import int_in_range
from reidgraph.graph import knn
from reidgraph.ranking import Ranking

from ._common import joint_features, rows_to_sparse

ROUNDS = 2  # the paper's two propagation steps


class GNNRerank(Ranking):
    """Distances ``1 - cos`` between propagated adjacency rows of queries and gallery.

    Built by :func:`gnn_rerank`; holds the sparse ``[N, N]`` rows, queries first.
    """

    def __init__(self, rows: Tensor, num_query: int):
        self.rows = rows
        self.num_query = num_query
        self.gallery = _row_slice(rows, num_query, rows.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return self.num_query, self.rows.shape[0] - self.num_query

    def distance_chunks(self, chunk_size: int = 1024) -> Iterator[Tensor]:
        """Yield ``[q, G]`` distances for consecutive chunks of ``q <= chunk_size`` queries."""
        for start, stop in self._query_ranges(chunk_size):
            block = _row_slice(self.rows, start, stop).to_dense()
            # sparse @ dense is several times faster with a contiguous dense operand
            yield 1 - (self.gallery @ block.T.contiguous()).T


def gnn_rerank(query: Tensor, gallery: Tensor, k1: int = 26, k2: int = 7) -> GNNRerank:
    """GNN re-ranking distance (see the module docstring for the equations).

    Args:
        query: ``[Q, D]`` features.
        gallery: ``[G, D]`` features.
        k1: neighbors per node in the adjacency, itself included, ``1 <= k1 <= N``. Default 26.
        k2: neighbors messages come from, itself included, ``1 <= k2 <= k1``. Default 7.

    Returns:
        A :class:`GNNRerank`: distances ``1 - cos`` of the propagated rows, smaller for closer items.
    """
    feats, Q, N = joint_features(query, gallery)
    k1 = int_in_range("k1", k1, 1, N, f"query and gallery hold {N} items")
    k2 = int_in_range("k2", k2, 1, k1, "messages come from within the k1 neighbors")
    sims, nbrs = knn(feats, feats, k1, backend="torch")
    adjacency = rows_to_sparse(nbrs, torch.ones_like(sims), N)
    if k2 > 1:
        messages = rows_to_sparse(nbrs[:, :k2], sims[:, :k2] ** 2, N)
        for _ in range(ROUNDS):
            symmetric = (adjacency + adjacency.t()).coalesce()
            adjacency = torch.sparse.mm(messages, symmetric).coalesce()
            adjacency = _normalize_rows(adjacency)
    else:
        adjacency = _normalize_rows(adjacency)
    return GNNRerank(adjacency, Q)


def gnn_rerank_dense(query: Tensor, gallery: Tensor, k1: int = 26, k2: int = 7) -> Tensor:
    """Reference GNN re-ranking on dense ``N x N`` matrices, loop by loop; tests only.

    Returns ``[Q, G]`` distances.
    """
    feats, Q, N = joint_features(query, gallery)
    sims, order = (feats @ feats.T).topk(k1, dim=1)
    A = torch.zeros(N, N, dtype=feats.dtype)
    for i in range(N):
        for j in range(k1):
            A[i, order[i, j]] = 1.0
    if k2 > 1:
        for _ in range(ROUNDS):
            A = A + A.T
            propagated = torch.zeros_like(A)
            for i in range(N):
                for j in range(k2):
                    propagated[i] += sims[i, j] ** 2 * A[order[i, j]]
            A = propagated / propagated.norm(dim=1, keepdim=True)
    else:
        A = A / A.norm(dim=1, keepdim=True)
    return 1 - A[:Q] @ A[Q:].T


def _normalize_rows(matrix: Tensor) -> Tensor:
    """L2-normalise the rows of a coalesced sparse matrix. A row of zero norm (an all-zero feature, whose
    similarities and so messages are all 0) stays zero, as ``F.normalize`` leaves it: 0/0 would spread NaN
    through every later round to every distance."""
    rows, values = matrix.indices()[0], matrix.values()
    norms = torch.zeros(matrix.shape[0], dtype=values.dtype, device=values.device)
    norms.index_add_(0, rows, values * values)
    inverse = torch.where(norms > 0, norms.clamp(min=torch.finfo(norms.dtype).tiny).rsqrt(), 0)
    return torch.sparse_coo_tensor(matrix.indices(), values * inverse[rows], matrix.shape,
                                   check_invariants=False).coalesce()


def _row_slice(matrix: Tensor, start: int, stop: int) -> Tensor:
    """Rows ``start:stop`` of a coalesced sparse matrix; its entries are sorted by row, so two searches find them."""
    rows = matrix.indices()[0]
    lo, hi = torch.searchsorted(rows, torch.tensor([start, stop], device=rows.device)).tolist()
    index = matrix.indices()[:, lo:hi] - torch.tensor([[start], [0]], device=rows.device)
    return torch.sparse_coo_tensor(index, matrix.values()[lo:hi], (stop - start, matrix.shape[1]),
                                   check_invariants=False).coalesce()
