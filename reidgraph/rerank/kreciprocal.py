r"""k-reciprocal re-ranking (Zhong et al., CVPR 2017).

.. math::
    d^*(p, g) = (1 - \lambda)\, d_J(p, g) + \lambda\, d(p, g), \qquad
    d_J(p, g) = 1 - \frac{\sum_j \min(\mathcal{V}_{pj}, \mathcal{V}_{gj})}
                         {\sum_j \max(\mathcal{V}_{pj}, \mathcal{V}_{gj})}

``lam`` is Zhong et al.'s :math:`\lambda`, the weight of the original distance ``d``
(the FFGNN graph's ``lam``, :class:`~reidgraph.graph.settings.GraphSettings`, is
that paper's :math:`\lambda`, which weights the Jaccard term instead).

Every query and gallery item is a probe (``N = Q + G`` items, features
L2-normalised); ``d0(p, x) = 2 - 2 cos(p, x)`` is the squared Euclidean distance of
the normalised features. The weights of step 3 are ``exp(-w)`` and the original
distance is ``d``, with

.. math::
    w(p, x) = \Bigl(\frac{d_0(p, x)}{s_p}\Bigr)^{e}, \qquad d(p, x) = \frac{w(p, x)}{h},

``s_p = max_{x'} d0(p, x')`` over all ``N`` items (1 where that maximum is 0:
every item identical) or ``s_p = 1``, as the variant (``variant=``) says. Each
variant is what one public code computes on L2-normalised features (float
rounding aside):

* ``"torchreid"`` (default): ``e = 2``, ``s_p`` the row maximum, ``h = 1``.
  ``re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3)`` of
  ``zhunzhong07/person-re-ranking`` (``python-version/re_ranking_ranklist.py``),
  shipped unchanged as torchreid's ``torchreid/utils/rerank.py``, fed squared
  Euclidean distances ``d0`` or cosine distances ``1 - cos``: it squares its
  input and divides each row by its maximum (``transpose(D / max(D, axis=0))``
  of a symmetric ``D``), which makes the two inputs the same. That is
  torchreid's ``Engine._evaluate`` with ``rerank=True`` and
  ``dist_metric="cosine"``, or ``"euclidean"`` with ``normalize_feature=True``
  (its defaults, ``"euclidean"`` on features not normalised, are not matched:
  this function normalises every feature).
* ``"zhong"``: ``e = 1``, ``s_p`` the row maximum, ``h = 1``. The same code fed
  Euclidean distances, which is Zhong et al.'s feature script
  ``re_ranking(probFea, galFea, k1, k2, lambda_value)``
  (``python-version/re_ranking_feature``: ``cdist`` squared, in float16).
* ``"fastreid"``: ``e = 1``, ``s_p = 1``, ``h = 2``, and ``N(p, k1)`` holds
  ``k1`` items, ``p`` among them. fast-reid's evaluator
  (``ReidEvaluator.evaluate``, ``fastreid/evaluation/reid_evaluation.py``, with
  ``TEST.RERANK.ENABLED`` and the default ``TEST.METRIC = "cosine"``; defaults
  ``K1=20, K2=6, LAMBDA=0.3``) does not call its ``re_ranking``
  (``fastreid/evaluation/rerank.py``) but ``build_dist(q, g, "jaccard")``, that is
  ``compute_jaccard_distance`` of ``fastreid/utils/compute_dist.py``, on the
  normalised features: a faiss search for the ``k1`` nearest items, weights
  ``softmax(-d0)`` with no squaring and no row division, and the original
  distance ``build_dist(q, g, "cosine") = 1 - cos = d0 / 2``. With
  ``TEST.METRIC = "euclidean"`` it works on the raw features: not matched.
* ``"unscaled"``: ``e = 1``, ``s_p = 1``, ``h = 1``: ``d0`` itself, with no
  code's scaling; it matches no public code (CA-Jaccard uses this distance).

The per-row factor and the power leave every ranking, hence the k-reciprocal
sets and the query expansion, unchanged, but they change the weights
``exp(-w)`` and the ``lambda d`` term, and so the final ranking.

1. ``N(p, k)``: the ``k + 1`` nearest items of ``p`` (``p`` itself first); the
   k-reciprocal set ``R(p, k) = {q in N(p, k) : p in N(q, k)}``.
2. Expansion: ``R*(p) = R(p, k1)`` plus ``R(q, k1/2)`` of every ``q`` in
   ``R(p, k1)`` with ``|R(p, k1) ∩ R(q, k1/2)| > 2/3 |R(q, k1/2)|``
   (``k1/2`` rounded half to even, as numpy's ``around``).
3. ``V_pg = exp(-w(p, g))`` for ``g`` in ``R*(p)``, 0 elsewhere, each row
   normalised to sum 1.
4. Local query expansion: ``V_p`` becomes the mean of ``V_q`` over the ``k2``
   nearest items ``q`` of ``p`` (``p`` included).
5. As each row sums to 1, ``sum max = 2 - m`` with ``m = sum min``, so
   ``d_J = 1 - m / (2 - m)``; ``d_J = 1`` wherever the supports do not meet.

:func:`k_reciprocal` is the library's version: memory ``O(N k)`` plus a few
``[chunk, G]`` buffers, every step a few vectorised torch operations on
neighbor lists and sparse rows; the row maxima ``s_p`` come from the same
chunked all-vs-all pass that finds the neighbors, and each chunk of queries'
overlaps ``m`` is summed when its distances are produced (:class:`Overlaps`).
:func:`k_reciprocal_dense` writes the steps above on ``N x N`` matrices, to
check the former and to benchmark it. The public codes themselves are
transcribed once, in ``benchmarks/kreciprocal_public.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from .._checks import in_unit_interval, int_in_range
from ..graph.search import pair_products, screened_extremes, worth_screening
from ..ranking import Ranking
from ._common import joint_features

# (query, column, gallery) triples formed at once when summing the Jaccard overlaps.
_TRIPLE_BUDGET = 2**23


@dataclass(frozen=True)
class Variant:
    """How one ``variant`` reads ``d0 = 2 - 2 cos`` (see the module docstring).

    Attributes:
        power: ``e``, the power of the scaled distance.
        row_max: ``s_p`` is row ``p``'s maximum of ``d0`` (else 1).
        h: the original distance is ``d = w / h``.
        short_lists: ``N(p, k1)`` holds ``k1`` items, ``p`` among them (else ``k1 + 1``).
    """

    power: int
    row_max: bool
    h: float = 1.0
    short_lists: bool = False

    def list_size(self, k1: int) -> int:
        """``|N(p, k1)|``."""
        return k1 if self.short_lists else k1 + 1


VARIANTS = {"torchreid": Variant(power=2, row_max=True), "zhong": Variant(power=1, row_max=True),
            "fastreid": Variant(power=1, row_max=False, h=2.0, short_lists=True),
            "unscaled": Variant(power=1, row_max=False)}


@dataclass
class KReciprocal(Ranking):
    """k-reciprocal distances of ``Q`` queries to ``G`` gallery items, produced chunk by chunk.

    Attributes:
        query: ``[Q, D]`` L2-normalised query features.
        gallery: ``[G, D]`` L2-normalised gallery features.
        overlaps: the encodings, from which each chunk's ``m = sum_j min(V_pj, V_gj)``
            is summed (``d_J = 1 - m / (2 - m)``; ``m = 0`` where the supports do not meet).
        lam: Zhong et al.'s ``lambda``, the weight of the original distance.
        scale: ``[Q]`` divisor of each query's distances ``2 - 2 cos`` in the original
            distance, ``s_p h^(1/e)`` (see the module docstring); ones when not given, as CA-Jaccard does.
        power: the power ``e`` of the scaled distance (1 when not given).
    """

    query: Tensor
    gallery: Tensor
    overlaps: Overlaps
    lam: float
    scale: Tensor | None = None
    power: int = 1

    def __post_init__(self):
        if self.scale is None:
            self.scale = torch.ones(self.query.shape[0], dtype=self.query.dtype, device=self.query.device)

    def distance_chunks(self, chunk_size: int = 1024) -> Iterator[Tensor]:
        r"""Yield ``d* = lam ((2 - 2 cos) / scale)^e + (1 - lam) d_J`` for consecutive chunks of queries.

        Each chunk is ``[q, G]``, ``q = chunk_size`` but for the last.
        """
        for start, stop in self._query_ranges(chunk_size):
            # d* = lam d + (1 - lam) - (1 - lam) m / (2 - m), built in place on the chunk's buffers.
            # lam^(1/e) (2 - 2 cos) / scale in one product: the query rows scaled by -step, plus step.
            step = 2 * self.lam ** (1 / self.power) / self.scale[start:stop, None]
            out = torch.addmm(step, self.query[start:stop] * -step, self.gallery.T).clamp_(min=0)
            if self.power == 2:
                out.square_()
            elif self.power != 1:
                out.pow_(self.power)
            m = self.overlaps.block(start, stop)
            out.add_(1 - self.lam).addcdiv_(m, 2 - m, value=-(1 - self.lam))
            yield out


def k_reciprocal(query: Tensor, gallery: Tensor, k1: int = 20, k2: int = 6, lam: float = 0.3,
                 chunk_size: int = 1024, variant: str = "torchreid",
                 neighbors: tuple[Tensor, Tensor] | None = None) -> KReciprocal:
    r"""k-reciprocal re-ranking with sparse encodings, memory ``O(N k)`` (see the module docstring).

    Args:
        query: ``[Q, D]`` features.
        gallery: ``[G, D]`` features.
        k1: size of the k-reciprocal neighborhood, ``1 <= k1 < Q + G``. Default 20.
        k2: neighbors averaged by local query expansion, ``1 <= k2 <= k1``. Default 6.
        lam: Zhong et al.'s ``lambda``, the weight of the original distance ``d`` in
            ``d* = (1 - lambda) d_J + lambda d``, in ``[0, 1]``. Default 0.3.
        chunk_size: rows processed at once by the all-vs-all pass. Default 1024.
        variant: which public code's distance to compute, on L2-normalised features:
            ``"torchreid"`` (default), zhunzhong07's and torchreid's ``re_ranking`` fed squared
            Euclidean or cosine distances (``((2 - 2 cos) / s_p)^2``); ``"zhong"``, the same fed
            Euclidean distances, as Zhong et al.'s feature script does (``(2 - 2 cos) / s_p``);
            ``"fastreid"``, fast-reid's evaluator (``compute_jaccard_distance`` plus
            ``lambda (1 - cos)``); ``"unscaled"``, ``2 - 2 cos`` (no public code). ``s_p``: row
            ``p``'s maximum. The module docstring gives the functions, files and inputs.
        neighbors: the all-vs-all pass, ``neighbor_pass(x, k1 + 1)`` of the joined
            normalised features, where it was computed elsewhere (by several processes);
            ``None``: computed here.

    Returns:
        :class:`KReciprocal`, whose ``distance_chunks()`` yields ``[q, G]`` blocks of ``d*``.
    """
    x, Q, k1, k2, lam, form = _check(query, gallery, k1, k2, lam, variant)
    int_in_range("chunk_size", chunk_size, 1, 2**31)
    N = x.shape[0]
    nbrs, farthest = neighbors if neighbors is not None else neighbor_pass(x, k1 + 1, chunk_size=chunk_size)
    if nbrs.shape != (N, k1 + 1) or farthest.shape != (N,):
        raise ValueError(f"neighbors must be ([{N}, {k1 + 1}], [{N}]) for {N} items and k1={k1}, got "
                         f"({list(nbrs.shape)}, {list(farthest.shape)}); pass neighbor_pass(x, k1 + 1)")
    divisor = _divisor(farthest, form)
    rows, cols = _expanded_sets(nbrs[:, :form.list_size(k1)], nbrs[:, :round(k1 / 2) + 1], chunk_size)
    weight = torch.exp(-(pair_distance(x, rows, cols) / divisor[rows]) ** form.power)
    weight = weight / torch.zeros(N, dtype=x.dtype, device=x.device).index_add_(0, rows, weight)[rows]
    rows, cols, weight = local_query_expansion(rows, cols, weight, nbrs[:, :k2], N)
    return KReciprocal(query=x[:Q], gallery=x[Q:], overlaps=Overlaps.build(rows, cols, weight, Q, N), lam=lam,
                       scale=_term_scale(divisor[:Q], form), power=form.power)


def _expanded_sets(lists: Tensor, half_lists: Tensor, chunk_size: int) -> tuple[Tensor, Tensor]:
    """Row-sorted ``(rows, cols)`` of the expanded sets ``R*(p)`` of every item.

    Args:
        lists: ``[N, L]`` ``N(p, k1)``, best first.
        half_lists: ``[N, half + 1]`` ``N(p, half)``, ``half = round(k1 / 2)``.
        chunk_size: items expanded at once.
    """
    N = lists.shape[0]
    members = torch.where(reciprocal_mask(lists), lists, -1)
    recip_half = torch.where(reciprocal_mask(half_lists), half_lists, -1)
    member_keys = _row_keys(members, N)
    rows, cols = [], []
    for start in range(0, N, chunk_size):
        block = members[start:start + chunk_size]
        anchor = torch.arange(start, start + block.shape[0], device=lists.device)
        candidate = recip_half[block.clamp_min(0)]                          # [c, L, half+1]
        inside = (candidate >= 0) & _contains(member_keys, anchor[:, None, None] * N + candidate)
        size = (candidate >= 0).sum(-1)
        accepted = (block >= 0) & (3 * inside.sum(-1) > 2 * size)
        candidate = torch.where(accepted[..., None], candidate, -1).flatten(1)
        expanded = torch.cat([block, candidate], dim=1).sort(dim=1).values
        keep = expanded >= 0
        keep[:, 1:] &= expanded[:, 1:] != expanded[:, :-1]
        rows.append(anchor[:, None].expand_as(expanded)[keep])
        cols.append(expanded[keep])
    return torch.cat(rows), torch.cat(cols)


def k_reciprocal_dense(query: Tensor, gallery: Tensor, k1: int = 20, k2: int = 6,
                       lam: float = 0.3, variant: str = "torchreid") -> Tensor:
    """k-reciprocal re-ranking written step by step from the module docstring, on ``N x N`` matrices.

    Builds the ranking of ``d0 = 2 - 2 cos`` and the scaled ``w`` (see ``variant``),
    the encodings ``V`` row by row in Python, and each query's overlaps ``m`` with
    every gallery item through the inverted index ``j -> {g : V_gj > 0}``; memory
    ``O(N^2)``. A reference for tests and benchmarks.

    Args:
        query, gallery, k1, k2, lam, variant: as in :func:`k_reciprocal`.

    Returns:
        ``[Q, G]`` re-ranked distances ``d*``.
    """
    x, Q, k1, k2, lam, form = _check(query, gallery, k1, k2, lam, variant)
    N = x.shape[0]
    w = (2 - 2 * x @ x.T).clamp_min(0)
    rank = w.argsort(dim=1, stable=True)
    w = (w / _divisor(w.amax(dim=1), form)[:, None]) ** form.power

    def reciprocal(p: int, size: int) -> list[int]:
        forward = rank[p, :size]
        return forward[(rank[forward, :size] == p).any(dim=1)].tolist()

    V = torch.zeros(N, N, dtype=x.dtype, device=x.device)
    for p in range(N):
        R = reciprocal(p, form.list_size(k1))
        expanded = set(R)
        for q in R:
            R_q = reciprocal(q, round(k1 / 2) + 1)
            if len(set(R_q) & set(R)) > 2 / 3 * len(R_q):
                expanded |= set(R_q)
        members = sorted(expanded)
        V[p, members] = torch.softmax(-w[p, members], dim=0)
    V = torch.stack([V[rank[p, :k2]].mean(dim=0) for p in range(N)])

    inverted = [torch.nonzero(V[Q:, j]).flatten() for j in range(N)]
    d_J = torch.empty(Q, N - Q, dtype=x.dtype, device=x.device)
    for p in range(Q):
        m = torch.zeros(N - Q, dtype=x.dtype, device=x.device)
        for j in torch.nonzero(V[p]).flatten().tolist():
            m[inverted[j]] += torch.minimum(V[p, j], V[Q + inverted[j], j])
        d_J[p] = 1 - m / (2 - m)
    return (1 - lam) * d_J + lam * w[:Q, Q:] / form.h


def _check(query, gallery, k1, k2, lam, variant) -> tuple[Tensor, int, int, int, float, Variant]:
    x, Q, N = joint_features(query, gallery)
    k1 = int_in_range("k1", k1, 1, N - 1, f"query + gallery hold {N} items, and k1 must be smaller")
    k2 = int_in_range("k2", k2, 1, k1, "query expansion averages at most k1 neighbors")
    lam = in_unit_interval("lam", lam)
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is not one of {', '.join(map(repr, VARIANTS))}")
    return x, Q, k1, k2, lam, VARIANTS[variant]


def neighbor_pass(x: Tensor, k: int, rows: slice = slice(None),
                   chunk_size: int = 1024) -> tuple[Tensor, Tensor]:
    """``N(p, k - 1)`` and ``max_x (2 - 2 cos(p, x))`` of the rows ``rows`` of ``x``, from one chunked pass.

    Each ``[chunk, N]`` block ``S = x_chunk x^T`` gives the ``k`` best columns
    (``topk``, best first, so normally the item itself first) and ``2 - 2 min_x S_px``.
    Where :func:`~reidgraph.graph.search.worth_screening` says so, ``S`` is computed in
    bfloat16 and both extremes are certified exact in float32
    (:func:`~reidgraph.graph.search.screened_extremes`). Rows are independent, so
    several processes may each pass their own ``rows``
    (:func:`~reidgraph.rerank.sharded.sharded_k_reciprocal`).

    Args:
        x: ``[N, D]`` L2-normalised features (queries then gallery, as :func:`k_reciprocal` joins them).
        k: neighbors per row, ``1 <= k <= N``.
        rows: the rows to compute (default: all).
        chunk_size: rows per block.

    Returns:
        ``(neighbors [n, k], farthest [n])`` of the ``n`` rows, ``farthest`` clamped at 0.
    """
    part = x[rows]
    n = part.shape[0]
    neighbors = torch.empty(n, k, dtype=torch.long, device=x.device)
    lowest = torch.empty(n, dtype=x.dtype, device=x.device)
    x_bf16 = x.bfloat16() if worth_screening(k, x) else None
    for start in range(0, n, chunk_size):
        block = slice(start, start + chunk_size)
        if x_bf16 is not None:
            _, neighbors[block], lowest[block] = screened_extremes(part[block], x, k, x_bf16)
        else:
            sim = part[block] @ x.T
            neighbors[block] = sim.topk(k, dim=1).indices
            lowest[block] = sim.amin(dim=1)
    return neighbors, (2 - 2 * lowest).clamp_min(0)


def _divisor(farthest: Tensor, form: Variant) -> Tensor:
    """``[N]`` divisor ``s_p``: ``farthest`` (1 where it is 0), or ones where ``form`` takes no row maximum."""
    if not form.row_max:
        return torch.ones_like(farthest)
    return torch.where(farthest > 0, farthest, torch.ones_like(farthest))


def _term_scale(divisor: Tensor, form: Variant) -> Tensor:
    """``s_p h^(1/e)``: ``d = ((2 - 2 cos) / (s_p h^(1/e)))^e = w / h``."""
    return divisor * form.h ** (1 / form.power)


def pair_distance(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``d0 = 2 - 2 cos(x_r, x_c)`` of each listed pair ``(r, c)``, clamped at 0.

    Args:
        x: ``[N, D]`` L2-normalised features.
        rows: ``[E]`` row of each pair, sorted ascending.
        cols: ``[E]`` column of each pair.

    Returns:
        ``[E]`` distances.
    """
    return (2 - 2 * pair_products(x, x, _row_pointers(rows, x.shape[0]), cols)).clamp_min(0)


