"""CMC, mAP and mINP under the Market-1501 single-query protocol.

For each query, gallery items that share its pid *and* its camera are junk (the
same person seen by the same camera is trivially easy), and so are gallery items
with pid ``-1``; junk is dropped from the ranking before any position is counted.
Distractors with pid ``0`` stay in as ordinary negatives. Queries left without a
true match are skipped. This matches ``eval_market1501`` in torchreid and
fast-reid.

Rankings are consumed chunk by chunk of queries, so a whole ``Q x G`` matrix of
intermediate values never exists at once.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._checks import as_labels

__all__ = ["RankMetrics", "evaluate_distances", "evaluate_order", "evaluate_rank"]

DEFAULT_CHUNK_SIZE = 1024
# Query rows counted at once by evaluate_distances (its [rows, G] int64 buckets: 64 MiB at G = 32,768).
_COUNT_ROWS = 256


@dataclass
class RankMetrics:
    """Retrieval metrics over the valid queries (those with a true match left).

    Attributes:
        cmc: ``[min(max_rank, G)]`` float64; ``cmc[r]`` is the fraction of valid
            queries whose first true match is at position ``<= r`` (0-based).
        mAP: mean average precision, in ``[0, 1]``.
        mINP: mean inverse negative penalty, in ``[0, 1]``.
        num_valid_queries: number of queries that were counted.
        num_gallery: gallery size ``G``, when known; a CMC as long as the gallery covers every rank.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_gallery: int | None = None

    def rank(self, r: int) -> float:
        """Rank-``r`` accuracy (1-based): the fraction of valid queries with a true match in their top ``r``.

        Past a gallery of fewer than ``r`` items, every match is already counted: the CMC's last value. Past
        a CMC cut at ``max_rank < r``, the value is unknown and a ``ValueError`` says so.
        """
        _positive_int("r", r)
        if r > len(self.cmc) and len(self.cmc) != self.num_gallery:
            raise ValueError(f"rank-{r} is past the CMC's {len(self.cmc)} ranks; evaluate with max_rank >= {r}")
        return float(self.cmc[min(r, len(self.cmc)) - 1])


