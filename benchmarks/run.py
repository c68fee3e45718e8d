"""Side-by-side comparison of FFGNN and the re-ranking methods people use, on the same features.

Accuracy section: on a features file (default: the real CUHK03-labeled val
features in ../shared/features), the FEN ranking, each peer re-ranking method
and FFGNN (trained on the matching train features, or --model), in one table:
rank-1, rank-5, mAP, mINP, time (ranking plus evaluation) and peak resident
memory. Each method runs in
its own fresh process, so its peak memory is its own.

Scale section (--scale market): every method timed at Market-1501 size
(3,368 queries x 15,913 gallery, 2048-d, 1,501 identities) on generated
clustered features, each in its own process, with its peak resident memory.

Examples:
    python benchmarks/run.py --out benchmarks/results/run.json
    python benchmarks/run.py --quick          # tiny sizes, seconds
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "features" / "osnet_x0_25_msmt17"
PEERS = {  # name -> (function name in reidgraph.rerank, the paper's default parameters)
    "k-reciprocal": ("k_reciprocal", {"k1": 20, "k2": 6, "lam": 0.3}),
    "ECN": ("ecn", {"k": 25, "t": 3, "q": 8}),
    "AQE": ("average_query_expansion", {"n": 5}),
    "GNN re-ranking": ("gnn_rerank", {"k1": 26, "k2": 7}),
}


def peak_rss_gib() -> float:
    """This process's peak resident memory in GiB.

    Linux's ``VmHWM`` belongs to the process image and starts afresh at exec;
    ``ru_maxrss`` would carry over the parent's peak into a spawned child.
    """
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 2**20
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_method(name: str, features: str, model: str | None, params: dict) -> dict:
    """Rank the query set of ``features`` with one method; runs in a fresh process."""
    import torch  # noqa: F401 - imported before the baseline reading, so it is not charged to the method

    from reidgraph.evaluation import evaluate_order
    from reidgraph.features import FeatureSet
    from reidgraph.nn import ffgnn_rerank, ranked_orders

    query, gallery = FeatureSet.load(features).query_gallery()
    baseline = peak_rss_gib()
    start = time.perf_counter()
    if name == "FEN features":
        orders = ranked_orders(query.feats, gallery.feats)
    elif name == "FFGNN":
        from reidgraph.engine import load_ffgnn
        ffgnn, settings = load_ffgnn(model)
        orders = ffgnn_rerank(ffgnn, query.feats, gallery.feats, settings).orders(query.feats, gallery.feats)
    else:
        from reidgraph import rerank
        function, _ = PEERS[name]
        result = getattr(rerank, function)(query.feats, gallery.feats, **params)
        orders = (chunk.argsort(dim=1, stable=True) for chunk in result.distance_chunks())
    m = evaluate_order(orders, query.pids, gallery.pids, query.camids, gallery.camids)
    seconds = time.perf_counter() - start
    return {"method": name, "params": params, "rank1": float(m.cmc[0]), "rank5": float(m.cmc[min(4, len(m.cmc) - 1)]),
            "mAP": m.mAP, "mINP": m.mINP, "seconds": seconds, "peak_rss_gib": peak_rss_gib(),
            "baseline_rss_gib": baseline}


SCALES = {"market": (3368, 15913, 2048, 1501), "quick": (60, 300, 64, 30)}  # queries, gallery, D, identities


def clustered(num: int, dim: int, ids: int, seed: int):
    """Generated ReID-like features: identity centres plus noise (about 13 images an identity at Market size)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(ids, dim, generator=g)
    return centres[torch.randint(ids, (num,), generator=g)] + 0.8 * torch.randn(num, dim, generator=g)


