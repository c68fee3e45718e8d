"""Per-query re-ranking with the gallery sharded over the processes of a ``torchrun`` job.

Each of the ``W`` processes holds one contiguous shard of the gallery, rows
``[offset, offset + G_r)`` in rank order (:func:`shard_range`), and re-ranks
one contiguous block of the queries. For ``cosine``, ``ffgnn``, ``fusion`` and
``fusion-paper``:

1. search (:func:`sharded_knn`): every process searches every process's queries
   in its own shard and all-gathers the shards' top-k lists; a query's exact
   top-k over the whole gallery is the best k of their union (:func:`merge_topk`);
2. fetch (:func:`fetch_rows`): a process builds and fuses the graphs of its own
   queries, whose neighbors may lie on any shard; one ``reduce`` per process
   brings it the rows it asked for;
3. gather: process 0 collects every query's list, in query order.

Only ``all_gather``, ``reduce`` and ``gather`` are used: gloo offers them on CPU
(it has no ``all_to_all`` or ``reduce_scatter`` there), and nccl on CUDA. Each
step computes what the one-process :func:`~reidgraph.rerank.rerank` computes,
row for row, so the lists equal its ``top(k)``: the same gallery indices,
distances up to float rounding.

k-reciprocal (:func:`sharded_k_reciprocal`) splits its all-vs-all pass by rows
instead, every process holding all the features; the other all-vs-all methods
(ECN, CA-Jaccard, GNN re-ranking, AQE) are not sharded.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torch.distributed import ProcessGroup
from tqdm.auto import tqdm

from .._checks import as_features, int_in_range, same_dim
from ..graph import GraphSettings, knn
from ..graph.cameras import graph_camids
from ..graph.search import worth_screening
from ..nn.fusion import BATCH, fused_graphs
from ..ranking import smallest
from ._common import joint_features
from .kreciprocal import k_reciprocal, neighbor_pass
from .plan import Plan
from .registry import PEERS, route

# Index of the entries that pad a shorter list to the common width: above every real index,
# so that merge_topk puts it after them on equal scores.
_PAD = 2**62
# Queries per process per round of the per-query methods.
CHUNK = 512
# Search function of _sharded_top: (queries [n, D], shard [G_r, D], k) -> (scores [n, k], shard rows [n, k]).
Search = Callable[[Tensor, Tensor, int], tuple[Tensor, Tensor]]


def shard_range(n: int, world_size: int, rank: int) -> tuple[int, int]:
    """``(start, stop)`` of part ``rank`` of ``n`` rows cut into ``world_size`` contiguous parts, the first
    ``n % world_size`` of them one row longer."""
    size, longer = divmod(n, world_size)
    start = rank * size + min(rank, longer)
    return start, start + size + int(rank < longer)


def merge_topk(values: Sequence[Tensor], index: Sequence[Tensor], k: int,
               largest: bool = True) -> tuple[Tensor, Tensor]:
    """Each row's best ``k`` entries of several lists, ties to the lower index.

    With each shard's own best ``min(k, G_r)`` (ties to the lower index too), the
    merge is the top-``k`` of the whole gallery: the order of a stable sort of its row.

    Args:
        values: per list, ``[Q, k_s]`` scores (``k_s`` may differ between lists).
        index: per list, ``[Q, k_s]`` the entries' gallery indices.
        k: entries kept per row, ``1 <= k <= sum(k_s)``.
        largest: best is largest (similarities) or smallest (distances).

    Returns:
        ``(values [Q, k], index [Q, k])``, best first.
    """
    values, index = torch.cat(list(values), dim=1), torch.cat(list(index), dim=1)
    int_in_range("k", k, 1, values.shape[1], f"the lists hold {values.shape[1]} entries per row")
    by_index = index.argsort(dim=1, stable=True)
    values, index = values.gather(1, by_index), index.gather(1, by_index)
    best = values.argsort(dim=1, descending=largest, stable=True)[:, :k]
    return values.gather(1, best), index.gather(1, best)


def sharded_knn(query_local: Tensor, gallery_shard: Tensor, offset: int, k: int, group: ProcessGroup | None = None,
                chunk_size: int = 1024, screen: bool | None = None) -> tuple[Tensor, Tensor]:
    """:func:`~reidgraph.graph.knn` of this process's queries over a gallery sharded across ``group``.

    Collective: every process calls it with its own queries (any number, none
    included) and its shard, rows ``[offset, offset + G_r)`` of the gallery. In
    rounds of ``chunk_size`` queries per process, each searches all processes'
    queries in its shard; the lists are all-gathered and merged (:func:`merge_topk`).

    Args:
        query_local: ``[q, D]`` this process's queries.
        gallery_shard: ``[G_r, D]`` this process's gallery rows.
        offset: the gallery index of the shard's first row.
        k: neighbors per query, at most the whole gallery's size.
        chunk_size: queries per process per round (memory ``W chunk_size x G_r``).
        screen: as in :func:`~reidgraph.graph.knn`, decided per shard when ``None``.

    Returns:
        ``(similarities [q, k], gallery indices [q, k])``, best first.
    """
    return _sharded_top(query_local, gallery_shard, offset, k, True, group, chunk_size,
                        lambda q, g, n: knn(q, g, n, chunk_size=chunk_size, screen=screen))


def fetch_rows(ids: Tensor, shard: Tensor, offset: int, group: ProcessGroup | None = None) -> Tensor:
    """Rows ``ids`` of a table sharded across ``group`` (as in :func:`sharded_knn`), wherever they lie.

    Collective: every process asks for its own ``ids``. The requests are
    all-gathered; then, for each process in turn, all fill the rows they hold
    into zeros and a ``reduce`` sums them on the asking process: each row comes
    from one shard alone, so the sum is that row, exactly.

    Args:
        ids: ``[n]`` row indices in the whole table.
        shard: ``[G_r, ...]`` this process's rows ``[offset, offset + G_r)``.

    Returns:
        ``[n, ...]`` the rows asked for.
    """
    ids = ids.to(shard.device)
    counts = [int(c) for c in _all_gather(torch.tensor([len(ids)], device=shard.device), group)]
    requests = _all_gather(F.pad(ids, (0, max(counts) - len(ids)), value=-1), group)
    fetched = shard.new_zeros((0, *shard.shape[1:]))
    for r, (wanted, n) in enumerate(zip(requests, counts)):
        if not n:
            continue
        wanted = wanted[:n]
        here = (wanted >= offset) & (wanted < offset + len(shard))
        rows = shard.new_zeros((n, *shard.shape[1:]))
        rows[here] = shard[wanted[here] - offset]
        dist.reduce(rows, group_dst=r, group=group)
        if r == dist.get_rank(group):
            fetched = rows
    return fetched


def top_lists(plan: Plan, query, gallery, top: int, *, query_camids=None, gallery_camids=None, device=None,
              index=None, progress: bool = False) -> tuple[Tensor, Tensor] | None:
    """Each query's ``top`` gallery items by ``plan``: ``(index [Q, top] int64, distance [Q, top])`` on the CPU.

    Whether the work is shared is a property of the run: in a ``torchrun`` job whose process group is up
    (world size above 1), a plan that shards (:attr:`~reidgraph.rerank.plan.Plan.sharded`) and no ``index``,
    every process passes all the features and takes its share, k-reciprocal its rows of the all-vs-all pass
    (:func:`sharded_k_reciprocal`) and the per-query methods their shard of the gallery (:func:`sharded_rerank`);
    process 0 gets the lists, the others ``None``. Otherwise this process ranks alone, ``plan.rank(...).top(top)``.
    Arguments as :func:`~reidgraph.rerank.plan.rerank`.
    """
    group_up = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if not (group_up and plan.sharded and index is None):
        ranking = plan.rank(query, gallery, query_camids=query_camids, gallery_camids=gallery_camids, device=device,
                            index=index, progress=progress)
        return ranking.top(top, progress=progress)
    if plan.method == "k-reciprocal":
        return sharded_k_reciprocal(query, gallery, params=plan.own[plan.peer], top=top, device=device)
    first, stop = shard_range(len(gallery), dist.get_world_size(), dist.get_rank())
    shard_camids = None if gallery_camids is None else gallery_camids[first:stop]
    return sharded_rerank(plan, query, gallery[first:stop], first, query_camids=query_camids,
                          gallery_camids=shard_camids, top=top, device=device, progress=progress)


@torch.no_grad()
def sharded_rerank(plan: Plan, query, gallery_shard, offset: int, *, query_camids=None, gallery_camids=None,
                   top: int = 100, device: str | torch.device | None = None, group: ProcessGroup | None = None,
                   chunk_size: int = CHUNK, progress: bool = False) -> tuple[Tensor, Tensor] | None:
    """``plan.rank(query, gallery, ...).top(top)`` with the gallery sharded across ``group``.

    Collective: every process passes all the queries and its own shard of the
    gallery; it re-ranks its block of the queries (:func:`shard_range`), and
    process 0 gathers the lists. The head of a fuser's list is its re-ranked
    top-K; beyond K, the rest in cosine order, as :class:`~reidgraph.ranking.HeadRanking`.

    Args:
        plan: a per-query plan (:attr:`~reidgraph.rerank.plan.Plan.per_query`): ``cosine``, ``ffgnn``,
            ``fusion`` or ``fusion-paper``.
        query: ``[Q, D]`` features, the same on every process.
        gallery_shard: ``[G_r, D]`` this process's gallery rows ``[offset, offset + G_r)``;
            the shards are contiguous and in rank order (:func:`shard_range`).
        offset: the gallery index of the shard's first row.
        query_camids, gallery_camids: ``[Q]`` / ``[G_r]`` camera ids (the shard's),
            needed by camera-aware methods.
        top: gallery items listed per query.
        device: where to compute (default: the shard's device).
        group: the processes (default: the whole job).
        chunk_size: queries per process per round; memory about
            ``chunk_size (W G_r + W top + K D)`` numbers.
        progress: a progress bar on process 0.

    Returns:
        On process 0 of ``group``: ``(index [Q, top] int64, distance [Q, top] float32)``
        on the CPU, as :meth:`~reidgraph.ranking.Ranking.top`; ``None`` on the others.
    """
    if not plan.per_query:
        raise ValueError(f"method {plan.method!r} needs the whole gallery in one process (a peer compares all queries "
                         "with all of it, de-biasing takes its statistics, GCR propagates over it); run it in one "
                         "process")
    device = torch.device(device) if device is not None else torch.as_tensor(gallery_shard).device
    query = as_features(torch.as_tensor(query).to(device), "query")
    shard = as_features(torch.as_tensor(gallery_shard).to(device), "gallery shard").to(query)
    same_dim(query, shard, "query", "gallery shard")
    int_in_range("chunk_size", chunk_size, 1, 2**31)
    G = _gallery_size(query, shard, offset, group)
    top = int_in_range("top", top, 1, G, f"the gallery holds {G} items")
    cams = [None if c is None else torch.as_tensor(c).to(device) for c in (query_camids, gallery_camids)]
    rank, world_size = dist.get_rank(group), dist.get_world_size(group)
    rows = slice(*shard_range(query.shape[0], world_size, rank))
    if plan.fuser is None:
        # As CosineRanking.top: the features normalised once, d = 1 - cos.
        q, g = F.normalize(query[rows], dim=1), F.normalize(shard, dim=1)
        distance, index = _sharded_top(q, g, offset, top, False, group, chunk_size, _cosine_distances)
    else:
        net, settings = plan.checked_network(query.shape[1]), plan.settings
        settings.check(G)
        q_cams, g_cams = graph_camids(settings, None if cams[0] is None else cams[0][rows], cams[1],
                                      rows.stop - rows.start, shard.shape[0])
        index, distance = _fused_top(net.to(device), settings, query[rows], shard, offset, G, top, q_cams, g_cams,
                                     group, chunk_size, progress and rank == 0)
    index, distance = _gather_first(index, group), _gather_first(distance.float(), group)
    return None if rank else (index.cpu(), distance.cpu())


@torch.no_grad()
def sharded_k_reciprocal(query, gallery, *, params: dict | None = None, top: int = 100,
                         device: str | torch.device | None = None, group: ProcessGroup | None = None,
                         chunk_size: int = 1024) -> tuple[Tensor, Tensor] | None:
    """``rerank("k-reciprocal", query, gallery, params=params).top(top)`` with its all-vs-all pass split by rows.

    Collective: every process passes all the queries and all the gallery. Each computes
    :func:`~reidgraph.rerank.kreciprocal.neighbor_pass` for its block of the ``N = Q + G`` rows
    (:func:`shard_range`) against all ``N``; process 0 gathers the blocks and runs the rest (the
    reciprocal sets, the encodings, the overlaps and each query's top) alone.

    Returns:
        On process 0 of ``group``: ``(index [Q, top] int64, distance [Q, top] float32)`` on the CPU, as
        :meth:`~reidgraph.ranking.Ranking.top`; ``None`` on the others.
    """
    own = route("k-reciprocal", params or {})["k-reciprocal"]
    device = torch.device(device) if device is not None else torch.as_tensor(gallery).device
    query, gallery = (torch.as_tensor(t).to(device) for t in (query, gallery))
    x, Q, N = joint_features(query, gallery)
    top = int_in_range("top", top, 1, N - Q, f"the gallery holds {N - Q} items")
    k1 = int_in_range("k1", own.get("k1", PEERS["k-reciprocal"].parameters()["k1"]), 1, N - 1,
                      f"query + gallery hold {N} items, and k1 must be smaller")
    rows = slice(*shard_range(N, dist.get_world_size(group), dist.get_rank(group)))
    neighbors, farthest = neighbor_pass(x, k1 + 1, rows, chunk_size)
    neighbors, farthest = _gather_first(neighbors, group), _gather_first(farthest, group)
    if dist.get_rank(group):
        return None
    ranking = k_reciprocal(query, gallery, **own, chunk_size=chunk_size, neighbors=(neighbors, farthest))
    return ranking.top(top)


def _fused_top(net: torch.nn.Module, settings: GraphSettings, query: Tensor, shard: Tensor, offset: int, G: int,
               top: int, query_camids: Tensor | None, gallery_camids: Tensor | None, group: ProcessGroup | None,
               chunk_size: int, progress: bool) -> tuple[Tensor, Tensor]:
    """This process's queries' lists: the fused head as in ``ffgnn_rerank``, then the cosine tail."""
    # Normalised once for the graphs, as ffgnn_rerank does (knn normalises its inputs once more).
    q, g = F.normalize(query, dim=1), F.normalize(shard, dim=1)
    K = settings.K
    screen = worth_screening(K, g[:1].expand(G, -1))  # the one-process rule, on the whole gallery's shape
    # The tail is ordered as HeadRanking.order_chunks orders it, on features normalised twice more.
    q3, g3 = (F.normalize(F.normalize(x, dim=1), dim=1) for x in (q, g)) if top > K else (None, None)
    index = torch.empty(len(q), max(K, top), dtype=torch.long, device=q.device)
    distance = torch.empty(len(q), max(K, top), dtype=q.dtype, device=q.device)
    rounds = range(0, max(_all_gather_ints(len(q), q.device, group)), chunk_size)
    for start in tqdm(rounds, desc="sharded rounds", unit="round", disable=not progress, leave=False):
        rows = slice(start, start + chunk_size)
        _, neighbors = sharded_knn(q[rows], g, offset, K, group, chunk_size, screen)
        needed, position = neighbors.unique(return_inverse=True)
        nodes = fetch_rows(needed, g, offset, group)
        node_cams = None if gallery_camids is None else fetch_rows(needed, gallery_camids, offset, group)
        anchor_cams = None if query_camids is None else query_camids[rows]
        head_index, head_distance = index[rows, :K], distance[rows, :K]
        for batch, z in fused_graphs(net, q[rows], nodes, position, settings, BATCH, False, anchor_cams, node_cams):
            fused = 1 - (z[:, 1:] @ z[:, :1].transpose(1, 2)).squeeze(2)
            # Stable: equal fused distances keep their FEN order.
            head_distance[batch], order = fused.sort(dim=1, stable=True)
            head_index[batch] = neighbors[batch].gather(1, order)
        if top > K:
            index[rows, K:], distance[rows, K:] = _tail(q3[rows], g3, offset, top, index[rows, :K], group, chunk_size)
    return index[:, :top], distance[:, :top]


def _tail(query: Tensor, shard: Tensor, offset: int, top: int, head: Tensor, group: ProcessGroup | None,
          chunk_size: int) -> tuple[Tensor, Tensor]:
    """The ``top - K`` items after each head: the best by cosine similarity outside the head, ties to the lower
    index, at distance ``2 + (1 - cos)`` (see :class:`~reidgraph.ranking.HeadRanking`)."""
    negated, candidates = _sharded_top(query, shard, offset, top, False, group, chunk_size, _negated_similarities)
    # The best ``top`` hold at most K head items, so at least top - K others.
    ordered = head.sort(dim=1).values
    at = torch.searchsorted(ordered, candidates).clamp_(max=head.shape[1] - 1)
    in_head = ordered.gather(1, at) == candidates
    keep = in_head.to(torch.uint8).argsort(dim=1, stable=True)[:, :top - head.shape[1]]
    return candidates.gather(1, keep), (1 - (-negated.gather(1, keep))).add_(2)


def _cosine_distances(query: Tensor, shard: Tensor, k: int) -> tuple[Tensor, Tensor]:
    index, distance = smallest(1 - query @ shard.T, k)
    return distance, index


def _negated_similarities(query: Tensor, shard: Tensor, k: int) -> tuple[Tensor, Tensor]:
    # The smallest negated similarities: the largest similarities in the order of a stable descending sort.
    index, negated = smallest(-(query @ shard.T), k)
    return negated, index


def _sharded_top(query_local: Tensor, shard: Tensor, offset: int, k: int, largest: bool,
                 group: ProcessGroup | None, chunk_size: int, search: Search) -> tuple[Tensor, Tensor]:
    """Each local query's best ``k`` gallery items by ``search`` over all shards (see :func:`sharded_knn`)."""
    rank = dist.get_rank(group)
    counts = _all_gather(torch.tensor([len(query_local), len(shard)], device=shard.device), group)
    queries, rows = [int(c[0]) for c in counts], [int(c[1]) for c in counts]
    int_in_range("k", k, 1, sum(rows), f"the gallery holds {sum(rows)} items")
    width = min(k, max(rows))  # every shard's list padded to this many entries
    values, index = [], []
    for start in range(0, max(queries), chunk_size):
        n = [min(max(count - start, 0), chunk_size) for count in queries]
        chunk = query_local.new_zeros(max(n), query_local.shape[1])
        chunk[:n[rank]] = query_local[start:start + n[rank]]
        v, i = search(torch.cat(_all_gather(chunk, group)), shard, min(k, len(shard)))
        v, i = _widen(v, width, -math.inf if largest else math.inf), _widen(i + offset, width, _PAD)
        mine = slice(rank * max(n), rank * max(n) + n[rank])
        v, i = merge_topk([x[mine] for x in _all_gather(v, group)], [x[mine] for x in _all_gather(i, group)],
                          k, largest)
        values.append(v)
        index.append(i)
    if not values:
        return query_local.new_empty(0, k), torch.empty(0, k, dtype=torch.long, device=query_local.device)
    return torch.cat(values), torch.cat(index)


def _widen(x: Tensor, width: int, fill) -> Tensor:
    """``x [n, k]`` with columns of ``fill`` appended up to ``width``."""
    return torch.cat([x, x.new_full((x.shape[0], width - x.shape[1]), fill)], dim=1)


def _gallery_size(query: Tensor, shard: Tensor, offset: int, group: ProcessGroup | None) -> int:
    """The whole gallery's size; a one-line error unless the shards tile it in rank order and every process
    has the same number of queries."""
    layout = _all_gather(torch.tensor([offset, shard.shape[0], query.shape[0]], device=shard.device), group)
    layout = [[int(v) for v in row] for row in layout]
    if len({q for *_, q in layout}) > 1:
        raise ValueError(f"the processes hold different queries ({', '.join(str(q) for *_, q in layout)} rows); "
                         "pass every process the same query features")
    expected = 0
    for r, (start, size, _) in enumerate(layout):
        if start != expected:
            raise ValueError(f"gallery shards must be contiguous in rank order: process {r} starts at row {start}, "
                             f"not {expected}; give process r the rows of shard_range(G, world_size, r)")
        expected += size
    return expected


def _gather_first(part: Tensor, group: ProcessGroup | None) -> Tensor | None:
    """Every process's ``part`` concatenated in rank order on process 0 (``None`` elsewhere)."""
    counts = _all_gather_ints(len(part), part.device, group)
    padded = part.new_zeros((max(counts), *part.shape[1:]))
    padded[:len(part)] = part
    first = dist.get_rank(group) == 0
    received = [torch.empty_like(padded) for _ in counts] if first else None
    dist.gather(padded, received, group_dst=0, group=group)
    return torch.cat([p[:n] for p, n in zip(received, counts)]) if first else None


def _all_gather_ints(value: int, device: torch.device, group: ProcessGroup | None) -> list[int]:
    return [int(v) for v in _all_gather(torch.tensor([value], device=device), group)]


def _all_gather(tensor: Tensor, group: ProcessGroup | None) -> list[Tensor]:
    out = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
    dist.all_gather(out, tensor.contiguous(), group=group)
    return out


__all__ = ["fetch_rows", "merge_topk", "shard_range", "sharded_k_reciprocal", "sharded_knn",
           "sharded_rerank", "top_lists"]
