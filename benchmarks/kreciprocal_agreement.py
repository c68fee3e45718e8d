r"""How closely our k-reciprocal re-ranking ranks as the original public code, on the shared real features.

On each shared feature set (CUHK03-labeled val features of two backbones, under ``--shared``), every
query's gallery is ranked by:

- the original public ``re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)`` of Zhong et
  al. (CVPR 2017), as shipped in torchreid (``torchreid/utils/rerank.py``) and fast-reid, transcribed
  below in numpy float32 (it squares its input and divides each row by its maximum), fed with
  (a) Zhong's convention: the Euclidean distance of the L2-normalised features, so that the code works
  on ``2 - 2 cos``; (b) torchreid's default engine: the squared Euclidean distance of the L2-normalised
  features, which the code squares again, ``(2 - 2 cos)^2``; (c) fast-reid's cosine distance
  ``1 - cos``, squared to ``(1 - cos)^2``, the same as (b) once each row is divided by its maximum;
- our sparse :func:`reidgraph.rerank.k_reciprocal` (float32) in each of its variants: ``"torchreid"``
  (the default, ``((2 - 2 cos) / row max)^2``), ``"zhong"`` (``(2 - 2 cos) / row max``) and ``"unscaled"``
  (``2 - 2 cos``);
- no re-ranking, ``2 - 2 cos``, for reference.

Every ranking is a stable argsort of its ``[Q, G]`` distances. Printed: the top-10 positional agreement
of each with each original,

.. math::
    A = \frac{|\{(q, r) : r < 10,\ o_{qr} = o'_{qr}\}|}{10 Q}

(``o_qr``: the gallery index at 0-based rank ``r`` of query ``q``), and the mAP / rank-1 of each ranking
under the standard protocol (:func:`reidgraph.evaluation.evaluate_order`).

Example:
    python benchmarks/kreciprocal_agreement.py --shared SHARED --out benchmarks/results/kreciprocal_agreement_cpu2.json
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from results_io import save
from shared_paths import EPILOG, shared

from reidgraph.evaluation import evaluate_order
from reidgraph.features import FeatureSet
from reidgraph.rerank import k_reciprocal
from reidgraph.rerank.kreciprocal import VARIANTS

FEATURE_SETS = {"osnet_x0_25_msmt17": "features/osnet_x0_25_msmt17/cuhk03_labeled_val.npz",
                "omz_0277": "features/omz_0277/cuhk03_labeled_val.npz"}
CONVENTIONS = {"a": "Euclidean distance input (Zhong et al.'s feature script)",
               "b": "squared Euclidean distance input (torchreid's engine)",
               "c": "cosine distance input (fast-reid's)"}
TOP = 10


def original_re_ranking(q_g_dist: np.ndarray, q_q_dist: np.ndarray, g_g_dist: np.ndarray, k1: int, k2: int,
                        lambda_value: float) -> np.ndarray:
    """The original public k-reciprocal re-ranking, step by step in numpy float32.

    ``D = concat(all-vs-all input) ** 2``, then ``D = transpose(D / max(D, axis=0))`` (each row divided
    by its maximum on a symmetric input); k-reciprocal sets on ``argsort(D)[:, :k1 + 1]``, each expanded
    by the ``round(k1/2)``-reciprocal sets of its members that lie more than 2/3 inside it;
    ``V_ix = exp(-D_ix)`` on the expanded set, normalised to sum 1; ``V_i = mean(V[rank_i[:k2]])`` unless
    ``k2 == 1``; ``d_J = 1 - m / (2 - m)``, ``m = sum_j min(V_ij, V_gj)``; ``d* = (1 - lambda) d_J + lambda D``.

    Args:
        q_g_dist: ``[Q, G]``, q_q_dist: ``[Q, Q]``, g_g_dist: ``[G, G]`` input distances.
        k1, k2, lambda_value: the method's parameters.

    Returns:
        ``[Q, G]`` float32 re-ranked distances.
    """
    dist = np.concatenate([np.concatenate([q_q_dist, q_g_dist], axis=1),
                           np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0)
    dist = np.power(dist, 2).astype(np.float32)
    dist = np.transpose(dist / np.max(dist, axis=0))
    Q, N = q_g_dist.shape[0], dist.shape[0]
    rank = np.argsort(dist).astype(np.int32)
    half = int(np.around(k1 / 2))

    def reciprocal(i: int, k: int) -> np.ndarray:
        forward = rank[i, :k + 1]
        return forward[np.where(rank[forward, :k + 1] == i)[0]]

    V = np.zeros_like(dist, dtype=np.float32)
    for i in range(N):
        R = reciprocal(i, k1)
        expanded = R
        for candidate in R:
            R_c = reciprocal(candidate, half)
            if len(np.intersect1d(R_c, R)) > 2 / 3 * len(R_c):
                expanded = np.append(expanded, R_c)
        expanded = np.unique(expanded)
        weight = np.exp(-dist[i, expanded])
        V[i, expanded] = weight / np.sum(weight)
    if k2 != 1:
        V = np.stack([np.mean(V[rank[i, :k2]], axis=0) for i in range(N)]).astype(np.float32)

    inverted = [np.where(V[:, j] != 0)[0] for j in range(N)]
    jaccard = np.zeros((Q, N), dtype=np.float32)
    for i in range(Q):
        m = np.zeros(N, dtype=np.float32)
        for j in np.where(V[i] != 0)[0]:
            m[inverted[j]] += np.minimum(V[i, j], V[inverted[j], j])
        jaccard[i] = 1 - m / (2 - m)
    return (jaccard * (1 - lambda_value) + dist[:Q] * lambda_value)[:, Q:]


def squared_euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[A, B]`` float32 ``||a_i||^2 + ||b_j||^2 - 2 a_i . b_j``, clamped at 0."""
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0)