def _row_keys(neighbors: Tensor, n: int) -> Tensor:
    """Sorted ``row * n + column`` of every non-negative entry of ``neighbors``."""
    rows = torch.arange(neighbors.shape[0], device=neighbors.device)[:, None].expand_as(neighbors)
    valid = neighbors >= 0
    return (rows[valid] * n + neighbors[valid]).sort().values


def _contains(sorted_keys: Tensor, keys: Tensor) -> Tensor:
    pos = torch.searchsorted(sorted_keys, keys).clamp_max(sorted_keys.numel() - 1)
    return sorted_keys[pos] == keys


def reciprocal_mask(neighbors: Tensor) -> Tensor:
    """Which listed neighbors are reciprocal: ``mask[p, i] = p in neighbors[neighbors[p, i]]``.

    With ``neighbors[p] = N(p, k)`` the entries kept by the mask are ``R(p, k) = {q in N(p, k) :
    p in N(q, k)}``.

    Args:
        neighbors: ``[N, L]`` each item's list of item indices; ``-1`` pads a shorter list (never reciprocal).
            At least one entry must be listed.

    Returns:
        ``[N, L]`` bool mask.
    """
    n = neighbors.shape[0]
    anchor = torch.arange(n, device=neighbors.device)[:, None]
    return _contains(_row_keys(neighbors, n), neighbors * n + anchor)


