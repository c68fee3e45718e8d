r"""How closely our k-reciprocal re-ranking ranks as the public codes, on the shared real features.

On each shared val feature set (CUHK03-labeled through two backbones, Market-1501 through OSNet, under
``--shared``), every query's gallery is ranked by:

- the public codes, as transcribed in numpy float32 in ``kreciprocal_public.py`` (the one reference, which
  the tests use too), on L2-normalised features:
  (a) Zhong et al.'s ``re_ranking`` fed Euclidean distances, as their feature script does, so that the code
  works on ``2 - 2 cos``; (b) the same ``re_ranking`` as torchreid's engine runs it with
  ``normalize_feature=True``: squared Euclidean distances, which the code squares again, ``(2 - 2 cos)^2``;
  (c) torchreid's engine with ``dist_metric="cosine"``: ``(1 - cos)^2``, the same as (b) once each row is
  divided by its maximum; (d) fast-reid's evaluator, ``compute_jaccard_distance`` plus ``lambda (1 - cos)``;
- our sparse :func:`reidgraph.rerank.k_reciprocal` (float32) in each of its variants: ``"torchreid"``
  (the default, ``((2 - 2 cos) / row max)^2``), ``"zhong"`` (``(2 - 2 cos) / row max``), ``"fastreid"`` and
  ``"unscaled"`` (``2 - 2 cos``);
- no re-ranking, ``2 - 2 cos``, and, for reference, the two camera-aware re-rankers people compare with,
  GCRV and CA-Jaccard (:func:`reidgraph.rerank.rerank`, their papers' defaults).

Every ranking is a stable argsort of its ``[Q, G]`` distances. Printed: the top-10 positional agreement
of each with each public code,

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
from kreciprocal_public import INPUTS, fastreid_rerank, re_ranking
from results_io import cpu, save
from shared_paths import EPILOG, shared

from reidgraph.evaluation import evaluate_order
from reidgraph.features import FeatureSet
from reidgraph.rerank import k_reciprocal, rerank
from reidgraph.rerank.kreciprocal import VARIANTS

FEATURE_SETS = {"osnet_x0_25_msmt17": "features/osnet_x0_25_msmt17/cuhk03_labeled_val.npz",
                "omz_0277": "features/omz_0277/cuhk03_labeled_val.npz",
                "market1501_osnet_x0_25_msmt17": "features/osnet_x0_25_msmt17/market1501_val.npz"}
# Camera-aware re-rankers printed beside, for reference: row name -> registry method.
REFERENCES = {"GCRV": "gcrv", "CA-Jaccard": "ca-jaccard"}
CONVENTIONS = {"a": "re_ranking, Euclidean distance input (Zhong et al.'s feature script)",
               "b": "re_ranking, squared Euclidean distance input (torchreid's engine, normalize_feature=True)",
               "c": "re_ranking, cosine distance input (torchreid's engine, dist_metric='cosine')",
               "d": "compute_jaccard_distance + lambda (1 - cos) (fast-reid's evaluator)"}
TOP = 10


def public_order(q: np.ndarray, g: np.ndarray, convention: str, params: dict) -> np.ndarray:
    """``[Q, G]`` ranking by the public code of ``convention`` (a key of :data:`CONVENTIONS`), on the
    normalised float32 features ``q``, ``g``."""
    k1, k2, lam = params["k1"], params["k2"], params["lam"]
    if convention == "d":
        final = fastreid_rerank(q, g, k1, k2, lam)
    else:
        distance = INPUTS[{"a": "euclidean", "b": "squared_euclidean", "c": "cosine"}[convention]]
        final = re_ranking(distance(q, g), distance(q, q), distance(g, g), k1, k2, lam)
    return np.argsort(final, axis=1, kind="stable")


def our_order(query: torch.Tensor, gallery: torch.Tensor, variant: str, params: dict) -> np.ndarray:
    """``[Q, G]`` ranking by our sparse :func:`k_reciprocal`."""
    result = k_reciprocal(query, gallery, **params, variant=variant)
    return torch.cat([c.argsort(dim=1, stable=True) for c in result.distance_chunks()]).numpy()


def agreement(order: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of the ``(query, rank < TOP)`` positions holding the same gallery index."""
    return float((order[:, :TOP] == reference[:, :TOP]).mean())


def measure(path: Path, params: dict) -> dict:
    """Agreement with each public code and mAP / rank-1 of every ranking, on one feature set."""
    query, gallery = FeatureSet.load(path).query_gallery()
    qf, gf = query.feats.float(), gallery.feats.float()
    q, g = (torch.nn.functional.normalize(f, dim=1).numpy() for f in (qf, gf))
    orders = {f"ours, sparse, variant={v!r}": our_order(qf, gf, v, params) for v in VARIANTS}
    orders |= {f"public, ({c}) {what}": public_order(q, g, c, params) for c, what in CONVENTIONS.items()}
    orders["no re-ranking, 2 - 2 cos"] = np.argsort(2 - 2 * q @ g.T, axis=1, kind="stable")
    for name, method in REFERENCES.items():
        ranking = rerank(method, qf, gf, query_camids=query.camids, gallery_camids=gallery.camids)
        orders[name] = torch.cat(list(ranking.order_chunks())).numpy()
    references = {c: orders[f"public, ({c}) {what}"] for c, what in CONVENTIONS.items()}
    labels = (query.pids, gallery.pids, query.camids, gallery.camids)
    rankings = {}
    for name, order in orders.items():
        m = evaluate_order(order, *labels)
        rankings[name] = {"agreement_top10": {c: agreement(order, ref) for c, ref in references.items()},
                          "mAP": m.mAP, "rank1": m.rank(1)}
    return {"path": str(path), "Q": len(qf), "G": len(gf), "rankings": rankings}


def print_table(results: dict) -> None:
    params = results["params"]
    print(f"k-reciprocal re-ranking vs the public codes (k1={params['k1']}, k2={params['k2']}, "
          f"lambda={params['lam']}), shared val features, L2-normalised; {results['cpu']}")
    print(f"top-10 agreement: fraction of (query, rank < {TOP}) positions with the same gallery index as the "
          "public code")
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
    parser.add_argument("--k1", type=int, default=20, help="k-reciprocal neighborhood size (default: 20)")
    parser.add_argument("--k2", type=int, default=6, help="query expansion neighbors (default: 6)")
    parser.add_argument("--lam", type=float, default=0.3,
                        help="Zhong et al.'s lambda, the weight of the original distance (default: 0.3)")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    if args.shared is None:
        parser.error("--shared: give the shared folder holding features/, or set REIDGRAPH_SHARED")
    params = {"k1": args.k1, "k2": args.k2, "lam": args.lam}
    results = {"cpu": cpu(), "params": params, "top": TOP, "conventions": CONVENTIONS,
               "feature_sets": {name: measure(args.shared / rel, params) for name, rel in FEATURE_SETS.items()}}
    print_table(results)
    save(args.out, results)


if __name__ == "__main__":
    main()
