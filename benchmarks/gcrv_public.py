"""The public GCRV code (``WesleyZhang1991/GCN_rerank``, ``gcrv.py`` for image datasets, ``config/market.yml``),
transcribed step by step in numpy float64: the reference that ``reidgraph.rerank.gcrv`` is checked against
(``tests/rerank/test_gcr.py``, ``benchmarks/gcrv_agreement.py``).

One change, so that the reference is deterministic: its ``np.argsort`` (not stable) is a stable argsort here,
so exact ties go to the lower index. Everything else as the public code does it: features L2-normalised
(``get_data``); PVG with per-camera statistics of the gallery (``compute_P2``: ``P_c = inv(X_c^T X_c +
n_c la I)`` of the unnormalised-mean gallery rows ``X_c``, ``neg_c`` their mean) applied as ``P_c (x - neg_c)``
then L2-normalised (``mergesetfeat1_notrk``, operation ``P_neg``); GCR (``mergesetfeat4``, mode ``nonsym``)
over queries and gallery together for ``GAL_ROUND`` rounds; distances ``ComputeEuclid(..., fg_sqrt=1)``,
which returns ``|q - g|^2 / 2``.
"""
from __future__ import annotations

import numpy as np

MARKET = {"la": 10.0, "beta1": 0.2, "beta2": 0.2, "scale": 0.3, "k1": 15, "k2": 3, "rounds": 3}


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, ord=2, axis=1, keepdims=True)


def pvg(prb: np.ndarray, prb_cams: np.ndarray, gal: np.ndarray, gal_cams: np.ndarray, la: float):
    """``compute_P2`` + ``mergesetfeat1_notrk`` (operation ``P_neg``) on unit rows."""
    P, neg = {}, {}
    for cam in np.unique(gal_cams):
        cur = gal[gal_cams == cam]
        neg[cam] = cur.mean(axis=0)
        P[cam] = np.linalg.inv(cur.T @ cur + cur.shape[0] * la * np.eye(gal.shape[1]))

    def apply(feats, cams):
        out = np.stack([P[c] @ (f - neg[c]) for f, c in zip(feats, cams)])
        return unit(out)

    return apply(prb, prb_cams), apply(gal, gal_cams)


def gcr_round(X: np.ndarray, cams: np.ndarray, k1: int, k2: int, beta1: float, beta2: float,
              scale: float) -> np.ndarray:
    """``mergesetfeat4``, mode ``nonsym``: the global graph on ``sim``, the cross-camera one on ``sim`` with
    each row's same-camera entries but its own set to -2."""
    sim = X @ X.T

    def propagated(sim: np.ndarray, k: int, beta: float) -> np.ndarray:
        rank = np.argsort(-sim, axis=1, kind="stable")
        S = np.zeros(sim.shape)
        for i in range(len(X)):
            S[i, rank[i, :k]] = np.exp(sim[i, rank[i, :k]] / beta)
            S[i, i] = np.exp(sim[i, i] / beta)
        L = np.outer(np.sqrt(1.0 / S.sum(axis=1)), np.sqrt(1.0 / S.sum(axis=0))) * S
        return L @ X

    global_X = propagated(sim, k1, beta1)
    for i in range(len(X)):
        tmp = sim[i, i]
        sim[i, cams == cams[i]] = -2
        sim[i, i] = tmp
    X = scale * propagated(sim, k2, beta2) + (1 - scale) * global_X
    return X / np.linalg.norm(X, ord=2, axis=1, keepdims=True)


def gcrv(prb, prb_cams, gal, gal_cams, *, pvg_enabled: bool = True, la: float = 10.0, beta1: float = 0.2,
         beta2: float = 0.2, scale: float = 0.3, k1: int = 15, k2: int = 3, rounds: int = 3) -> np.ndarray:
    """``gcrv_image`` (``pvg_enabled=False``: GCR alone): ``[Q, G]`` distances ``|q - g|^2 / 2``."""
    prb, gal = unit(np.asarray(prb, dtype=np.float64)), unit(np.asarray(gal, dtype=np.float64))
    prb_cams, gal_cams = np.asarray(prb_cams), np.asarray(gal_cams)
    if pvg_enabled:
        prb, gal = pvg(prb, prb_cams, gal, gal_cams, la)
    data, cams = np.vstack([prb, gal]), np.concatenate([prb_cams, gal_cams])
    for _ in range(rounds):
        data = gcr_round(data, cams, k1, k2, beta1, beta2, scale)
    q, g = data[:len(prb)], data[len(prb):]
    squared = np.maximum(-2 * q @ g.T + (q**2).sum(1)[:, None] + (g**2).sum(1)[None], 0)
    return squared / 2