def run_scale_method(name: str, scale: str) -> dict:
    """Time one method at a given scale on generated features; runs in a fresh process."""
    import torch

    from reidgraph import rerank
    from reidgraph.graph import GraphSettings, iter_graph_batches, knn
    from reidgraph.nn import FFGNN, ffgnn_rerank

    Q, G, D, ids = SCALES[scale]
    query, gallery = clustered(Q, D, ids, seed=1), clustered(G, D, ids, seed=0)
    K = min(150, G // 2)
    settings = GraphSettings(K=K, k=min(20, K), tau=min(20, K))
    peers = {"k-reciprocal": lambda: rerank.k_reciprocal(query, gallery),
             "ECN": lambda: rerank.ecn(query, gallery), "AQE": lambda: rerank.average_query_expansion(query, gallery),
             "GNN re-ranking": lambda: rerank.gnn_rerank(query, gallery)}

    def consume(result) -> None:  # what evaluation does with a re-ranked distance: sort every row
        for chunk in result.distance_chunks():
            chunk.argsort(dim=1)

    def graphs() -> None:
        _, neighbors = knn(query, gallery, K)
        for _ in iter_graph_batches(torch.nn.functional.normalize(query, dim=1),
                                    torch.nn.functional.normalize(gallery, dim=1), neighbors, settings, 64):
            pass

    work = {"kNN (torch, K=150)": lambda: knn(query, gallery, K),
            "graph building": graphs,
            "FFGNN inference": lambda: ffgnn_rerank(FFGNN(D).eval(), query, gallery, settings),
            "dense k-reciprocal (original algorithm)": lambda: rerank.k_reciprocal_dense(query, gallery).argsort(dim=1),
            **{n: (lambda f=f: consume(f())) for n, f in peers.items()}}
    baseline = peak_rss_gib()
    start = time.perf_counter()
    work[name]()
    return {"method": name, "scale": scale, "queries": Q, "gallery": G, "dim": D,
            "seconds": time.perf_counter() - start, "peak_rss_gib": peak_rss_gib(), "baseline_rss_gib": baseline}


SCALE_METHODS = ["kNN (torch, K=150)", "graph building", "FFGNN inference", "k-reciprocal",
                 "dense k-reciprocal (original algorithm)", "ECN", "AQE", "GNN re-ranking"]


def isolated_call(function, *args) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def isolated(*args) -> dict:
    return isolated_call(run_method, *args)


def prepare(args, work: Path) -> tuple[Path, Path | None, str]:
    """The features to rank, the FFGNN model to use (trained here if needed) and a description."""
    from reidgraph.engine import GNNTrainConfig, train_ffgnn
    from reidgraph.features import FeatureSet
    from reidgraph.graph import GraphSettings

    if args.quick:
        from reidgraph.data import synthetic_features
        train = synthetic_features(40, 6, 3, 16, seed=0)
        test = synthetic_features(20, 6, 3, 16, seed=0, first_pid=1000)
        test.save(work / "test.npz")
        train_ffgnn(train, GraphSettings(K=20, k=5, tau=5), GNNTrainConfig(epochs=1, graphs_per_batch=4),
                    checkpoint=work / "ffgnn.pt", progress=False)
        return work / "test.npz", work / "ffgnn.pt", "generated features (quick: 20 ids, 16-d)"
    features = Path(args.features)
    for path in [features] + ([] if args.model else [Path(args.train)]):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; pass --features/--train, or --quick")
    model = Path(args.model) if args.model else work / "ffgnn.pt"
    if not args.model:
        print(f"training FFGNN on {args.train} (paper's graph, {args.epochs} epochs)...", flush=True)
        train_ffgnn(FeatureSet.load(args.train), GraphSettings(),
                    GNNTrainConfig(epochs=args.epochs, graphs_per_batch=4), checkpoint=model, progress=False)
    return features, model, str(features)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", default=str(DEFAULT / "cuhk03_labeled_val.npz"), help="features to rank")
    parser.add_argument("--train", default=str(DEFAULT / "cuhk03_labeled_train.npz"),
                        help="train features for the FFGNN (when no --model)")
    parser.add_argument("--model", help="a trained FFGNN (train-gnn output) instead of training one")
    parser.add_argument("--epochs", type=int, default=3, help="FFGNN epochs when training here")
    parser.add_argument("--quick", action="store_true", help="tiny generated features: a smoke run in seconds")
    parser.add_argument("--scale", choices=("market", "none"), default="market",
                        help="also time every method at Market-1501 size on generated features (default: market)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            features, model, described = prepare(args, Path(tmp))
        except (FileNotFoundError, ValueError) as err:
            print(f"benchmarks/run.py: {err}", file=sys.stderr)
            return 2
        quick = {"k-reciprocal": {"k1": 6, "k2": 3, "lam": 0.3}, "ECN": {"k": 6, "t": 2, "q": 3},
                 "AQE": {"n": 3}, "GNN re-ranking": {"k1": 6, "k2": 3}}
        methods = [("FEN features", {}), *((n, quick[n] if args.quick else p) for n, (_, p) in PEERS.items()),
                   ("FFGNN", {})]
        rows = [isolated(name, str(features), str(model), params) for name, params in methods]
    print(f"accuracy on {described}; {platform.machine()}, each method in its own process")
    print(f"{'method':<16}{'rank-1':>8}{'rank-5':>8}{'mAP':>8}{'mINP':>8}{'time (s)':>10}{'peak RSS (GiB)':>16}"
          f"{'after imports':>15}")
    for r in rows:
        print(f"{r['method']:<16}" + "".join(f"{100 * r[k]:8.1f}" for k in ("rank1", "rank5", "mAP", "mINP"))
              + f"{r['seconds']:10.2f}{r['peak_rss_gib']:16.2f}{r['baseline_rss_gib']:15.2f}")
    results = {"features": described, "machine": platform.machine(), "accuracy": rows}
    if args.scale != "none":
        scale = "quick" if args.quick else args.scale
        Q, G, D, ids = SCALES[scale]
        print(f"\nspeed and memory, {scale} scale: {Q} queries x {G} gallery, D={D}, {ids} identities "
              "(generated, clustered); one run per method, each in its own process")
        print(f"{'method':<42}{'time (s)':>10}{'peak RSS (GiB)':>16}{'after set-up':>14}")
        from ffgnn_inference import matmul_rate, performed_flops
        rates = [matmul_rate(D)]
        timed = []
        for name in SCALE_METHODS:
            r = isolated_call(run_scale_method, name, scale)
            timed.append(r)
            print(f"{name:<42}{r['seconds']:10.2f}{r['peak_rss_gib']:16.2f}{r['baseline_rss_gib']:14.2f}", flush=True)
        results["scale"] = timed
        by = {r["method"]: r for r in timed}
        ours, dense = by["k-reciprocal"], by["dense k-reciprocal (original algorithm)"]
        print(f"k-reciprocal vs the original dense algorithm: {dense['seconds'] / ours['seconds']:.1f}x faster, "
              f"{ours['peak_rss_gib'] / dense['peak_rss_gib']:.2f} of its peak memory")
        rates.append(matmul_rate(D))
        ffgnn = by["FFGNN inference"]
        flops = performed_flops(Q, G, D, min(150, G // 2), 3)
        fraction = flops / ffgnn["seconds"] / max(rates)
        print(f"FFGNN inference: {flops / 1e12:.2f} TFLOP performed at {flops / ffgnn['seconds'] / 1e9:.1f} GFLOP/s, "
              f"{100 * fraction:.0f}% of the matmul rate measured in this run ({max(rates) / 1e9:.1f} GFLOP/s)")
        results["summary"] = {
            "scale": scale, "ffgnn_roofline_fraction": fraction, "ffgnn_flops": flops,
            "matmul_flops_per_s": max(rates), "ffgnn_seconds": ffgnn["seconds"],
            "ffgnn_peak_rss_gib": ffgnn["peak_rss_gib"], "kreciprocal_seconds": ours["seconds"],
            "kreciprocal_peak_rss_gib": ours["peak_rss_gib"], "dense_kreciprocal_seconds": dense["seconds"],
            "dense_kreciprocal_peak_rss_gib": dense["peak_rss_gib"],
            # The MSMT17-size section is not written yet: nothing measured, nothing claimed.
            "msmt_scale_completed": None}
        if scale == "market":
            summary = Path(__file__).resolve().parent / "results" / "summary.json"
            summary.write_text(json.dumps(results["summary"], indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
