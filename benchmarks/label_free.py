"""Which method to use without identity labels: every label-free method on identities held out of train.

For each feature folder, 20% of the train identities (seed 0, as benchmarks/recipe.py) are held
out; their query/gallery follow the CUHK03-NP rule. Each method of the registry that needs no
trained model runs on them with its defaults, through ``reidgraph.rerank.rerank``, with and
without the camera ids it may use. Val is not read: the README's advice on which method to pick
without labels comes from this table.

Example:
    python benchmarks/label_free.py SHARED/features/osnet_x0_25_msmt17 SHARED/features/omz_0277 \
        --out benchmarks/results/label_free_cpu2.json
"""
from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

from results_io import save
from shared_paths import folders_and_out

METHODS = ["cosine", "fusion-paper", "k-reciprocal", "ecn", "aqe", "gnn-rerank", "fusion-paper+k-reciprocal",
           "fusion-paper+ecn", "fusion", "ca-jaccard", "fusion+ca-jaccard", "fusion+ecn"]


def held_out_rows(folder: Path) -> list[dict]:
    """R1 / mAP of every method of :data:`METHODS` on the held-out train identities of ``folder``."""
    from reidgraph.engine.pipeline import score
    from reidgraph.features import FeatureSet
    from reidgraph.rerank import needs_cameras, rerank

    _, held = FeatureSet.load(folder / "cuhk03_labeled_train.npz").hold_out_ids(0.2, seed=0)
    q, g = held.query_gallery()
    rows = []
    for method in METHODS:
        start = time.perf_counter()
        ranking = rerank(method, q.feats, g.feats, query_camids=q.camids, gallery_camids=g.camids)
        row = score(method, ranking, q, g, 0.0)
        rows.append({**row, "features": folder.name, "cameras": needs_cameras(method),
                     "seconds": time.perf_counter() - start, "query": len(q), "gallery": len(g)})
    return rows


def main() -> int:
    folders, out = folders_and_out(__doc__, "cuhk03_labeled_train.npz")
    results = {f.name: held_out_rows(f) for f in folders}
    first = next(iter(results.values()))[0]
    print(f"label-free methods on held-out train identities ({first['query']} q / {first['gallery']} g, "
          f"CUHK03-NP rule), defaults; {platform.machine()}; R1 / mAP")
    print(f"{'method':<28}{'cameras':>8}" + "".join(f"{name:>24}" for name in results))
    for i, method in enumerate(METHODS):
        cells = [rows[i] for rows in results.values()]
        print(f"{method:<28}{'yes' if cells[0]['cameras'] else '':>8}"
              + "".join(f"{100 * c['rank1']:12.1f} /{100 * c['mAP']:5.1f}    " for c in cells))
    save(out, {"machine": platform.machine(), "rows": [r for rows in results.values() for r in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
