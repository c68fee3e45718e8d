"""``Ranking``: what every re-ranking method returns, one query chunk at a time.

A method ends in a final distance ``d(q, g)`` between each of ``Q`` queries and
``G`` gallery items (smaller is closer). A :class:`Ranking` yields it in
``[q, G]`` blocks of consecutive queries, so no method ever holds ``Q x G`` at
once, and derives from it what users need:

* ``top(k)``: each query's ``k`` closest gallery items, ``index [Q, k]`` and
  ``distance [Q, k]`` ascending, the first ``k`` of its full order;
* ``order_chunks()``: each query's full gallery order, ``[q, G]`` blocks, by
  stable ascending sort of ``d`` (ties keep gallery order);
* ``evaluate(...)``: CMC, mAP and mINP of that order, counted from ``d``
  without sorting it (:func:`~reidgraph.evaluation.evaluate_distances`);
* ``dense()``: all of ``d`` at once, for small inputs and tests.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ._checks import as_features, int_in_range, same_dim
from .evaluation import RankMetrics, evaluate_distances, evaluate_order


class Ranking:
    """Base of every method's result: subclasses give ``distance_chunks``, and ``shape`` unless they hold
    ``query`` and ``gallery`` features."""

    @property
    def shape(self) -> tuple[int, int]:
        """``(Q, G)``: queries and gallery items (by default, the rows of ``query`` and ``gallery``)."""
        return self.query.shape[0], self.gallery.shape[0]

    def distance_chunks(self, chunk_size: int = 1024) -> Iterator[Tensor]:
        """Yield the final distance ``[q, G]`` of consecutive chunks of ``q <= chunk_size`` queries."""
        raise NotImplementedError

    def order_chunks(self, chunk_size: int = 1024) -> Iterator[Tensor]:
        """Yield ``[q, G]`` int64 gallery orders, closest first (stable: ties keep gallery order)."""
        for dist in self.distance_chunks(chunk_size):
            yield dist.argsort(dim=1, stable=True)

    def top(self, k: int, chunk_size: int = 1024, progress: bool = False) -> tuple[Tensor, Tensor]:
        """Each query's ``k`` closest gallery items: the first ``k`` entries of :meth:`order_chunks`.

        Returns:
            ``(index [Q, k] int64, distance [Q, k] float32)`` on the CPU, distances ascending.
        """
        Q, G = self.shape
        k = int_in_range("top", k, 1, G, f"the gallery holds {G} items")
        index, distance = [], []
        chunks = tqdm(self.distance_chunks(chunk_size), total=-(-Q // chunk_size), desc="ranking", unit="chunk",
                      disable=not progress, leave=False)
        for dist in chunks:
            i, d = smallest(dist, k)
            index.append(i.cpu())
            distance.append(d.float().cpu())
        return torch.cat(index), torch.cat(distance)

    def evaluate(self, q_pids, g_pids, q_camids, g_camids) -> RankMetrics:
        """CMC, mAP and mINP of :meth:`order_chunks` (the Market-1501 protocol), counted without a sort."""
        return evaluate_distances(self.distance_chunks(), q_pids, g_pids, q_camids, g_camids)

    def dense(self, chunk_size: int = 1024) -> Tensor:
        """All ``[Q, G]`` distances at once; for small inputs only."""
        return torch.cat(list(self.distance_chunks(chunk_size)))

    def _query_ranges(self, chunk_size: int) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` of consecutive chunks of at most ``chunk_size`` queries, the loop of every
        :meth:`distance_chunks`; ``chunk_size`` is checked when the iteration starts."""
        int_in_range("chunk_size", chunk_size, 1, 2**31)
        Q = self.shape[0]
        for start in range(0, Q, chunk_size):
            yield start, min(start + chunk_size, Q)


