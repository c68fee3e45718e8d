"""The label-free rule of ``reidgraph rerank``/``evaluate``: chosen on identities held out of the shared train files.

For each shared train file (CUHK03 OSNet, CUHK03 omz, Market-1501 OSNet), 20% of the identities (seed 0, as
``train-gnn``'s selection) are held out; their query/gallery follow the CUHK03-NP rule. Every candidate runs
on them with its defaults through ``reidgraph.rerank.rerank``, in one of three ways with camera ids:

* ``none``: the method gets none (it needs none);
* ``one``: every image on camera 0, as the rule runs where there are no ids (de-biasing then whitens by the
  whole gallery, GCR's cross-camera graph holds each item alone);
* ``ids``: the real ids.

The protocol always uses the ids to ignore same-camera matches. The rule takes, with ids (``ids`` rows) and
without (``none`` and ``one`` rows), the pipeline whose largest shortfall to the best row of its kind on any
file is smallest. Val is not read.

Example:
    REIDGRAPH_SHARED=../shared python benchmarks/label_free.py --out benchmarks/results/label_free_cpu2.json
"""
from __future__ import annotations

import sys
import time

from results_io import cpu, save
from shared_paths import TRAIN_FILES, shared_folder_and_out

CANDIDATES = {
    "none": ["cosine", "k-reciprocal", "ecn", "aqe", "gnn-rerank", "fusion-paper"],
    "one": ["debias+k-reciprocal", "debias+ecn", "debias+gnn-rerank", "gcrv", "debias+gcr+k-reciprocal",
            "debias+gcr+ecn"],
    "ids": ["ca-jaccard", "fusion+ecn", "fusion+ca-jaccard", "gcrv", "debias+k-reciprocal", "debias+ecn",
            "debias+gnn-rerank", "debias+ca-jaccard", "debias+fusion+ecn", "debias+gcr+k-reciprocal",
            "debias+gcr+ecn", "debias+gcr+ca-jaccard", "debias+gcr+gnn-rerank"],
}


def held_out_rows(path) -> list[dict]:
    """mAP and R1 of every candidate on the held-out identities of the train file at ``path``."""
    import torch

    from reidgraph.evaluation import evaluate_order
    from reidgraph.features import FeatureSet
    from reidgraph.rerank import rerank

    _, held = FeatureSet.load(path).hold_out_ids(0.2, seed=0)
    q, g = held.query_gallery()
    cams = {"none": (None, None), "ids": (q.camids, g.camids),
            "one": (torch.zeros(len(q), dtype=torch.long), torch.zeros(len(g), dtype=torch.long))}
    rows = []
    for mode, methods in CANDIDATES.items():
        for method in methods:
            start = time.perf_counter()
            ranking = rerank(method, q.feats, g.feats, query_camids=cams[mode][0], gallery_camids=cams[mode][1])
            m = evaluate_order(ranking.order_chunks(), q.pids, g.pids, q.camids, g.camids)
            rows.append({"method": method, "cameras": mode, "mAP": m.mAP, "rank1": m.rank(1),
                         "seconds": time.perf_counter() - start, "query": len(q), "gallery": len(g)})
    return rows


def minimax(results: dict[str, list[dict]], modes: tuple[str, ...]) -> tuple[str, str, float]:
    """``(method, mode, shortfall)``: the row of ``modes`` whose largest mAP shortfall to the best such row of
    each file is smallest."""
    keys = [(r["method"], r["cameras"]) for r in next(iter(results.values())) if r["cameras"] in modes]
    def shortfall(key):
        worst = 0.0
        for rows in results.values():
            mine = {(r["method"], r["cameras"]): r["mAP"] for r in rows if r["cameras"] in modes}
            worst = max(worst, max(mine.values()) - mine[key])
        return worst
    best = min(keys, key=shortfall)
    return best[0], best[1], shortfall(best)


def main() -> int:
    folder, out = shared_folder_and_out(__doc__)
    results = {name: held_out_rows(folder / "features" / f"{file}_train.npz") for name, file in TRAIN_FILES.items()}
    first = {name: rows[0] for name, rows in results.items()}
    print(f"label-free candidates on held-out train identities (CUHK03-NP rule), defaults; {cpu()}; R1 / mAP")
    print(f"{'method':<28}{'cameras':>8}" + "".join(f"{name:>24}" for name in results))
    print(f"{'':<36}" + "".join(f"{first[n]['query']:>10} q /{first[n]['gallery']:>5} g  " for n in results))
    for i, row in enumerate(next(iter(results.values()))):
        cells = [rows[i] for rows in results.values()]
        print(f"{row['method']:<28}{row['cameras']:>8}"
              + "".join(f"{100 * c['rank1']:12.1f} /{100 * c['mAP']:5.1f}    " for c in cells))
    rule = {"with camera ids": minimax(results, ("ids",)), "without": minimax(results, ("none", "one"))}
    for case, (method, mode, gap) in rule.items():
        print(f"rule {case}: {method} ({mode}); at most {100 * gap:.2f} mAP below the best such row of any file")
    save(out, {"machine": cpu(), "rule": rule, "rows": [{**r, "features": name} for name, rows in results.items()
                                                        for r in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
