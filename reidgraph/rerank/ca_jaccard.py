r"""CA-Jaccard re-ranking: camera-aware Jaccard distance (Chen, Fan, Chen and Zhu, CVPR 2024).

Y. Chen et al., "CA-Jaccard: Camera-aware Jaccard Distance for Person
Re-identification", CVPR 2024 (arXiv 2311.10605); authors' code
``github.com/chen960/CA-Jaccard`` (read as ``chenyiyuu/CA-Jaccard``).

Every query and gallery item is a probe (``N = Q + G`` items, each with a camera
id), ``d(p, g) = 2 - 2 \cos(p, g)`` on L2-normalised features, as in
:mod:`~reidgraph.rerank.kreciprocal`. The method replaces two steps of
k-reciprocal re-ranking (Zhong et al. 2017) with camera-aware ones.

**Ranking lists.** ``L_intra(p)``: the items on ``p``'s camera (``p`` included,
so ``p`` comes first) by increasing ``d(p, .)``; ``L_inter(p)``: the items on the
other cameras by increasing ``d(p, .)``. ``N_intra(p, k)`` / ``N_inter(p, k)``
are their first ``k`` entries (fewer where the list is shorter).

**CKRNNs** (camera-aware k-reciprocal nearest neighbors). k-reciprocal sets are
found on each list separately and joined:

.. math::
    R_{intra}(p) = \{g \in N_{intra}(p, k^1_{intra} + 1) : p \in N_{intra}(g, k^1_{intra} + 1)\},

    R_{inter}(p) = \{g \in N_{inter}(p, k^1_{inter} + 1) : p \in N_{inter}(g, k^1_{inter} + 1)\},

    R_c(p) = R_{intra}(p) \cup R_{inter}(p).

The ``+ 1`` follows the authors' code (``k_reciprocal_neigh(rank, i, k)`` keeps
``rank[i, :k + 1]``): on the intra list it is ``p`` itself plus ``k1_intra``
neighbors, on the inter list (which never holds ``p``) ``k1_inter + 1`` items.
k-reciprocal re-ranking's expansion of the set by the ``k1/2``-reciprocal sets of
its members is *not* applied to CKRNNs (the authors' code runs it only when
CKRNNs are off).

**Encoding.** As in k-reciprocal re-ranking,
``V_pg = exp(-d(p, g)) / sum_{g' in R_c(p)} exp(-d(p, g'))`` for ``g`` in
``R_c(p)``, 0 elsewhere.

**CLQE** (camera-aware local query expansion). ``V_p`` becomes the mean of
``V_q`` over the ``k2_intra`` first entries of ``L_intra(p)`` (``p`` itself and
``k2_intra - 1`` same-camera neighbors) and the ``k2_inter`` first entries of
``L_inter(p)``:

.. math::
    V^{qe}_p = \frac{1}{|M(p)|} \sum_{q \in M(p)} V_q, \qquad
    M(p) = N_{intra}(p, k^2_{intra}) \cup N_{inter}(p, k^2_{inter}).

An item that is a neighbor of ``p``'s intra-camera *and* of its inter-camera
neighbors appears in several averaged rows, so it gets a larger weight: the
"reliable samples ... higher weights" of the paper.

**Distance.** Each row of ``V^qe`` sums to 1, so with ``m = sum_j min(V_pj, V_gj)``

.. math::
    d_J(p, g) = 1 - \frac{\sum_j \min(V_{pj}, V_{gj})}{\sum_j \max(V_{pj}, V_{gj})}
              = 1 - \frac{m}{2 - m}, \qquad
    d^*(p, g) = (1 - \lambda)\, d_J(p, g) + \lambda\, d(p, g).

**Defaults** (the re-ranking setting): ``k1_intra=5, k1_inter=20,
k2_intra=3, k2_inter=3`` are the argparse defaults of the authors' ``test.py``,
which their README's re-ranking commands use (``--rerank --ckrnns --clqe``);
``lam=0.3`` is hard-coded as ``lambda_value=0.3`` in their ``caj/utils/rerank.py``
(also k-reciprocal re-ranking's value). For clustering their README uses
``k2_intra=2, k2_inter=4``; that setting is not the default here.

**Readings chosen** (the paper's method section was not available to us, only
its abstract; the steps above follow the abstract and the authors'
``caj/utils/rerank.py``):

* Intra- and inter-camera lists hold only items of the same / other cameras.
  The authors rank ``d + 999 [same camera]`` (inter) or ``d + 999 [other
  camera]`` (intra), so where a camera holds fewer than ``k + 1`` items their
  lists spill over onto the other side; here such lists are just shorter, and
  CLQE averages over the rows that exist (``|M(p)|`` may be below
  ``k2_intra + k2_inter``). With every camera large enough the two agree.
* ``d`` is ``2 - 2 cos``, as in :func:`~reidgraph.rerank.k_reciprocal` with
  ``variant="unscaled"``. The authors' re-ranking squares the squared Euclidean
  distance they are given and divides each row by its maximum; that leaves
  every ranking (hence the CKRNNs and CLQE) unchanged but changes the weights
  ``exp(-d)`` and the ``lambda d`` term. (Not yet matched to their code, unlike
  k-reciprocal's row-max scaling.)

:func:`ca_jaccard` is the library's version: memory ``O(N k)``, built from the
k-reciprocal helpers (reciprocity on neighbor lists, sparse query expansion,
the inverted-index overlap), with the camera-restricted lists from a chunked
masked matmul. :func:`ca_jaccard_dense` is a plain loop over ``N x N``
matrices, written from the equations, for tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._checks import camera_ids, in_unit_interval, int_in_range
from ._common import joint_features
from .kreciprocal import KReciprocal, Overlaps, local_query_expansion, pair_distance, reciprocal_mask


@dataclass
class CAJaccard(KReciprocal):
    """CA-Jaccard distances of ``Q`` queries to ``G`` gallery items, produced chunk by chunk.

    The same state as :class:`~reidgraph.rerank.kreciprocal.KReciprocal`
    (``overlaps`` sums ``m = sum_j min(V_pj, V_gj)`` of the camera-aware
    encodings), so ``distance_chunks(chunk_size)`` yields ``[q, G]`` blocks of
    ``d* = (1 - lam) d_J + lam d`` and ``dense()`` all of them.
    """


def ca_jaccard(query: Any, gallery: Any, query_camids: Any, gallery_camids: Any, *, k1_intra: int = 5,
               k1_inter: int = 20, k2_intra: int = 3, k2_inter: int = 3, lam: float = 0.3,
               chunk_size: int = 1024) -> CAJaccard:
    r"""CA-Jaccard re-ranking with sparse encodings, memory ``O(N k)`` (see the module docstring).

    Args:
        query, gallery: ``[Q, D]`` and ``[G, D]`` features.
        query_camids, gallery_camids: ``[Q]`` and ``[G]`` integer camera ids of the queries and the gallery.
        k1_intra: CKRNN depth on the intra-camera list (``p`` and ``k1_intra``
            same-camera neighbors), ``1 <= k1_intra < Q + G``. Default 5.
        k1_inter: CKRNN depth on the inter-camera list (``k1_inter + 1`` items),
            ``1 <= k1_inter < Q + G``. Default 20.
        k2_intra: rows CLQE averages from the intra-camera list, ``p`` included,
            ``1 <= k2_intra <= k1_intra + 1``. Default 3.
        k2_inter: rows CLQE averages from the inter-camera list,
            ``0 <= k2_inter <= k1_inter + 1``. Default 3.
        lam: weight ``lambda`` of the original distance, in ``[0, 1]``. Default 0.3.
        chunk_size: rows processed at once by the ranking. Default 1024.

    Returns:
        :class:`CAJaccard`, whose ``distance_chunks()`` yields ``[q, G]`` blocks of ``d*``.
    """
    x, cams, Q, (k1_intra, k1_inter, k2_intra, k2_inter), lam = _check(
        query, gallery, query_camids, gallery_camids, k1_intra, k1_inter, k2_intra, k2_inter, lam)
    int_in_range("chunk_size", chunk_size, 1, 2**31)
    N = x.shape[0]
    intra, inter = _camera_lists(x, cams, k1_intra + 1, k1_inter + 1, chunk_size)

    # CKRNNs: reciprocal entries of either list; the two never share an item. A side with no entry at all
    # (the inter lists when every item is on one camera) is passed over: reciprocal_mask needs one.
    members = torch.cat([torch.where(reciprocal_mask(lists), lists, -1) if bool((lists >= 0).any()) else lists
                         for lists in (intra, inter)], dim=1)
    keep = members >= 0
    rows = torch.arange(N, device=x.device)[:, None].expand_as(members)[keep]
    cols = members[keep]
    weight = torch.exp(-pair_distance(x, rows, cols))
    weight /= torch.zeros(N, dtype=x.dtype, device=x.device).index_add_(0, rows, weight)[rows]

    # CLQE: mean over the first k2 entries of each list (-1 where a short list ends)
    clqe = torch.cat([intra[:, :k2_intra], inter[:, :k2_inter]], dim=1)
    rows, cols, weight = local_query_expansion(rows, cols, weight, clqe, N)
    return CAJaccard(query=x[:Q], gallery=x[Q:], overlaps=Overlaps.build(rows, cols, weight, Q, N), lam=lam)


def ca_jaccard_dense(query: Any, gallery: Any, query_camids: Any, gallery_camids: Any, *, k1_intra: int = 5,
                     k1_inter: int = 20, k2_intra: int = 3, k2_inter: int = 3, lam: float = 0.3) -> Tensor:
    """CA-Jaccard re-ranking written loop by loop from the equations, on ``N x N`` matrices.

    Memory ``O(N^2)``, Python loops over items: a reference for tests.

    Args:
        query, gallery, query_camids, gallery_camids, k1_intra, k1_inter, k2_intra, k2_inter, lam:
            as in :func:`ca_jaccard`.

    Returns:
        ``[Q, G]`` re-ranked distances ``d*``.
    """
    x, cams, Q, (k1_intra, k1_inter, k2_intra, k2_inter), lam = _check(
        query, gallery, query_camids, gallery_camids, k1_intra, k1_inter, k2_intra, k2_inter, lam)
    N = x.shape[0]
    d = (2 - 2 * x @ x.T).clamp_min(0)

    def ranking(p: int, same_camera: bool) -> list[int]:
        pool = torch.nonzero((cams == cams[p]) == same_camera).flatten()
        return pool[d[p, pool].argsort(stable=True)].tolist()

    L_intra = [ranking(p, True) for p in range(N)]
    L_inter = [ranking(p, False) for p in range(N)]

    V = torch.zeros(N, N, dtype=x.dtype, device=x.device)
    for p in range(N):
        R_c = [g for g in L_intra[p][:k1_intra + 1] if p in L_intra[g][:k1_intra + 1]]
        R_c += [g for g in L_inter[p][:k1_inter + 1] if p in L_inter[g][:k1_inter + 1]]
        w = torch.exp(-d[p, R_c])
        V[p, R_c] = w / w.sum()

    V_qe = torch.stack([V[L_intra[p][:k2_intra] + L_inter[p][:k2_inter]].mean(dim=0) for p in range(N)])

    d_J = torch.empty(Q, N - Q, dtype=x.dtype, device=x.device)
    for p in range(Q):  # against every gallery row g at once: 1 - sum_j min(V_pj, V_gj) / sum_j max(V_pj, V_gj)
        d_J[p] = 1 - torch.minimum(V_qe[p], V_qe[Q:]).sum(dim=1) / torch.maximum(V_qe[p], V_qe[Q:]).sum(dim=1)
    return (1 - lam) * d_J + lam * d[:Q, Q:]


def _check(query, gallery, query_camids, gallery_camids, k1_intra, k1_inter, k2_intra, k2_inter,
           lam) -> tuple[Tensor, Tensor, int, tuple[int, int, int, int], float]:
    """Validated ``(features [N, D] L2-normalised, camera ids [N], Q, (k...), lam)``."""
    x, Q, N = joint_features(query, gallery)
    cams = [camera_ids(ids, n, name, what, f"{name} is missing; pass one integer camera id per {what} vector "
                                          f"([{n}]): CA-Jaccard needs the cameras").to(x.device)
            for name, ids, n, what in (("query_camids", query_camids, Q, "query"),
                                       ("gallery_camids", gallery_camids, N - Q, "gallery"))]
    many = f"query + gallery hold {N} items, and {{}} must be smaller"
    k1_intra = int_in_range("k1_intra", k1_intra, 1, N - 1, many.format("k1_intra"))
    k1_inter = int_in_range("k1_inter", k1_inter, 1, N - 1, many.format("k1_inter"))
    ks = (k1_intra, k1_inter,
          int_in_range("k2_intra", k2_intra, 1, k1_intra + 1, "CLQE takes p and at most k1_intra same-camera rows"),
          int_in_range("k2_inter", k2_inter, 0, k1_inter + 1, "CLQE takes at most k1_inter + 1 other-camera rows"))
    lam = in_unit_interval("lam", lam)
    return x, torch.cat(cams), Q, ks, lam


def _camera_lists(x: Tensor, cams: Tensor, k_intra: int, k_inter: int, chunk_size: int) -> tuple[Tensor, Tensor]:
    """``N_intra(p, k_intra)`` and ``N_inter(p, k_inter)`` of every item, best first, ``-1`` past a list's end.

    One ``[chunk, N]`` similarity block at a time; the items of the other side
    are masked to ``-inf`` before ``topk``, and any ``-inf`` that ``topk`` still
    returns (a list shorter than ``k``) becomes ``-1``.
    """
    N = x.shape[0]
    out = (torch.empty(N, k_intra, dtype=torch.long, device=x.device),
           torch.empty(N, k_inter, dtype=torch.long, device=x.device))
    for start in range(0, N, chunk_size):
        sim = x[start:start + chunk_size] @ x.T
        other = cams[start:start + chunk_size, None] != cams[None]
        for lists, hide in zip(out, (other, ~other)):
            top, idx = sim.masked_fill(hide, float("-inf")).topk(lists.shape[1], dim=1)
            lists[start:start + chunk_size] = idx.masked_fill(top == float("-inf"), -1)
    return out