def smallest(dist: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``(index, value)`` ``[n, k]``: the first ``k`` of each row's stable ascending order.

    ``topk`` picks the set (in ``O(G)`` per row, not a full sort); ties inside it
    are put in column order, and rows where a tie crosses the ``k``-th place
    (``topk`` may have picked either) are sorted in full.
    """
    _, index = dist.topk(k, dim=1, largest=False)
    index = index.sort(dim=1).values
    value, pos = dist.gather(1, index).sort(dim=1, stable=True)
    index = index.gather(1, pos)
    edge = value[:, -1:]
    spill = ((dist == edge).sum(1) > (value == edge).sum(1)).nonzero().flatten()
    if spill.numel():
        full = dist[spill].sort(dim=1, stable=True)
        index[spill], value[spill] = full.indices[:, :k], full.values[:, :k]
    return index, value


class CosineRanking(Ranking):
    """Features ranked as they are: ``d(q, g) = 1 - cos(q, g)``.

    Args:
        query: ``[Q, D]``; gallery: ``[G, D]`` (L2-normalised here).
    """

    def __init__(self, query: Tensor, gallery: Tensor):
        self.query = F.normalize(as_features(query, "query"), dim=1)
        self.gallery = F.normalize(as_features(gallery, "gallery"), dim=1).to(self.query)
        same_dim(self.query, self.gallery)

    def distance_chunks(self, chunk_size: int = 1024) -> Iterator[Tensor]:
        for start, stop in self._query_ranges(chunk_size):
            yield 1 - self.query[start:stop] @ self.gallery.T

    def order_chunks(self, chunk_size: int = 1024) -> Iterator[Tensor]:
        return ranked_orders(self.query, self.gallery, chunk_size=chunk_size)

    def evaluate(self, q_pids, g_pids, q_camids, g_camids) -> RankMetrics:
        """As :meth:`Ranking.evaluate`, on :meth:`order_chunks`, which ranks by similarity: ``1 - cos``
        rounds nearly equal similarities to equal distances."""
        return evaluate_order(self.order_chunks(), q_pids, g_pids, q_camids, g_camids)


class HeadRanking(CosineRanking):
    """A re-ranked head per query, then the rest of the gallery by cosine similarity.

    What FFGNN fusion returns: each query's ``K`` graph neighbors re-ordered by
    their fused distance, the other ``G - K`` items after them in FEN order. As
    one distance: the head's own (in ``[0, 2]``), ``2 + (1 - cos)`` for the rest.

    Attributes:
        index: ``[Q, K]`` gallery indices of each head, best first.
        distance: ``[Q, K]`` their distances, ascending.
    """

    def __init__(self, query: Tensor, gallery: Tensor, index: Tensor, distance: Tensor):
        super().__init__(query, gallery)
        self.index, self.distance = index, distance

    def distance_chunks(self, chunk_size: int = 1024) -> Iterator[Tensor]:
        for (start, stop), rest in zip(self._query_ranges(chunk_size), super().distance_chunks(chunk_size)):
            rows = slice(start, stop)
            yield rest.add_(2).scatter_(1, self.index[rows].to(rest.device), self.distance[rows].to(rest))

    def order_chunks(self, chunk_size: int = 1024) -> Iterator[Tensor]:
        return ranked_orders(self.query, self.gallery, head=self.index, chunk_size=chunk_size)

    def top(self, k: int, chunk_size: int = 1024, progress: bool = False) -> tuple[Tensor, Tensor]:
        G = self.shape[1]
        k = int_in_range("top", k, 1, G, f"the gallery holds {G} items")
        if k <= self.index.shape[1]:
            return self.index[:, :k].cpu(), self.distance[:, :k].float().cpu()
        index, distance = [], []
        for order, dist in zip(self.order_chunks(chunk_size), self.distance_chunks(chunk_size)):
            index.append(order[:, :k].cpu())
            distance.append(dist.gather(1, order[:, :k]).float().cpu())
        return torch.cat(index), torch.cat(distance)


def ranked_orders(query: Tensor, gallery: Tensor, head: Tensor | None = None,
                  chunk_size: int = 256) -> Iterator[Tensor]:
    """Each query's whole gallery ranked by cosine similarity, optionally led by a given head.

    Args:
        query: ``[Q, D]``; gallery: ``[G, D]``.
        head: optional ``[Q, K]`` gallery indices placed first, in their order;
            the remaining items follow by decreasing cosine similarity.
        chunk_size: queries per yielded chunk (memory ``chunk_size × G``).

    Yields:
        ``[q, G]`` int64 gallery orders for consecutive chunks of queries.
    """
    query = F.normalize(as_features(query, "query"), dim=1)
    gallery = F.normalize(as_features(gallery, "gallery"), dim=1).to(query)
    same_dim(query, gallery)
    for start in range(0, query.shape[0], chunk_size):
        key = query[start:start + chunk_size] @ gallery.T
        if head is not None:
            h = head[start:start + chunk_size].to(key.device)
            # Cosine similarity is at most 1, so keys above 1 rank the head first, in its order.
            rank_key = torch.arange(h.shape[1], 0, -1, device=key.device, dtype=key.dtype) + 1
            key.scatter_(1, h, rank_key.expand_as(h).contiguous())
        yield key.sort(dim=1, descending=True, stable=True).indices
