r"""GCR and GCRV re-ranking: graph-convolution feature propagation across cameras (Zhang et al., IEEE TMM 2023).

X. Zhang et al., "Graph Convolution Based Efficient Re-Ranking for Visual Retrieval", IEEE TMM 2023; the
authors' code ``github.com/WesleyZhang1991/GCN_rerank`` (``gcrv.py``, image datasets, ``config/market.yml``).

**GCR.** The ``N = Q + G`` query and gallery features, L2-normalised, are propagated together for ``rounds``
rounds. In each, with ``s_ij = x_i . x_j``:

* the global graph links ``i`` to its ``k1`` most similar items ``N_1(i)`` (itself among them, as a rule),
  and to itself where it is not: ``w_ij = exp(s_ij / beta1)``;
* the cross-camera graph links ``i`` to itself and to the ``k2`` most similar items of
  ``{i} ∪ {j : camera(j) != camera(i)}`` (itself first, as a rule, so ``k2 - 1`` other-camera items):
  ``w'_ij = exp(s_ij / beta2)``;
* each graph is normalised by its row and column sums, ``L_ij = w_ij / sqrt(r_i c_j)``,
  ``r_i = sum_j w_ij``, ``c_j = sum_i w_ij`` (the authors' ``nonsym`` mode), and

.. math::
    x_i \leftarrow \frac{y_i}{\lVert y_i \rVert}, \qquad
    y = \text{scale}\; L' x + (1 - \text{scale})\; L x.

The final distance is ``1 - cos`` of the propagated features (the authors' ``ComputeEuclid`` gives
``|q - g|^2 / 2``, the same for unit vectors). **GCRV** de-biases the features per camera first
(:mod:`reidgraph.debias`, their PVG), then runs GCR.

**Defaults**: the authors' ``config/market.yml`` (the config they give for image datasets): ``k1=15, k2=3,
beta1=beta2=0.2, scale=0.3, rounds=3``, PVG ``ridge=10``.

**Readings chosen.** Ties in similarity go to the lower index (queries first, then the gallery, each in
input order); the authors' ``np.argsort`` is not stable, so their order among exact ties is arbitrary.
Where fewer than ``k2 - 1`` items lie on other cameras, the cross-camera graph holds just those: the
authors fill the row with same-camera items at similarity -2 (weight ``exp(-2 / beta2)``, ``e^{-15}`` of
the self-loop's with the defaults).

**Computation.** In the features' dtype (float32 features: float32; float64: float64, as the public code).
Memory ``O(N k)``, never ``N x N``: the neighbor lists come from a pass over square tiles of the similarity
matrix (each tile once: ``x_a x_b^T`` updates the lists of the rows of ``a`` and, transposed, of ``b``), in
float32 (bfloat16 where it is fast, as :func:`~reidgraph.graph.search.screened_topk` decides, ``D >= 256``)
with ``2k + 8`` candidates per row, whose similarities are then recomputed in the features' dtype and
certified: an item outside the candidates has a screened score at most the last candidate's, so a recomputed
score at most that plus the screen's rounding bound (float32: ``(D + 3) 2^{-24}``; bfloat16:
:func:`~reidgraph.graph.search.screen_error`) and float32's; a row whose ``k``-th recomputed score lies above
that holds its exact top ``k``, any other row is ranked again over every item. Propagation is a sparse
product.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import camera_ids, in_unit_interval, int_in_range
from ..debias import MIN_IMAGES, RIDGE, debias
from ..graph.search import fast_bfloat16, pair_products, screen_error
from ..ranking import CosineRanking
from ._common import joint_features

# Float32 candidates kept per row of a neighbor list of length k: 2k + _SLACK.
_SLACK = 8


def gcr(query: Any, gallery: Any, query_camids: Any, gallery_camids: Any, *, k1: int = 15, k2: int = 3,
        beta1: float = 0.2, beta2: float = 0.2, scale: float = 0.3, rounds: int = 3,
        chunk_size: int = 2048) -> CosineRanking:
    """GCR re-ranking (see the module docstring): propagated features ranked by ``1 - cos``.

    Args:
        query, gallery: ``[Q, D]`` and ``[G, D]`` features.
        query_camids, gallery_camids: ``[Q]`` and ``[G]`` integer camera ids.
        k1: neighbors of the global graph, the item itself included, ``1 <= k1 <= Q + G``. Default 15.
        k2: neighbors of the cross-camera graph, the item itself included, ``1 <= k2 <= Q + G``. Default 3.
        beta1, beta2: temperatures of the global and the cross-camera weights, positive. Default 0.2.
        scale: weight of the cross-camera graph, in ``[0, 1]``. Default 0.3.
        rounds: propagation rounds, ``>= 0``. Default 3.
        chunk_size: side of the similarity tiles. Default 2048.

    Returns:
        A :class:`~reidgraph.ranking.CosineRanking` of the propagated query and gallery features.
    """
    x, cams, Q = _checked(query, gallery, query_camids, gallery_camids, k1, k2, beta1, beta2, scale,
                                 rounds, chunk_size)
    for _ in range(rounds):
        x = propagate(x, cams, k1, k2, beta1, beta2, scale, chunk_size)
    return CosineRanking(x[:Q], x[Q:])


def gcrv(query: Any, gallery: Any, query_camids: Any, gallery_camids: Any, *, ridge: float = RIDGE,
         min_images: int = MIN_IMAGES, k1: int = 15, k2: int = 3, beta1: float = 0.2, beta2: float = 0.2,
         scale: float = 0.3, rounds: int = 3, chunk_size: int = 2048) -> CosineRanking:
    """GCRV re-ranking: per-camera de-biasing (:func:`~reidgraph.debias.debias`, with ``ridge`` and
    ``min_images``), then :func:`gcr` with the other arguments."""
    query, gallery = debias(query, gallery, query_camids, gallery_camids, ridge=ridge, min_images=min_images)
    return gcr(query, gallery, query_camids, gallery_camids, k1=k1, k2=k2, beta1=beta1, beta2=beta2, scale=scale,
               rounds=rounds, chunk_size=chunk_size)


def propagate(x: Tensor, cams: Tensor, k1: int, k2: int, beta1: float, beta2: float, scale: float,
              chunk_size: int) -> Tensor:
    """One GCR round: ``x [N, D]`` unit rows, camera ids ``cams [N]`` -> the propagated unit rows."""
    lists = neighbor_lists(x, cams, (k1, k2), chunk_size)
    parts = [_normalised(*lists[0], beta1, 1 - scale), _normalised(*lists[1], beta2, scale)]
    rows, cols, values = (torch.cat(t) for t in zip(*parts))
    n = x.shape[0]
    graph = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=False).coalesce()
    return F.normalize(torch.sparse.mm(graph, x), dim=1)


def _normalised(sim: Tensor, idx: Tensor, beta: float, weight: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(rows, cols, weight * L_ij)`` of one graph from its lists ``sim, idx [N, k + 1]`` (``idx`` -1 where
    absent). ``exp((s - 1) / beta)`` in place of ``exp(s / beta)``: the constant factor cancels in ``L``."""
    n = sim.shape[0]
    rows = torch.arange(n, device=idx.device)[:, None].expand_as(idx)
    keep = idx >= 0
    rows, cols, w = rows[keep], idx[keep], torch.exp((sim[keep] - 1) / beta)
    row_sum = torch.zeros(n, dtype=w.dtype, device=w.device).index_add_(0, rows, w)
    col_sum = torch.zeros(n, dtype=w.dtype, device=w.device).index_add_(0, cols, w)
    return rows, cols, weight * w / (row_sum[rows] * col_sum[cols]).sqrt()


