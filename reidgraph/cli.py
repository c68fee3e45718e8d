"""The ``reidgraph`` command. Thin: each subcommand calls the Python API."""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import torch

from .data import synthetic_features
from .engine import GNNTrainConfig, train_ffgnn
from .engine.train_gnn import config_dict
from .evaluation import evaluate_order
from .features import FeatureSet
from .graph import GraphSettings
from .nn import FFGNN, ffgnn_rerank, ranked_orders


def metrics_row(name: str, order_chunks, query: FeatureSet, gallery: FeatureSet, seconds: float) -> dict:
    m = evaluate_order(order_chunks, query.pids, gallery.pids, query.camids, gallery.camids)
    return {"method": name, "rank1": float(m.cmc[0]), "rank5": float(m.cmc[4]), "rank10": float(m.cmc[9]),
            "mAP": m.mAP, "mINP": m.mINP, "seconds": seconds}


def print_table(rows: list[dict]) -> None:
    print(f"{'method':<22}{'rank-1':>8}{'rank-5':>8}{'rank-10':>8}{'mAP':>8}{'mINP':>8}{'time (s)':>10}")
    for r in rows:
        print(f"{r['method']:<22}" + "".join(f"{100 * r[k]:8.1f}" for k in ("rank1", "rank5", "rank10", "mAP", "mINP"))
              + f"{r['seconds']:10.1f}")


def atomic_save(obj, path: Path) -> None:
    """Write to a temporary file, then rename: a crash never leaves a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def demo(args: argparse.Namespace) -> int:
    """Graph building + FFGNN training + evaluation on generated features."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    train = synthetic_features(num_ids=300, images_per_id=10, num_cams=6, dim=128, seed=args.seed)
    test = synthetic_features(num_ids=200, images_per_id=10, num_cams=6, dim=128, seed=args.seed, first_pid=1000)
    query, gallery = test.query_gallery()
    settings = GraphSettings(K=args.K)
    config = GNNTrainConfig(epochs=args.epochs, graphs_per_batch=4, seed=args.seed)
    print(f"generated features: train {len(train)} images / {train.pids.unique().numel()} ids; "
          f"test {len(query)} queries, {len(gallery)} gallery / {test.pids.unique().numel()} ids; "
          f"6 cameras, {train.feats.shape[1]}-d")
    print(f"graph: {settings}; training: {config.epochs} epochs, Adam lr {config.lr}")

    start = time.perf_counter()
    baseline = metrics_row("FEN features", ranked_orders(query.feats, gallery.feats), query, gallery,
                           time.perf_counter() - start)
    start = time.perf_counter()
    model = train_ffgnn(train, settings, config, log_path=out / "log.jsonl", progress=not args.quiet)
    train_seconds = time.perf_counter() - start
    atomic_save({"model": model.state_dict(), "model_config": model.config(), **config_dict(settings, config)},
                out / "ffgnn.pt")
    start = time.perf_counter()
    result = ffgnn_rerank(model, query.feats, gallery.feats, settings)
    fused = metrics_row("+ FFGNN", result.orders(query.feats, gallery.feats), query, gallery,
                        time.perf_counter() - start)
    rows = [baseline, fused]
    print_table(rows)
    print(f"FFGNN training took {train_seconds:.1f} s; model written to {out / 'ffgnn.pt'}")
    (out / "results.json").write_text(json.dumps({"rows": rows, "train_seconds": train_seconds,
                                                  **config_dict(settings, config)}, indent=2))
    return 0


def load_ffgnn(path: Path) -> tuple[FFGNN, GraphSettings]:
    """A trained FFGNN and its graph settings from a checkpoint written by ``train-gnn`` or ``demo``."""
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist; train one with `reidgraph train-gnn`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = FFGNN(**ckpt["model_config"])
        model.load_state_dict(ckpt["model"])
        settings = GraphSettings(**ckpt["graph"])
    except (pickle.UnpicklingError, KeyError, TypeError, RuntimeError, EOFError, OSError) as err:
        detail = str(err).splitlines()[0][:80] if str(err) else ""
        raise ValueError(f"{path} is not an FFGNN checkpoint written by reidgraph ({type(err).__name__}: "
                         f"{detail}); retrain it with `reidgraph train-gnn`") from None
    return model.eval(), settings


