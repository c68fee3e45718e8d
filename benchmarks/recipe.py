"""How the default stage-2 recipe was chosen: on identities held out inside the train split, never on val.

For each feature folder, 20% of the train identities (seed 0) are held out; their query/gallery
follow the CUHK03-NP rule. On them: the FEN ranking, training-free fusion on camera-aware graphs
at several λ (the graph choice), CA-Jaccard for reference, and the FFGNN trained on the other 80%
with the default recipe, alone and followed by ECN on its fused features (the composition
benchmarks/run.py reports on val). Val is not read.

Example:
    python benchmarks/recipe.py SHARED/features/osnet_x0_25_msmt17 SHARED/features/omz_0277 \
        --out benchmarks/results/recipe_cpu2.json
"""
from __future__ import annotations

import argparse
import multiprocessing
import platform
import sys
from pathlib import Path

from results_io import save
from shared_paths import add_feature_folders, feature_folders

ROWS = ["FEN", *(f"training-free, camera-aware, lam={lam}" for lam in (0.0, 0.3, 0.5, 0.7)), "CA-Jaccard",
        "FFGNN, default recipe", "FFGNN, default recipe + ECN"]


def run_row(folder: str, row: str) -> dict:
    import torch
    torch.set_num_threads(1)

    from reidgraph import rerank
    from reidgraph.engine import recipe, train_ffgnn
    from reidgraph.evaluation import evaluate_order
    from reidgraph.features import FeatureSet
    from reidgraph.graph import GraphSettings
    from reidgraph.nn import TrainingFreeFusion, ffgnn_rerank, fused_features
    from reidgraph.ranking import ranked_orders

    rest, held = FeatureSet.load(Path(folder) / "cuhk03_labeled_train.npz").hold_out_ids(0.2, seed=0)
    q, g = held.query_gallery()
    if row == "FEN":
        orders = ranked_orders(q.feats, g.feats)
    elif row == "CA-Jaccard":
        orders = rerank.ca_jaccard(q.feats, g.feats, q.camids, g.camids).order_chunks()
    elif row.startswith("training-free"):
        settings = GraphSettings(same_camera_weight=0.0, lam=float(row.rsplit("=", 1)[1]))
        orders = ffgnn_rerank(TrainingFreeFusion(), q.feats, g.feats, settings, query_camids=q.camids,
                              gallery_camids=g.camids).order_chunks()
    else:
        settings, config = recipe()
        model = train_ffgnn(rest, settings, config, progress=False)
        if row.endswith("+ ECN"):  # ECN on each image's fused feature, as benchmarks/run.py composes them
            fq = fused_features(model, q.feats, g.feats, settings, anchor_camids=q.camids, candidate_camids=g.camids)
            fg = fused_features(model, g.feats, g.feats, settings, exclude=torch.arange(len(g)),
                                anchor_camids=g.camids, candidate_camids=g.camids)
            orders = rerank.ecn(fq, fg, k=25, t=3, q=8).order_chunks()
        else:
            orders = ffgnn_rerank(model, q.feats, g.feats, settings, query_camids=q.camids,
                                  gallery_camids=g.camids).order_chunks()
    m = evaluate_order(orders, q.pids, g.pids, q.camids, g.camids)
    return {"features": folder, "row": row, "rank1": m.rank(1), "mAP": m.mAP,
            "held_out": {"ids": held.pids.unique().numel(), "query": len(q), "gallery": len(g)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_feature_folders(parser, "cuhk03_labeled_train.npz")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (default: 2)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    args.folders = feature_folders(args.folders, parser)
    for folder in args.folders:
        if not (Path(folder) / "cuhk03_labeled_train.npz").is_file():
            print(f"benchmarks/recipe.py: {folder} holds no cuhk03_labeled_train.npz", file=sys.stderr)
            return 2
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        results = pool.starmap(run_row, [(f, row) for f in args.folders for row in ROWS])
    first = results[0]["held_out"]
    print(f"held-out train identities ({first['ids']} ids, {first['query']} q / {first['gallery']} g); "
          f"{platform.machine()}; R1 / mAP")
    print(f"{'row':<40}" + "".join(f"{Path(f).name:>24}" for f in args.folders))
    for row in ROWS:
        cells = [next(r for r in results if r["features"] == f and r["row"] == row) for f in args.folders]
        print(f"{row:<40}" + "".join(f"{100 * c['rank1']:12.1f} /{100 * c['mAP']:5.1f}    " for c in cells))
    save(args.out, {"machine": platform.machine(), "rows": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