def evaluate_rank(distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any,
                  max_rank: int = 50, return_minp: bool = False,
                  chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple:
    """Rank the gallery by distance for every query and score the rankings.

    The ranking is the stable order of each row (ties go to the lower gallery
    index), scored without sorting by :func:`evaluate_distances`, a chunk of
    ``chunk_size`` query rows at a time, so memory is bounded by ``chunk_size x G``.

    Args:
        distmat: ``[Q, G]`` distances, torch or numpy, any real dtype, on any
            device; smaller means more similar.
        q_pids, q_camids: ``[Q]`` integer person and camera ids of the queries.
        g_pids, g_camids: ``[G]`` integer person and camera ids of the gallery.
        max_rank: length of the CMC curve, capped at ``G``. Default 50.
        return_minp: also return mINP. Default False.
        chunk_size: query rows scored at once. Default 1024.

    Returns:
        ``(cmc, mAP)`` or ``(cmc, mAP, mINP)``: ``cmc`` is a float64 numpy array
        ``[min(max_rank, G)]`` of fractions, ``mAP`` and ``mINP`` floats in ``[0, 1]``.
    """
    if not isinstance(distmat, Tensor):
        distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ValueError(f"distmat: expected 2 dimensions [Q, G], got shape {tuple(distmat.shape)}; "
                         "pass one row of gallery distances per query")
    if not _is_real(distmat):
        raise ValueError(f"distmat must hold real distances, got dtype {distmat.dtype}; pass a float array")
    num_q, num_g = distmat.shape
    _check_not_empty(num_q, num_g, "distmat")
    # Checked against distmat here so the message names the matrix the caller passed.
    q_pids = as_labels(q_pids, num_q, "q_pids", "distmat (query rows)")
    q_camids = as_labels(q_camids, num_q, "q_camids", "distmat (query rows)")
    g_pids = as_labels(g_pids, num_g, "g_pids", "distmat (gallery columns)")
    g_camids = as_labels(g_camids, num_g, "g_camids", "distmat (gallery columns)")
    _positive_int("chunk_size", chunk_size)

    metrics = evaluate_distances(_row_chunks(distmat, chunk_size), q_pids, g_pids, q_camids, g_camids, max_rank)
    if return_minp:
        return metrics.cmc, metrics.mAP, metrics.mINP
    return metrics.cmc, metrics.mAP


def evaluate_order(order: Tensor | np.ndarray | Iterable[Tensor | np.ndarray], q_pids: Any, g_pids: Any,
                   q_camids: Any, g_camids: Any, max_rank: int = 50) -> RankMetrics:
    r"""Score ranked gallery lists with CMC, mAP and mINP.

    After junk removal, let query :math:`q` have true matches at 1-based
    positions :math:`p_1 < \dots < p_m` (:math:`m \ge 1`, else it is skipped):

    .. math::
        \mathrm{AP}_q = \frac{1}{m}\sum_{k=1}^{m} \frac{k}{p_k}, \qquad
        \mathrm{INP}_q = \frac{m}{p_m}, \qquad
        \mathrm{CMC}[r] = \frac{|\{q : p_1 \le r + 1\}|}{|\{q\}|}

    and mAP, mINP are the means over the valid queries.

    Args:
        order: ``[Q, G]`` integer gallery indices, each row a permutation of
            ``range(G)``, best first (torch or numpy); or an iterable of such
            chunks ``[q_i, G]`` that cover the queries in order, so rankings for
            huge galleries can be streamed. A row that is not a permutation
            (repeated or missing indices) raises a ``ValueError`` naming it.
        q_pids, q_camids: ``[Q]`` integer person and camera ids of the queries.
        g_pids, g_camids: ``[G]`` integer person and camera ids of the gallery.
        max_rank: length of the CMC curve, capped at ``G``. Default 50.

    Returns:
        :class:`RankMetrics`.
    """
    return _evaluate(order, (q_pids, g_pids, q_camids, g_camids), max_rank, lambda m: _as_order(m, "order"),
                     _scored_orders, "order", "order covers")


def evaluate_distances(distances: Tensor | Iterable[Tensor], q_pids: Any, g_pids: Any, q_camids: Any,
                       g_camids: Any, max_rank: int = 50) -> RankMetrics:
    r"""Score distances without sorting them: the metrics of :func:`evaluate_order` on their stable argsort.

    A query's metrics need only the positions of its true matches. With junk
    removed and the true matches :math:`t_1 < \dots < t_m` in (distance, index)
    order (the stable order: ties go to the lower gallery index),

    .. math::
        p_k = k + \bigl|\{i \text{ kept, not a match} : (d_i, i) < (d_{t_k}, t_k)\}\bigr|

    which a ``searchsorted`` of every item into the query's ``m`` sorted match
    distances counts in ``O(G \log m)``, against ``O(G \log G)`` for a sort.

    Args:
        distances: ``[Q, G]`` float distances, or an iterable of ``[q_i, G]``
            chunks covering the queries in order (as ``Ranking.distance_chunks()`` yields).
        q_pids, q_camids, g_pids, g_camids, max_rank: as in :func:`evaluate_order`.

    Returns:
        :class:`RankMetrics`, equal to ``evaluate_order`` of the stable argsort.
    """
    return _evaluate(distances, (q_pids, g_pids, q_camids, g_camids), max_rank, _as_distance_matrix,
                     _scored_distances, "distances", "distances cover")


def _as_distance_matrix(distances: Tensor | np.ndarray) -> Tensor:
    distances = torch.as_tensor(distances)
    if distances.dim() != 2:
        raise ValueError(f"distances: expected 2 dimensions [Q, G], got shape {tuple(distances.shape)}; "
                         "pass one row of gallery distances per query")
    return distances


def _evaluate(data, labels: tuple, max_rank: int, as_matrix: Callable[[Any], Tensor], scored: Callable,
              what: str, covers: str) -> RankMetrics:
    """The metrics of ``data``, one ``[Q, G]`` matrix (checked by ``as_matrix``) or a stream of row chunks,
    each chunk checked and scored by ``scored`` against the checked ``labels`` (q_pids, g_pids, q_camids,
    g_camids)."""
    _positive_int("max_rank", max_rank)
    if isinstance(data, (Tensor, np.ndarray)):
        data = as_matrix(data)
        num_q, num_g = data.shape
        # Split even a single matrix, so per-chunk intermediates stay bounded.
        chunks = data.split(DEFAULT_CHUNK_SIZE)
    else:
        # A stream does not know its length up front; the labels define Q and G.
        num_q, num_g = _numel(labels[0]), _numel(labels[1])
        chunks = data
    _check_not_empty(num_q, num_g, what)
    labels = _checked_labels(*labels, num_q, num_g)
    return _summary(scored(chunks, *labels, num_q, num_g), num_q, num_g, max_rank, covers)


def _scored_orders(chunks, q_pids: Tensor, g_pids: Tensor, q_camids: Tensor, g_camids: Tensor, num_q: int,
                   num_g: int) -> Iterator[tuple[int, Tensor, Tensor, Tensor]]:
    """``(rows covered so far, first, AP, INP)`` of each checked chunk of orders (see :func:`_score_chunk`)."""
    start = 0
    for chunk in chunks:
        chunk = _as_order(chunk, "order chunk")
        if chunk.shape[1] != num_g:
            raise ValueError(f"order rows have length {chunk.shape[1]} but g_pids has {num_g} gallery items; "
                             "each row must rank every gallery item")
        stop = _rows_covered(start, chunk, num_q, "order covers")
        if chunk.numel() and (int(chunk.min()) < 0 or int(chunk.max()) >= num_g):
            raise ValueError(f"order holds gallery indices outside [0, {num_g - 1}]; "
                             f"each row must be a permutation of range({num_g})")
        # In range and G entries per row: a row is a permutation iff it hits every index (O(qG), no sort).
        seen = torch.zeros(chunk.shape, dtype=torch.bool, device=chunk.device).scatter_(1, chunk, True)
        hit_all = seen.all(1)
        if not bool(hit_all.all()):
            row = start + int((~hit_all).nonzero()[0])
            raise ValueError(f"order row {row} (query {row}) is not a permutation of range({num_g}): it repeats "
                             "some gallery indices and misses others; pass argsort output, one full ranking per query")
        if g_pids.device != chunk.device:
            g_pids, g_camids = g_pids.to(chunk.device), g_camids.to(chunk.device)
        yield stop, *_score_chunk(chunk, q_pids[start:stop].to(chunk.device), q_camids[start:stop].to(chunk.device),
                                  g_pids, g_camids)
        start = stop


def _scored_distances(chunks, q_pids: Tensor, g_pids: Tensor, q_camids: Tensor, g_camids: Tensor, num_q: int,
                      num_g: int) -> Iterator[tuple[int, Tensor, Tensor, Tensor]]:
    """``(rows covered so far, first, AP, INP)`` of each checked chunk of distances (see :func:`_count_chunk`)."""
    start = 0
    for chunk in chunks:
        chunk = torch.as_tensor(chunk)
        if chunk.dim() != 2 or chunk.shape[1] != num_g:
            raise ValueError(f"distance chunks must be [q, {num_g}] (one column per gallery item), got shape "
                             f"{tuple(chunk.shape)}")
        if not chunk.is_floating_point():
            raise ValueError(f"distances must be floats, got {chunk.dtype}; pass a float array")
        stop = _rows_covered(start, chunk, num_q, "distances cover")
        _refuse_nan(chunk, start, "distances contain")
        if g_pids.device != chunk.device:
            g_pids, g_camids = g_pids.to(chunk.device), g_camids.to(chunk.device)
        for lo in range(0, chunk.shape[0], _COUNT_ROWS):
            rows = slice(start + lo, min(start + lo + _COUNT_ROWS, stop))
            yield rows.stop, *_count_chunk(chunk[lo:lo + _COUNT_ROWS], q_pids[rows].to(chunk.device),
                                           q_camids[rows].to(chunk.device), g_pids, g_camids)
        start = stop


def _rows_covered(start: int, chunk: Tensor, num_q: int, covers: str) -> int:
    """The query after the last one ``chunk`` (rows from query ``start`` on) covers; a ``ValueError`` past ``num_q``."""
    stop = start + chunk.shape[0]
    if stop > num_q:
        raise ValueError(f"{covers} more than {num_q} queries but q_pids has {num_q}; pass one row per query")
    return stop


def _checked_labels(q_pids, g_pids, q_camids, g_camids, num_q: int, num_g: int) -> tuple[Tensor, ...]:
    """``(q_pids, g_pids, q_camids, g_camids)`` as integer tensors of ``num_q`` / ``num_g`` entries."""
    return (as_labels(q_pids, num_q, "q_pids", "the query set"), as_labels(g_pids, num_g, "g_pids", "the gallery"),
            as_labels(q_camids, num_q, "q_camids", "the query set"),
            as_labels(g_camids, num_g, "g_camids", "the gallery"))


def _summary(scored: Iterator[tuple[int, Tensor, Tensor, Tensor]], num_q: int, num_g: int, max_rank: int,
             what: str) -> RankMetrics:
    """CMC, mAP and mINP over the valid queries of every scored chunk."""
    num_cmc = min(max_rank, num_g)
    first_hits = torch.zeros(num_cmc, dtype=torch.long)
    ap_sum = inp_sum = 0.0
    num_valid = covered = 0
    for covered, first, ap, inp in scored:
        first_hits += torch.bincount(first[first <= num_cmc] - 1, minlength=num_cmc).cpu()
        ap_sum += float(ap.sum())
        inp_sum += float(inp.sum())
        num_valid += first.numel()
    if covered != num_q:
        raise ValueError(f"{what} {covered} queries but q_pids has {num_q}; pass one ranking row per query")
    if num_valid == 0:
        raise ValueError("no query has a true match in the gallery once same-camera matches and pid -1 are "
                         "removed; check q_pids/g_pids and q_camids/g_camids")

    cmc = (first_hits.cumsum(0).double() / num_valid).numpy()
    return RankMetrics(cmc=cmc, mAP=ap_sum / num_valid, mINP=inp_sum / num_valid, num_valid_queries=num_valid,
                       num_gallery=num_g)


def _score_chunk(order: Tensor, q_pids: Tensor, q_camids: Tensor, g_pids: Tensor,
                 g_camids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Score one chunk of rankings.

    Args:
        order: ``[q, G]`` gallery indices, best first.
        q_pids, q_camids: ``[q]``; g_pids, g_camids: ``[G]``.

    Returns:
        For the ``v`` valid queries of the chunk: 1-based position of the first
        true match ``[v]`` (long), AP ``[v]`` and INP ``[v]`` (float64).
    """
    pids = g_pids[order]
    same_pid = pids == q_pids[:, None]
    junk = (same_pid & (g_camids[order] == q_camids[:, None])) | (pids == -1)
    keep = ~junk
    match = same_pid & keep
    # Counting only kept items gives each item its position in the junk-free ranking.
    position = keep.cumsum(1, dtype=torch.int32)
    found = match.cumsum(1, dtype=torch.int32)
    # Only the true matches are gathered, a few per query, instead of a dense [q, G] float matrix.
    rows, cols = match.nonzero(as_tuple=True)
    pos = position[rows, cols].long()
    precision = found[rows, cols].double() / pos

    num_q, num_g = order.shape
    first = torch.full((num_q,), num_g + 1, dtype=torch.long, device=order.device)
    first = first.scatter_reduce(0, rows, pos, "amin")
    last = torch.zeros(num_q, dtype=torch.long, device=order.device).scatter_reduce(0, rows, pos, "amax")
    ap_sum = torch.zeros(num_q, dtype=torch.float64, device=order.device).index_add_(0, rows, precision)
    num_match = match.sum(1)

    valid = num_match > 0
    return first[valid], ap_sum[valid] / num_match[valid], num_match[valid] / last[valid].double()


def _count_chunk(dist: Tensor, q_pids: Tensor, q_camids: Tensor, g_pids: Tensor,
                 g_camids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_score_chunk` from distances ``[q, G]``, counting instead of sorting (see :func:`evaluate_distances`)."""
    num_q, num_g = dist.shape
    same_pid = g_pids[None] == q_pids[:, None]
    junk = (same_pid & (g_camids[None] == q_camids[:, None])) | (g_pids[None] == -1)
    match = same_pid & ~junk
    num_match = match.sum(1)
    valid = num_match > 0
    width = max(int(num_match.max()) if num_q else 0, 1)
    # Each row's match distances, padded with +inf, in (distance, index) order: nonzero lists columns in
    # ascending order and the stable sort keeps it among equal distances.
    rows, cols = match.nonzero(as_tuple=True)
    slot = torch.arange(rows.numel(), device=dist.device) - (torch.cumsum(num_match, 0) - num_match)[rows]
    values = torch.full((num_q, width), float("inf"), dtype=dist.dtype, device=dist.device)
    index = torch.full((num_q, width), num_g, dtype=torch.long, device=dist.device)
    values[rows, slot], index[rows, slot] = dist[rows, cols], cols
    values, order = values.sort(dim=1, stable=True)
    index = index.gather(1, order)
    # Only kept non-matches no farther than their row's last match can come before a match.
    last_match = values.gather(1, (num_match - 1).clamp_min(0)[:, None])
    counted = (dist <= last_match) & ~junk & ~match
    counts = _bucket_counts(dist, values, index, counted)
    k = torch.arange(1, width + 1, device=dist.device)
    position = k + counts[:, :width].cumsum(1)                # p_k, 1-based, junk-free
    real = k <= num_match[:, None]
    precision = torch.where(real, k / position.double(), 0.0)
    last = position.gather(1, (num_match - 1).clamp_min(0)[:, None]).squeeze(1)
    return (position[valid, 0], precision.sum(1)[valid] / num_match[valid],
            num_match[valid] / last[valid].double())


def _bucket_counts(dist: Tensor, values: Tensor, index: Tensor, counted: Tensor) -> Tensor:
    """``[q, w + 1]``: how many ``counted`` items have ``b`` matches before them (distance first, then index).

    Args:
        dist: ``[q, G]`` distances; counted: ``[q, G]`` the items to bucket.
        values, index: ``[q, w]`` each row's match distances (``+inf`` padded) and gallery indices, in order.
    """
    num_q, width = values.shape
    counts = torch.zeros(num_q, width + 1, dtype=torch.long, device=dist.device)
    if 4 * int(counted.sum()) > counted.numel():  # most items count (a poor ranking): bucket all at once
        before = torch.searchsorted(values, dist.contiguous())
        tie = counted & (values.gather(1, before.clamp_max(width - 1)) == dist)
        if bool(tie.any()):
            r, c = tie.nonzero(as_tuple=True)
            before[r, c] += ((values[r] == dist[r, c, None]) & (index[r] < c[:, None])).sum(1)
        before[~counted] = width
        return counts.scatter_add_(1, before, torch.ones_like(before))
    r, c = counted.nonzero(as_tuple=True)  # few count (a good ranking): bucket those alone
    d, row_values = dist[r, c, None], values[r]
    before = torch.searchsorted(row_values, d).squeeze(1) + ((row_values == d) & (index[r] < c[:, None])).sum(1)
    return counts.index_put_((r, before), torch.ones_like(before), accumulate=True)


def _row_chunks(distmat: Tensor | np.ndarray, chunk_size: int) -> Iterator[Tensor]:
    """Yield ``[chunk_size, G]`` floating row blocks of ``distmat`` as torch tensors."""
    for start in range(0, distmat.shape[0], chunk_size):
        block = distmat[start:start + chunk_size]
        if isinstance(block, np.ndarray):
            # torch cannot wrap negative-stride views; only this block is copied.
            block = torch.from_numpy(np.ascontiguousarray(block))
        block = block if block.is_floating_point() else block.double()
        _refuse_nan(block, start, "distmat contains")
        yield block


def _refuse_nan(block: Tensor, start: int, what: str) -> None:
    if bool(block.isnan().any()):
        row = start + int(block.isnan().any(1).nonzero()[0])
        raise ValueError(f"{what} NaN (first in query row {row}); repair the features or distances before ranking")


def _as_order(order: Tensor | np.ndarray, name: str) -> Tensor:
    if not isinstance(order, Tensor):
        order = torch.as_tensor(np.asarray(order))
    if order.dim() != 2:
        raise ValueError(f"{name}: expected 2 dimensions [queries, G], got shape {tuple(order.shape)}; "
                         "pass one row of gallery indices per query")
    if order.is_floating_point() or order.is_complex() or order.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer gallery indices, got {order.dtype}; "
                         "pass the output of argsort")
    return order.long()


def _is_real(x: Tensor | np.ndarray) -> bool:
    if isinstance(x, Tensor):
        return not (x.is_complex() or x.dtype == torch.bool)
    return x.dtype.kind in "fiu"


def _numel(labels: Any) -> int:
    return labels.numel() if isinstance(labels, Tensor) else int(np.size(labels))


def _check_not_empty(num_q: int, num_g: int, name: str) -> None:
    if num_q == 0:
        raise ValueError(f"{name}: the query set is empty; pass at least one query")
    if num_g == 0:
        raise ValueError(f"{name}: the gallery is empty; pass at least one gallery item")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer; pass {name} >= 1")
