"""FEN features vs + FFGNN on the real CUHK03-labeled features in ../shared/features.

Trains the FFGNN (stage 2) on the train features and evaluates on the val split
(200 queries / 738 gallery, CUHK03-NP rule), standard single-query protocol.
Example: python benchmarks/real_features.py --epochs 3 --out benchmarks/results/real_features.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from reidgraph.engine import GNNTrainConfig, train_ffgnn
from reidgraph.engine.pipeline import print_table, score
from reidgraph.engine.train_gnn import config_dict
from reidgraph.features import FeatureSet
from reidgraph.graph import GraphSettings
from reidgraph.nn import ffgnn_rerank, ranked_orders

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "features" / "osnet_x0_25_msmt17"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, default=DEFAULT, help="folder with cuhk03_labeled_{train,val}.npz")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    paths = [args.features / f"cuhk03_labeled_{s}.npz" for s in ("train", "val")]
    for p in paths:
        if not p.is_file():
            print(f"real_features: {p} not found; pass --features DIR", file=sys.stderr)
            return 2
    train, val = (FeatureSet.load(p) for p in paths)
    query, gallery = val.query_gallery()
    settings, config = GraphSettings(), GNNTrainConfig(epochs=args.epochs, graphs_per_batch=4, seed=args.seed)
    start = time.perf_counter()
    rows = [score("FEN features", ranked_orders(query.feats, gallery.feats), query, gallery,
                        time.perf_counter() - start)]
    start = time.perf_counter()
    model = train_ffgnn(train, settings, config)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = ffgnn_rerank(model, query.feats, gallery.feats, settings)
    rows.append(score(f"+ FFGNN ({args.epochs} ep)", result.orders(query.feats, gallery.feats), query,
                            gallery, time.perf_counter() - start))
    print(f"{args.features}: train {len(train)} images, val {len(query)} queries / {len(gallery)} gallery; "
          f"{torch.get_num_threads()} threads")
    print_table(rows)
    print(f"FFGNN training: {train_seconds:.1f} s")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "train_seconds": train_seconds,
                                        "threads": torch.get_num_threads(), **config_dict(settings, config)},
                                       indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
