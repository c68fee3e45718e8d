r"""The public k-reciprocal re-ranking codes, transcribed step by step in numpy: the one reference that
:func:`reidgraph.rerank.k_reciprocal` is checked against (``tests/rerank/test_kreciprocal.py``,
``benchmarks/kreciprocal_agreement.py``).

Two codes run in practice, both Zhong et al.'s algorithm (CVPR 2017), differing in their inputs:

- :func:`re_ranking`: ``re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3)`` of
  ``zhunzhong07/person-re-ranking`` (``python-version/re_ranking_ranklist.py``), shipped unchanged as
  torchreid's ``torchreid/utils/rerank.py``. It takes distance matrices, squares them and divides each row
  by its maximum (``transpose(D / max(D, axis=0))`` of a symmetric ``D``), then ranks all ``N = Q + G``
  items by that distance (``argsort``: lists of all ``N``).
- :func:`fastreid_rerank`: what fast-reid's evaluator computes with re-ranking on
  (``ReidEvaluator.evaluate`` in ``fastreid/evaluation/reid_evaluation.py``, ``TEST.RERANK.ENABLED``). It
  never calls ``fastreid/evaluation/rerank.py``: it calls ``build_dist(q, g, metric="jaccard", k1, k2)``
  of ``fastreid/utils/compute_dist.py``, i.e. :func:`compute_jaccard_distance` on the features
  (L2-normalised first where ``TEST.METRIC == "cosine"``, the default), and adds ``lambda`` times
  ``build_dist(q, g, TEST.METRIC)``, the cosine distance ``1 - cos``. Defaults ``K1=20, K2=6,
  LAMBDA=0.3`` (``fastreid/config/defaults.py``).

Both share the encoding (:func:`encodings`) and the Jaccard distance (:func:`jaccard`). The transcriptions
compute in the dtype of their input (the public codes use float32; pass float64 for tight comparisons), and
every argsort is stable, so exact ties go to the lower index (numpy's default argsort and faiss give no
such promise).
"""
from __future__ import annotations

import numpy as np