def neighbor_lists(x: Tensor, cams: Tensor, ks: tuple[int, int], chunk_size: int) -> list[tuple[Tensor, Tensor]]:
    """Each row's global list (its ``k1`` most similar items) and cross-camera list (the ``k2`` most similar of
    itself and the other cameras' items), each with the row itself appended where absent.

    Args:
        x: ``[N, D]`` unit rows; cams: ``[N]`` camera ids; ks: ``(k1, k2)``.

    Returns:
        Two ``(sim [N, k + 1] in x's dtype, idx [N, k + 1] int64)``, best first by (similarity, lower index), the
        last column the row itself where the ``k`` do not hold it, ``idx = -1`` in unused places.
    """
    dim = x.shape[1]
    bf16 = dim >= 256 and fast_bfloat16(x.device.type)
    candidates = _screen(x.bfloat16() if bf16 else x.float(), cams, [min(x.shape[0], 2 * k + _SLACK) for k in ks],
                         chunk_size)
    # A screened score lies within the first term of the exact one, a recomputed one within the second.
    bound = (screen_error(dim) if bf16 else (dim + 3) * 2.0**-24) + (dim + 3) * 2.0**-24
    return [_select(x, cams, k, top, idx, bound, cross) for k, (top, idx), cross in zip(ks, candidates, (False, True))]