def local_query_expansion(rows: Tensor, cols: Tensor, weight: Tensor, nearest: Tensor,
                          n: int) -> tuple[Tensor, Tensor, Tensor]:
    r"""Local query expansion of sparse encodings: :math:`V^{qe}_p = \frac{1}{|M(p)|} \sum_{q \in M(p)} V_q`.

    ``M(p)`` is the set listed in ``nearest[p]`` (``-1`` entries pad shorter lists; each row averages
    its own entries).

    Args:
        rows, cols, weight: ``[E]`` the entries ``(p, j, V_pj)`` of ``V``, sorted by ``p``.
        nearest: ``[n, w]`` the rows averaged into each row.
        n: items (rows of ``V``).

    Returns:
        ``(rows, cols, weight)`` of ``V^qe``, sorted by row then column.
    """
    w = nearest.shape[1]
    if w == 1 and bool((nearest[:, 0] == torch.arange(n, device=nearest.device)).all()):
        return rows, cols, weight
    ptr = _row_pointers(rows, n)
    source = nearest.flatten()
    listed = source >= 0
    source = source.clamp_min(0)
    length = torch.where(listed, ptr[source + 1] - ptr[source], 0)
    which = torch.repeat_interleave(torch.arange(source.numel(), device=rows.device), length)
    offset = torch.arange(which.numel(), device=rows.device) - (torch.cumsum(length, 0) - length)[which]
    entry = ptr[source][which] + offset
    count = (nearest >= 0).sum(dim=1).clamp_min(1).to(weight.dtype)
    key, total = _sum_duplicates((which // w) * n + cols[entry], weight[entry] / count[which // w])
    return key // n, key % n, total


def _sum_duplicates(key: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """Sorted unique ``key`` and the sum of ``values`` over each."""
    unique, inverse = torch.unique(key, return_inverse=True)
    return unique, torch.zeros(unique.numel(), dtype=values.dtype, device=values.device).index_add_(0, inverse, values)


def _row_pointers(rows: Tensor, n: int) -> Tensor:
    """CSR row pointers of row-sorted ``rows``."""
    counts = torch.bincount(rows, minlength=n)
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


@dataclass
class Overlaps:
    """Sparse encodings ``V`` arranged to sum ``m(p, g) = sum_j min(V_pj, V_gj)`` a block of queries at a time.

    Query ``p``'s entries ``V_pj`` meet, through the inverted index ``j -> {g : V_gj > 0}``, every
    gallery entry of their column: one ``(p, j, g)`` triple each.

    Attributes:
        rows, cols, weight: ``[E_q]`` the query entries ``(p, j, V_pj)``, sorted by ``p``.
        row_ptr: ``[Q + 1]`` CSR row pointers into them.
        col_ptr: ``[N + 1]`` pointers, by column ``j``, into ``g_rows`` and ``g_vals``.
        g_rows, g_vals: ``[E_g]`` the gallery entries ``(g, V_gj)``, sorted by ``j``.
        triples: ``[Q + 1]`` the cumulative number of triples of the queries.
        G: gallery items.
    """

    rows: Tensor
    cols: Tensor
    weight: Tensor
    row_ptr: Tensor
    col_ptr: Tensor
    g_rows: Tensor
    g_vals: Tensor
    triples: Tensor
    G: int

    @classmethod
    def build(cls, rows: Tensor, cols: Tensor, weight: Tensor, Q: int, n: int) -> Overlaps:
        """From the row-sorted entries ``(rows, cols, weight)`` of all ``n = Q + G`` items, queries first."""
        is_gallery = rows >= Q
        by_column = torch.argsort(cols[is_gallery], stable=True)
        col_ptr = _row_pointers(cols[is_gallery][by_column], n)
        g_rows, g_vals = rows[is_gallery][by_column] - Q, weight[is_gallery][by_column]
        rows, cols, weight = rows[~is_gallery], cols[~is_gallery], weight[~is_gallery]
        meets = col_ptr[cols + 1] - col_ptr[cols]
        per_query = torch.zeros(Q, dtype=meets.dtype, device=meets.device).index_add_(0, rows, meets)
        return cls(rows=rows, cols=cols, weight=weight, row_ptr=_row_pointers(rows, Q), col_ptr=col_ptr,
                   g_rows=g_rows, g_vals=g_vals, triples=torch.cat([meets.new_zeros(1), torch.cumsum(per_query, 0)]),
                   G=n - Q)

    def block(self, start: int, stop: int) -> Tensor:
        """``[stop - start, G]`` overlaps ``m`` of queries ``start:stop``, summed by a scatter into one buffer,
        ``_TRIPLE_BUDGET`` triples at a time."""
        G = self.G
        total = torch.zeros((stop - start) * G, dtype=self.weight.dtype, device=self.weight.device)
        first = start
        while first < stop:
            last = int(torch.searchsorted(self.triples, self.triples[first] + _TRIPLE_BUDGET, right=True)) - 1
            last = min(max(last, first + 1), stop)
            lo, hi = int(self.row_ptr[first]), int(self.row_ptr[last])
            p, j, v = self.rows[lo:hi], self.cols[lo:hi], self.weight[lo:hi]
            length = self.col_ptr[j + 1] - self.col_ptr[j]
            # Triple t pairs query entry e(t) with gallery entry col_ptr[j_e] + (t - first triple of e).
            entry = torch.arange(int(length.sum()), device=p.device) + torch.repeat_interleave(
                self.col_ptr[j] - (torch.cumsum(length, 0) - length), length)
            total.index_add_(0, torch.repeat_interleave((p - start) * G, length) + self.g_rows[entry],
                             torch.minimum(torch.repeat_interleave(v, length), self.g_vals[entry]))
            first = last
        return total.view(stop - start, G)
