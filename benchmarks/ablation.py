"""The paper's Table 1 on real features: each ablation of the paper's recipe, trained and evaluated.

For each feature folder (holding cuhk03_labeled_train.npz and cuhk03_labeled_val.npz): the FEN
ranking (Basel.), then an FFGNN trained with `--preset paper` and each Table 1 ablation, and our
default recipe, each trained on the train file and scored on the val file (R1 / mAP). The paper's
Market-1501 figures stand beside each row. Trainings run in parallel worker processes, one thread each.

Example:
    python benchmarks/ablation.py SHARED/features/osnet_x0_25_msmt17 SHARED/features/omz_0277 \
        --out benchmarks/results/ablation_cpu2.json
"""
from __future__ import annotations

import argparse
import multiprocessing
import platform
import sys
import time
from pathlib import Path

from results_io import save
from shared_paths import add_feature_folders, feature_folders

# Table 1 of the paper, Market-1501, (R1, mAP).
PAPER = {"Basel.": (94.5, 85.2), "ori_w_mask": (94.6, 89.4), "jnt_wo_mask": (94.0, 88.7), "rdm": (94.2, 87.6),
         "sft": (94.5, 88.2), "sft+tri": (95.2, 91.4), "FFGNN (paper)": (95.6, 92.7)}
ROWS = {"Basel.": None, "ori_w_mask": ("paper", "ori_w_mask"), "jnt_wo_mask": ("paper", "jnt_wo_mask"),
        "rdm": ("paper", "rdm"), "sft": ("paper", "sft"), "sft+tri": ("paper", "sft+tri"),
        "FFGNN (paper)": ("paper", None), "FFGNN (default recipe, ours)": ("default", None)}


def run_row(folder: str, row: str, epochs: int | None) -> dict:
    """Train one row's FFGNN on ``folder``'s train features and score it on its val features."""
    import torch
    torch.set_num_threads(1)
    from dataclasses import replace

    from reidgraph.engine import recipe, train_ffgnn
    from reidgraph.evaluation import evaluate_order
    from reidgraph.features import FeatureSet
    from reidgraph.nn import ffgnn_rerank
    from reidgraph.ranking import ranked_orders

    query, gallery = FeatureSet.load(Path(folder) / "cuhk03_labeled_val.npz").query_gallery()
    start = time.perf_counter()
    if ROWS[row] is None:
        orders, settings, config = ranked_orders(query.feats, gallery.feats), None, None
    else:
        train = FeatureSet.load(Path(folder) / "cuhk03_labeled_train.npz")
        settings, config = recipe(*ROWS[row])
        config = replace(config, epochs=epochs) if epochs else config
        model = train_ffgnn(train, settings, config, progress=False)
        orders = ffgnn_rerank(model, query.feats, gallery.feats, settings, query_camids=query.camids,
                              gallery_camids=gallery.camids).order_chunks()
    m = evaluate_order(orders, query.pids, gallery.pids, query.camids, gallery.camids)
    return {"features": folder, "row": row, "rank1": m.rank(1), "mAP": m.mAP,
            "seconds": time.perf_counter() - start, "epochs": None if config is None else config.epochs,
            "graph": None if settings is None else settings.as_dict()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_feature_folders(parser, "cuhk03_labeled_{train,val}.npz")
    parser.add_argument("--workers", type=int, default=2, help="parallel trainings (default: 2)")
    parser.add_argument("--epochs", type=int, help="override every preset's epochs (a quick look; not Table 1)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    args.folders = feature_folders(args.folders, parser)
    for folder in args.folders:
        for name in ("cuhk03_labeled_train.npz", "cuhk03_labeled_val.npz"):
            if not (Path(folder) / name).is_file():
                print(f"benchmarks/ablation.py: {Path(folder) / name} not found; pass folders holding "
                      "cuhk03_labeled_train.npz and cuhk03_labeled_val.npz", file=sys.stderr)
                return 2
    jobs = [(folder, row, args.epochs) for folder in args.folders for row in ROWS]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        results = pool.starmap(run_row, jobs)
    print(f"Table 1 on real features; {platform.machine()}, {args.workers} workers x 1 thread; "
          "R1 / mAP on each folder's val split, the paper's Market-1501 figures beside")
    print(f"{'row':<30}" + "".join(f"{Path(f).name:>24}" for f in args.folders) + f"{'paper (Market)':>18}")
    for row in ROWS:
        cells = [next(r for r in results if r["features"] == f and r["row"] == row) for f in args.folders]
        paper = PAPER.get(row)
        print(f"{row:<30}" + "".join(f"{100 * c['rank1']:12.1f} /{100 * c['mAP']:5.1f}    " for c in cells)
              + (f"{paper[0]:12.1f} /{paper[1]:5.1f}" if paper else f"{'-':>18}"))
    save(args.out, {"machine": platform.machine(), "workers": args.workers, "rows": results, "paper_market": PAPER})
    return 0


if __name__ == "__main__":
    sys.exit(main())