def reciprocal(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    """``R(i, k)``: the items of ``rank[i, :k + 1]`` whose own list ``rank[j, :k + 1]`` holds ``i``.

    ``rank`` is ``[N, L]``, each row's items by increasing distance (the item itself first); where
    ``L <= k`` the lists hold ``L`` items, as in fast-reid, whose search returns ``L = k1`` columns.
    """
    forward = rank[i, :k + 1]
    return forward[(rank[forward, :k + 1] == i).any(axis=1)]


def encodings(rank: np.ndarray, dist: np.ndarray, k1: int, k2: int) -> np.ndarray:
    r"""``[N, N]`` encodings ``V`` after local query expansion.

    ``R*(i)``: ``R(i, k1)`` joined with each ``R(c, round(k1 / 2))``, ``c`` in ``R(i, k1)``, of which
    more than 2/3 lies in ``R(i, k1)``; ``V_ij = exp(-dist_ij) / sum_{j' in R*(i)} exp(-dist_ij')`` on
    ``R*(i)``, 0 elsewhere; then, unless ``k2 == 1``, row ``i`` becomes the mean of the rows
    ``rank[i, :k2]``.

    Args:
        rank: ``[N, L]`` ranked lists, as in :func:`reciprocal`.
        dist: ``[N, N]`` the distance the weights are taken of.
        k1, k2: the method's parameters.
    """
    N = rank.shape[0]
    half = int(np.around(k1 / 2))
    V = np.zeros((N, N), dtype=dist.dtype)
    for i in range(N):
        R = reciprocal(rank, i, k1)
        expanded = R
        for c in R:
            R_c = reciprocal(rank, c, half)
            if len(np.intersect1d(R_c, R)) > 2 / 3 * len(R_c):
                expanded = np.append(expanded, R_c)
        expanded = np.unique(expanded)
        weight = np.exp(-dist[i, expanded])
        V[i, expanded] = weight / weight.sum()
    if k2 == 1:
        return V
    return np.stack([V[rank[i, :k2]].mean(axis=0) for i in range(N)])


def jaccard(V: np.ndarray, rows: int) -> np.ndarray:
    """``[rows, N]`` ``d_J = 1 - m / (2 - m)``, ``m = sum_j min(V_ij, V_gj)``, of the first ``rows`` rows
    (each row of ``V`` sums to 1, so ``sum_j max = 2 - m``)."""
    m = np.stack([np.minimum(V[i], V).sum(axis=1) for i in range(rows)])
    return 1 - m / (2 - m)


def re_ranking(q_g_dist: np.ndarray, q_q_dist: np.ndarray, g_g_dist: np.ndarray, k1: int = 20, k2: int = 6,
               lambda_value: float = 0.3) -> np.ndarray:
    r"""``re_ranking`` of zhunzhong07/person-re-ranking and torchreid, on distance matrices.

    ``D = (all-vs-all input)^2``, each row divided by its maximum; ``rank = argsort(D)``;
    ``d* = (1 - lambda) d_J + lambda D``.

    Args:
        q_g_dist: ``[Q, G]``, q_q_dist: ``[Q, Q]``, g_g_dist: ``[G, G]`` input distances.
        k1, k2, lambda_value: the method's parameters.

    Returns:
        ``[Q, G]`` re-ranked distances.
    """
    dist = np.block([[q_q_dist, q_g_dist], [q_g_dist.T, g_g_dist]]) ** 2
    dist = (dist / dist.max(axis=0)).T
    Q = q_g_dist.shape[0]
    V = encodings(np.argsort(dist, axis=1, kind="stable"), dist, k1, k2)
    return ((1 - lambda_value) * jaccard(V, Q) + lambda_value * dist[:Q])[:, Q:]


def squared_euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[A, B]`` ``||a_i||^2 + ||b_j||^2 - 2 a_i . b_j``, as torchreid's ``euclidean_squared_distance`` and
    fast-reid compute it (not clamped: rounding may leave it slightly below 0)."""
    return (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T


# The distances each caller of ``re_ranking`` feeds it, of L2-normalised features ``[n, D]``, ``[m, D]``:
# Zhong et al.'s feature script (Euclidean), torchreid's engine with normalize_feature=True (squared
# Euclidean) and with dist_metric="cosine" (1 - cos).
INPUTS = {"euclidean": lambda a, b: np.sqrt(np.maximum(squared_euclidean(a, b), 0)),
          "squared_euclidean": squared_euclidean,
          "cosine": lambda a, b: 1 - a @ b.T}


def compute_jaccard_distance(features: np.ndarray, k1: int = 20, k2: int = 6) -> np.ndarray:
    r"""fast-reid's ``compute_jaccard_distance`` (``fastreid/utils/compute_dist.py``): ``[N, N]`` ``d_J``.

    The ``k1`` nearest items of each (faiss exact search, squared Euclidean distance, the item itself
    first) are its only ranked list, so ``R(i, k1)`` is taken within ``k1`` items, not ``k1 + 1``; the
    weights are ``softmax(-||x_i - x_j||^2)`` over ``R*(i)``, with no squaring and no row division; local
    query expansion over those lists' first ``k2``; negative ``d_J`` (rounding) set to 0.
    """
    dist = squared_euclidean(features, features)
    rank = np.argsort(dist, axis=1, kind="stable")[:, :k1]
    d_J = jaccard(encodings(rank, dist, k1, k2), features.shape[0])
    return np.maximum(d_J, 0)


def fastreid_rerank(q_feat: np.ndarray, g_feat: np.ndarray, k1: int = 20, k2: int = 6,
                    lambda_value: float = 0.3) -> np.ndarray:
    r"""fast-reid's ``ReidEvaluator.evaluate`` with ``TEST.RERANK.ENABLED`` and ``TEST.METRIC = "cosine"``.

    ``q, g`` L2-normalised; ``d* = (1 - lambda) d_J(q, g) + lambda (1 - cos(q, g))``, ``d_J`` from
    :func:`compute_jaccard_distance` of the joined features.

    Args:
        q_feat: ``[Q, D]``, g_feat: ``[G, D]`` features.
        k1, k2, lambda_value: ``TEST.RERANK.K1``, ``K2``, ``LAMBDA``.

    Returns:
        ``[Q, G]`` re-ranked distances.
    """
    q, g = (f / np.linalg.norm(f, axis=1, keepdims=True) for f in (q_feat, g_feat))
    Q = q.shape[0]
    d_J = compute_jaccard_distance(np.concatenate([q, g]), k1, k2)[:Q, Q:]
    return d_J * (1 - lambda_value) + (1 - q @ g.T) * lambda_value
