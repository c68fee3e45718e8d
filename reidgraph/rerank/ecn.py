r"""Expanded Cross Neighborhood (ECN) re-ranking, rank-list-distance variant.

Sarfraz, Schumann, Eberle and Stiefelhagen, "A Pose-Sensitive Embedding for
Person Re-Identification with Expanded Cross Neighborhood Re-Ranking", CVPR 2018.

All items of :math:`P = \text{query} \cup \text{gallery}` (``N = Q + G``) are
ranked against each other by cosine similarity; every item comes first in its
own list. With :math:`\mathrm{pos}_i(j) \in \{1..N\}` the position of ``j`` in
the list of ``i``, the top-``k`` lists are compared by the position-weighted
overlap of the authors' reference code (``get_rank_dist``):

.. math::
    f_i(x) = \max(0,\; k + 1 - \mathrm{pos}_i(x)), \qquad
    R_{ij} = \sum_x f_i(x)\, f_j(x),

    \tilde d(i, j) = 1 - \frac{R_{ij} - \min_l R_{il}}{\max_l R_{il} - \min_l R_{il}}
                   = \frac{C - R_{ij}}{C - m_i},

because every row peaks at :math:`R_{ii} = C = \sum_{r=1}^{k} r^2` (Cauchy-Schwarz:
all :math:`f_i` have the same norm); :math:`m_i = \min_l R_{il}` is 0 unless the
top-``k`` list of ``i`` meets that of every item. :math:`\tilde d` is not
symmetric (each row is normalised on its own).

The expanded neighborhood :math:`\mathcal N(x)` holds the top-``t`` neighbors of
``x`` (itself left out) followed by the top-``q`` neighbors of each of those
(each left out of its own list), :math:`M = t + tq` entries, repeats kept. The
distance between a query ``p`` and a gallery item ``g`` is

.. math::
    \mathrm{ECN}(p, g) = \frac{1}{2M}\Big(\sum_{i \in \mathcal N(p)} \tilde d(i, g)
                          + \sum_{j \in \mathcal N(g)} \tilde d(j, p)\Big).

Because :math:`\tilde d` is affine in :math:`R = F F^\top` (``F`` the sparse
``[N, N]`` matrix of the :math:`f_i`, ``k`` entries per row), both sums are sparse
products with :math:`F` and never need :math:`R` itself:
:math:`\sum_{i \in \mathcal N(p)} \tilde d(i, g) = C\beta_p - (B F F^\top)_{pg}`
with :math:`B_{xi}` summing :math:`1 / (C - m_i)` over the occurrences of ``i`` in
:math:`\mathcal N(x)` and :math:`\beta = B\mathbf 1`. Memory is :math:`O(N(k + M))`
plus ``[N, chunk]`` blocks.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from reidgraph._checks import int_in_range
from reidgraph.graph import knn
from reidgraph.ranking import Ranking

from ._common import joint_features, rows_to_sparse


class ECN(Ranking):
    """ECN distances between the queries and the gallery, computed chunk by chunk.

    Built by :func:`ecn`; holds only sparse ``O(N (k + M))`` state.
    """

    def __init__(self, num_query: int, ranks: Tensor, expanded: Tensor, inv_span: Tensor, peak: float):
        N, k = ranks.shape
        self.num_query = num_query
        self.ranks = ranks
        self.weights = torch.arange(k, 0, -1, device=ranks.device, dtype=inv_span.dtype)
        self.expanded = expanded
        self.inv_span = inv_span
        self.peak = peak
        self.rank_matrix = rows_to_sparse(ranks, self.weights.expand(N, k), N)
        self.rank_matrix_t = self.rank_matrix.t().coalesce()
        self.gallery_rank = rows_to_sparse(ranks[num_query:], self.weights.expand(N - num_query, k), N)
        gallery_expanded = expanded[num_query:]
        self.gallery_spread = rows_to_sparse(gallery_expanded, inv_span[gallery_expanded], N)
        self.beta = inv_span[expanded].sum(dim=1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.num_query, self.ranks.shape[0] - self.num_query

    def distance_chunks(self, chunk_size: int = 1024) -> Iterator[Tensor]:
        """Yield ``[q, G]`` ECN distances for consecutive chunks of ``q <= chunk_size`` queries."""
        Q, M = self.num_query, self.expanded.shape[1]
        for start, stop in self._query_ranges(chunk_size):
            rows = torch.arange(start, stop, device=self.ranks.device)
            # sum_{i in N(p)} b_i R_ig  =  F_gallery (F^T B_p^T)
            spread_t = _columns(self.expanded[rows], self.inv_span[self.expanded[rows]], self.ranks.shape[0])
            own_side = self.gallery_rank @ (self.rank_matrix_t @ spread_t)
            # sum_{j in N(g)} b_j R_jp  =  B_gallery (F F_p^T)
            ranks_t = _columns(self.ranks[rows], self.weights.expand(len(rows), -1), self.ranks.shape[0])
            cross_side = self.gallery_spread @ (self.rank_matrix @ ranks_t)
            total = self.peak * (self.beta[rows, None] + self.beta[None, Q:]) - own_side.T - cross_side.T
            yield total / (2 * M)


def ecn(query: Tensor, gallery: Tensor, k: int = 25, t: int = 3, q: int = 8) -> ECN:
    """ECN re-ranking distance (see the module docstring for the equations).

    Args:
        query: ``[Q, D]`` features.
        gallery: ``[G, D]`` features.
        k: length of the compared rank lists, the item itself included,
            ``1 <= k <= N``. Default 25 (the paper's).
        t: direct neighbors in the expanded neighborhood, ``1 <= t <= min(k, N - 1)``. Default 3.
        q: neighbors added per direct neighbor, ``1 <= q <= N - 1``. Default 8.

    Returns:
        An :class:`ECN` ranking; smaller distances mean more similar.
    """
    feats, Q, N = joint_features(query, gallery)
    k = int_in_range("k", k, 1, N, f"query and gallery hold {N} items")
    t = int_in_range("t", t, 1, min(k, N - 1), "t direct neighbors must fit in the rank list of length k")
    q = int_in_range("q", q, 1, N - 1, f"query and gallery hold {N} items")
    _, nbrs = knn(feats, feats, max(k - 1, t, q), backend="torch", exclude="self")
    self_first = torch.arange(N, device=feats.device)[:, None]
    ranks = torch.cat([self_first, nbrs[:, :k - 1]], dim=1)
    expanded = torch.cat([nbrs[:, :t], nbrs[nbrs[:, :t], :q].flatten(1)], dim=1)
    peak = k * (k + 1) * (2 * k + 1) / 6
    inv_span = 1.0 / (peak - _row_minima(ranks, N, feats.dtype))
    return ECN(Q, ranks, expanded, inv_span, peak)


def ecn_dense(query: Tensor, gallery: Tensor, k: int = 25, t: int = 3, q: int = 8) -> Tensor:
    """Reference ECN, the formulas of the module docstring loop by loop on full ``N x N`` matrices.

    For tests on small inputs only. Returns ``[Q, G]`` distances.
    """
    feats, Q, N = joint_features(query, gallery)
    sim = feats @ feats.T
    sim.fill_diagonal_(float("inf"))
    order = sim.argsort(dim=1, descending=True, stable=True)
    pos = torch.empty_like(order)
    for i in range(N):
        for r in range(N):
            pos[i, order[i, r]] = r + 1
    f = (k + 1 - pos).clamp(min=0).to(feats.dtype)
    R = f @ f.T
    low, high = R.min(dim=1, keepdim=True).values, R.max(dim=1, keepdim=True).values
    d = 1 - (R - low) / (high - low)

    def neighborhood(x: int) -> list[int]:
        direct = order[x, 1:t + 1].tolist()
        return direct + [int(j) for i in direct for j in order[i, 1:q + 1]]

    M = t + t * q
    out = torch.empty(Q, N - Q, dtype=feats.dtype)
    for p in range(Q):
        for g in range(Q, N):
            total = sum(d[i, g] for i in neighborhood(p)) + sum(d[j, p] for j in neighborhood(g))
            out[p, g - Q] = total / (2 * M)
    return out


def _columns(cols: Tensor, values: Tensor, height: int) -> Tensor:
    """Dense ``[height, rows]``: the transpose of :func:`~reidgraph.rerank._common.rows_to_sparse`, as one
    chunk-sized block."""
    # Built contiguous: sparse @ dense is several times faster that way than on a transposed view.
    out = torch.zeros(height, cols.shape[0], dtype=values.dtype, device=cols.device)
    return out.scatter_add_(0, cols.T, values.expand_as(cols).T)


def _row_minima(ranks: Tensor, N: int, dtype: torch.dtype, chunk_size: int = 1024) -> Tensor:
    r"""``m_i = min_l R_il``, the normaliser of :math:`\tilde d`, without forming ``R``.

    ``R_il > 0`` only where the lists of ``i`` and ``l`` share an item, so row ``i``
    has at most :math:`\sum_{x} \mathrm{indeg}(x)` (over its list) positive entries;
    below ``N`` its minimum is 0. Only the rare remaining rows are computed,
    as columns of the symmetric ``R`` (``F F_i^T``).
    """
    k = ranks.shape[1]
    weights = torch.arange(k, 0, -1, device=ranks.device, dtype=dtype)
    indegree = torch.bincount(ranks.flatten(), minlength=N)
    minima = torch.zeros(N, dtype=dtype, device=ranks.device)
    full = (indegree[ranks].sum(dim=1) >= N).nonzero().flatten()
    if len(full):
        rank_matrix = rows_to_sparse(ranks, weights.expand(N, k), N)
        for start in range(0, len(full), chunk_size):
            rows = full[start:start + chunk_size]
            block = rank_matrix @ _columns(ranks[rows], weights.expand(len(rows), k), N)
            minima[rows] = block.amin(dim=0)
    return minima