def train_gnn(args: argparse.Namespace) -> int:
    """Stage 2 alone: train the FFGNN on a features file."""
    train = FeatureSet.load(args.features)
    if train.split is not None and "train" in train.split:
        train = train.part("train")
    settings = GraphSettings(K=args.K, k=args.k, lam=args.lam, tau=args.tau)
    config = GNNTrainConfig(epochs=args.epochs, lr=args.lr, graphs_per_batch=args.graphs_per_batch,
                            alpha=args.alpha, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = train_ffgnn(train, settings, config, device=args.device, log_path=out.with_suffix(".log.jsonl"),
                        progress=not args.quiet)
    atomic_save({"model": model.cpu().state_dict(), "model_config": model.config(), **config_dict(settings, config)},
                out)
    print(f"trained on {len(train)} features ({train.pids.unique().numel()} ids) in "
          f"{time.perf_counter() - start:.1f} s; model written to {out}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """CMC / mAP / mINP of a features file, with FFGNN fusion when a model is given."""
    query, gallery = FeatureSet.load(args.features).query_gallery()
    start = time.perf_counter()
    if args.model:
        model, settings = load_ffgnn(Path(args.model))
        if model.channels != query.feats.shape[1]:
            raise ValueError(f"{args.model} expects {model.channels}-d features but {args.features} has "
                             f"{query.feats.shape[1]}-d; use features from the model it was trained on")
        result = ffgnn_rerank(model, query.feats, gallery.feats, settings, progress=not args.quiet)
        row = metrics_row("+ FFGNN", result.orders(query.feats, gallery.feats), query, gallery, 0.0)
    else:
        row = metrics_row("FEN features", ranked_orders(query.feats, gallery.feats), query, gallery, 0.0)
    row["seconds"] = time.perf_counter() - start
    if args.json:
        print(json.dumps({k: row[k] for k in ("rank1", "rank5", "rank10", "mAP", "mINP")}))
    else:
        print(f"{args.features}: {len(query)} queries, {len(gallery)} gallery")
        print_table([row])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reidgraph", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="end-to-end run on generated features (no download needed)")
    p.add_argument("--out", default="runs/demo", help="folder for the model, log and results (default: runs/demo)")
    p.add_argument("--epochs", type=int, default=3, help="FFGNN training epochs (default: 3)")
    p.add_argument("--K", type=int, default=150, help="neighbours per graph (default: 150)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated world and the training")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=demo)

    p = sub.add_parser("train-gnn", help="train the FFGNN (stage 2) on a features .npz from any model")
    p.add_argument("--features", required=True, help="train features .npz (feats, pids, camids)")
    p.add_argument("--out", required=True, help="model file to write (.pt)")
    defaults, graph = GNNTrainConfig(), GraphSettings()
    p.add_argument("--K", type=int, default=graph.K, help=f"neighbours per graph (default: {graph.K})")
    p.add_argument("--k", type=int, default=graph.k, help=f"k-reciprocal size (default: {graph.k})")
    p.add_argument("--tau", type=int, default=graph.tau, help=f"edges kept per node (default: {graph.tau})")
    p.add_argument("--lam", type=float, default=graph.lam, help=f"Jaccard weight (default: {graph.lam})")
    p.add_argument("--alpha", type=float, default=defaults.alpha, help=f"layer mixing (default: {defaults.alpha})")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help=f"(default: {defaults.epochs})")
    p.add_argument("--lr", type=float, default=defaults.lr, help=f"Adam learning rate (default: {defaults.lr})")
    p.add_argument("--graphs-per-batch", type=int, default=4, help="graphs per optimiser step (default: 4)")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=train_gnn)

    p = sub.add_parser("evaluate", help="CMC/mAP/mINP of a features .npz, FFGNN-fused with --model")
    p.add_argument("--features", required=True, help="test features .npz; split query/gallery, or the CUHK03-NP rule")
    p.add_argument("--model", help="FFGNN model from train-gnn; without it the features are ranked as they are")
    p.add_argument("--json", action="store_true", help="print one JSON object (fractions in [0, 1])")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"reidgraph {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