def _screen(x: Tensor, cams: Tensor, ms: list[int], tile: int) -> list[tuple[Tensor, Tensor]]:
    """The ``m`` largest float32 similarities of each row, global and to other cameras (``-inf`` where a row
    has fewer), from one pass over the upper triangle of ``x x^T`` in ``tile x tile`` blocks."""
    n = x.shape[0]
    lists = [(torch.full((n, m), float("-inf"), device=x.device), torch.zeros(n, m, dtype=torch.long, device=x.device))
             for m in ms]
    starts = range(0, n, tile)
    for a in starts:
        rows = slice(a, min(a + tile, n))
        for b in (s for s in starts if s >= a):
            cols = slice(b, min(b + tile, n))
            block = (x[rows] @ x[cols].T).float()
            same = cams[rows, None] == cams[None, cols]
            for (top, idx), hide in zip(lists, (None, same)):
                _merge(top, idx, rows, block, b, hide)
                if b != a:
                    _merge(top, idx, cols, block.T, a, None if hide is None else hide.T)
    return lists


def _merge(top: Tensor, idx: Tensor, rows: slice, sims: Tensor, offset: int, hide: Tensor | None) -> None:
    """Fold the block ``sims [r, c]`` (columns from ``offset``; ``hide``: entries to leave out) into the running
    lists ``top, idx`` of ``rows``. Once every list is full, only entries above a row's current last one can
    enter; they are few, and taken from a sparse list instead of a ``topk`` of the whole block."""
    m = top.shape[1]
    last = top[rows, -1:]
    if bool(torch.isinf(last).any()):
        sims = sims if hide is None else sims.masked_fill(hide, float("-inf"))
        new, where = sims.topk(min(m, sims.shape[1]), dim=1)
        changed = torch.arange(sims.shape[0], device=sims.device)
    else:
        enters = sims > last
        if hide is not None:
            enters &= ~hide
        r, c = torch.nonzero(enters, as_tuple=True)
        if not r.numel():
            return
        counts = torch.bincount(r, minlength=sims.shape[0])
        changed = torch.nonzero(counts).flatten()
        first = torch.cumsum(counts, 0) - counts
        slot = torch.arange(r.numel(), device=r.device) - first[r]
        local = torch.zeros_like(counts)
        local[changed] = torch.arange(changed.numel(), device=r.device)
        width = int(counts.max())
        new = sims.new_full((changed.numel(), width), float("-inf"))
        where = torch.zeros(changed.numel(), width, dtype=torch.long, device=sims.device)
        new[local[r], slot], where[local[r], slot] = sims[r, c], c
    row_ids = changed + rows.start
    merged, pos = torch.cat([top[row_ids], new], dim=1).topk(m, dim=1)
    idx[row_ids] = torch.cat([idx[row_ids], where + offset], dim=1).gather(1, pos)
    top[row_ids] = merged