def original_order(q: np.ndarray, g: np.ndarray, convention: str, params: dict) -> np.ndarray:
    """``[Q, G]`` ranking by the original code, its input in ``convention`` (a key of :data:`CONVENTIONS`)."""
    inputs = [squared_euclidean(a, b) for a, b in ((q, g), (q, q), (g, g))]
    if convention == "a":
        inputs = [np.sqrt(d) for d in inputs]
    if convention == "c":
        inputs = [np.maximum(1 - a @ b.T, 0) for a, b in ((q, g), (q, q), (g, g))]
    final = original_re_ranking(*inputs, params["k1"], params["k2"], params["lam"])
    return np.argsort(final, axis=1, kind="stable")


def our_order(query: torch.Tensor, gallery: torch.Tensor, variant: str, params: dict) -> np.ndarray:
    """``[Q, G]`` ranking by our sparse :func:`k_reciprocal`."""
    result = k_reciprocal(query, gallery, **params, variant=variant)
    return torch.cat([c.argsort(dim=1, stable=True) for c in result.distance_chunks()]).numpy()


def agreement(order: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of the ``(query, rank < TOP)`` positions holding the same gallery index."""
    return float((order[:, :TOP] == reference[:, :TOP]).mean())


def measure(path: Path, params: dict) -> dict:
    """Agreement with both originals and mAP / rank-1 of every ranking, on one feature set."""
    query, gallery = FeatureSet.load(path).query_gallery()
    qf, gf = query.feats.float(), gallery.feats.float()
    q, g = (torch.nn.functional.normalize(f, dim=1).numpy() for f in (qf, gf))
    orders = {f"ours, sparse, variant={v!r}": our_order(qf, gf, v, params) for v in VARIANTS}
    orders |= {f"original, ({c}) {what}": original_order(q, g, c, params) for c, what in CONVENTIONS.items()}
    orders["no re-ranking, 2 - 2 cos"] = np.argsort(squared_euclidean(q, g), axis=1, kind="stable")
    references = {c: orders[f"original, ({c}) {what}"] for c, what in CONVENTIONS.items()}
    labels = (query.pids, gallery.pids, query.camids, gallery.camids)
    rankings = {}
    for name, order in orders.items():
        m = evaluate_order(order, *labels)
        rankings[name] = {"agreement_top10": {c: agreement(order, ref) for c, ref in references.items()},
                          "mAP": m.mAP, "rank1": m.rank(1)}
    return {"path": str(path), "Q": len(qf), "G": len(gf), "rankings": rankings}


def print_table(results: dict) -> None:
    params = results["params"]
    print(f"k-reciprocal re-ranking vs the original public code (k1={params['k1']}, k2={params['k2']}, "
          f"lambda={params['lam']}), CUHK03-labeled val features, L2-normalised")
    print(f"top-10 agreement: fraction of (query, rank < {TOP}) positions with the same gallery index as the "
          "original fed with")
    for c, what in CONVENTIONS.items():
        print(f"  ({c}) {what}")
    print("mAP / R1: standard protocol (same-camera matches of the query's identity ignored)")
    width = max(len(name) for r in results["feature_sets"].values() for name in r["rankings"])
    for set_name, r in results["feature_sets"].items():
        print(f"\n{set_name}: Q={r['Q']}, G={r['G']}, N={r['Q'] + r['G']}")
        print(f"  {'ranking':<{width}}" + "".join(f"  {'vs (' + c + ')':>7}" for c in CONVENTIONS)
              + f"  {'mAP':>7}  {'R1':>7}")
        for name, row in r["rankings"].items():
            agree = row["agreement_top10"]
            print(f"  {name:<{width}}" + "".join(f"  {agree[c]:7.4f}" for c in CONVENTIONS)
                  + f"  {row['mAP']:7.4f}  {row['rank1']:7.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=EPILOG)
    parser.add_argument("--shared", type=Path, default=shared(),
                        help="the shared folder holding features/ (required where REIDGRAPH_SHARED is unset)")
    parser.add_argument("--k1", type=int, default=20, help="k-reciprocal neighbourhood size (default: 20)")
    parser.add_argument("--k2", type=int, default=6, help="query expansion neighbours (default: 6)")
    parser.add_argument("--lam", type=float, default=0.3, help="weight of the original distance (default: 0.3)")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    if args.shared is None:
        parser.error("--shared: give the shared folder holding features/, or set REIDGRAPH_SHARED")
    params = {"k1": args.k1, "k2": args.k2, "lam": args.lam}
    results = {"params": params, "top": TOP, "conventions": CONVENTIONS,
               "feature_sets": {name: measure(args.shared / rel, params) for name, rel in FEATURE_SETS.items()}}
    print_table(results)
    save(args.out, results)


if __name__ == "__main__":
    main()