def _select(x: Tensor, cams: Tensor, k: int, rough: Tensor, candidates: Tensor, bound: float,
            cross: bool) -> tuple[Tensor, Tensor]:
    """One list of :func:`neighbor_lists` from float32 candidates ``rough, candidates [N, m]``, rescored in
    ``x``'s dtype; rows whose certificate fails are ranked again over every item."""
    n = x.shape[0]
    own = torch.arange(n, device=x.device)
    valid = (rough > float("-inf")) & (candidates != own[:, None])
    # The row itself joins as a candidate of its own (it is masked out of the cross-camera screen).
    cols = torch.cat([candidates, own[:, None]], dim=1)
    itself = _products(x, own[:, None])
    exact = torch.cat([_products(x, candidates).masked_fill(~valid, float("-inf")), itself], dim=1)
    sim, idx = _ordered(exact, cols, k)
    # Every eligible item is a candidate where the screen kept all columns or ran out of eligible ones.
    complete = (rough[:, -1] == float("-inf")) | (rough.shape[1] == n)
    redo = torch.nonzero(~complete & (sim[:, -1] <= rough[:, -1].to(sim) + bound)).flatten()
    for start in range(0, redo.numel(), 1024):
        rows = redo[start:start + 1024]
        full = x[rows] @ x.T
        if cross:
            full = full.masked_fill((cams[rows, None] == cams[None]) & (own[None] != rows[:, None]), float("-inf"))
        sim[rows], idx[rows] = _ordered(full, own.expand(rows.numel(), n), k)
    return _with_self(sim, idx, itself)


def _products(x: Tensor, cols: Tensor) -> Tensor:
    """``[N, m]`` products ``x_i . x_{cols[i, j]}`` in ``x``'s dtype, each by the same kernel (equal rows give
    equal products, so exact ties stay ties)."""
    n, m = cols.shape
    return pair_products(x, x, torch.arange(0, n * m + 1, m, device=cols.device), cols.flatten()).view(n, m)


def _ordered(sim: Tensor, cols: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The first ``k`` of each row by decreasing ``sim``, equal ones by increasing ``cols``; ``-1`` for ``-inf``."""
    cols, by_index = cols.sort(dim=1, stable=True)
    sim = sim.gather(1, by_index)
    sim, order = sim.sort(dim=1, descending=True, stable=True)
    sim, idx = sim[:, :k], cols.gather(1, order)[:, :k]
    return sim, idx.masked_fill(sim == float("-inf"), -1)


def _with_self(sim: Tensor, idx: Tensor, itself: Tensor) -> tuple[Tensor, Tensor]:
    """The lists with a last column: the row itself (similarity ``itself [N, 1]``) where absent, ``-1`` where
    present."""
    own = torch.arange(idx.shape[0], device=idx.device)
    absent = ~(idx == own[:, None]).any(dim=1)
    return torch.cat([sim, itself], dim=1), torch.cat([idx, torch.where(absent, own, -1)[:, None]], dim=1)


def _checked(query, gallery, query_camids, gallery_camids, k1, k2, beta1, beta2, scale, rounds, chunk_size):
    """``(features [N, D] unit rows in the query's dtype, cameras [N], Q)``, every argument checked."""
    x, Q, n = joint_features(query, gallery)
    cams = [camera_ids(ids, size, name, what, f"{name} is missing; GCR needs the camera id of every {what} image: "
                                              "add camids to the features, or choose a method without cameras")
            for ids, size, name, what in ((query_camids, Q, "query_camids", "query"),
                                          (gallery_camids, n - Q, "gallery_camids", "gallery"))]
    int_in_range("k1", k1, 1, n, f"query + gallery hold {n} items")
    int_in_range("k2", k2, 1, n, f"query + gallery hold {n} items")
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
            raise ValueError(f"{name}={beta!r} must be a positive number, e.g. 0.2")
    in_unit_interval("scale", scale)
    int_in_range("rounds", rounds, 0, 1000)
    int_in_range("chunk_size", chunk_size, 1, 2**31)
    return x, torch.cat(cams).to(x.device), Q


__all__ = ["gcr", "gcrv", "neighbor_lists", "propagate"]
