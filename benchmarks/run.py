"""Side-by-side comparison of FFGNN and the re-ranking methods people use, on the same features.

Accuracy section: on a features file (default: the real CUHK03-labeled val
features in ../shared/features), in one table with rank-1, rank-5, mAP, mINP,
time (ranking plus evaluation) and peak resident memory:
- the FEN ranking and each peer re-ranking method (k-reciprocal, CA-Jaccard,
  ECN, AQE, GNN re-ranking);
- FFGNN trained on the matching train features with the paper's preset
  (or --model) and with the default recipe (or --default-model), and
  training-free fusion on the paper's graphs, on camera-aware ones, and on
  the default recipe's graphs (what training adds on the same graphs);
- compositions: a re-ranking method run on FFGNN-fused features, as in the
  paper's Table 2 (Basel.+FFGNN+k-R, Basel.+FFGNN+ECN).
Camera-aware variants and CA-Jaccard use the query's and gallery's camera ids
at test time, as the standard protocol already does to ignore same-camera
matches. Each method runs in its own fresh process, so its peak memory is its own.

Scale section (benchmarks/scale.py): every method timed at Market-1501 size
(3,368 queries x 15,913 gallery, 2048-d, 1,501 identities; median of
--repeats runs) and/or MSMT17 size (11,659 x 82,161, under a 24 GiB limit; one
run) on generated clustered features, each run in its own process, with its
peak resident memory. A Market-size run writes benchmarks/results/summary.json.

Examples:
    python benchmarks/run.py --scale both --out benchmarks/results/run_cpu2.json
    python benchmarks/run.py --quick          # tiny sizes, about a minute
    python benchmarks/run.py --device cuda --scale market
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from results_io import save
from scale import isolated_call, peak_rss_gib, scale_section

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "features" / "osnet_x0_25_msmt17"
PEERS = {  # name -> (function name in reidgraph.rerank, the paper's default parameters, takes camera ids)
    "k-reciprocal": ("k_reciprocal", {"k1": 20, "k2": 6, "lam": 0.3}, False),
    "CA-Jaccard": ("ca_jaccard", {"k1_intra": 5, "k1_inter": 20, "k2_intra": 3, "k2_inter": 3, "lam": 0.3}, True),
    "ECN": ("ecn", {"k": 25, "t": 3, "q": 8}, False),
    "AQE": ("average_query_expansion", {"n": 5}, False),
    "GNN re-ranking": ("gnn_rerank", {"k1": 26, "k2": 7}, False),
}
QUICK = {"k-reciprocal": {"k1": 6, "k2": 3, "lam": 0.3},
         "CA-Jaccard": {"k1_intra": 2, "k1_inter": 6, "k2_intra": 2, "k2_inter": 2, "lam": 0.3}, "ECN": {"k": 6, "t": 2, "q": 3},
         "AQE": {"n": 3}, "GNN re-ranking": {"k1": 6, "k2": 3}}
# name -> (fusion: an FFGNN trained with the paper's preset or the default recipe, training-free fusion on the
# paper's, camera-aware or the default recipe's graphs,
# or none; then a peer method on the fused features, or the fusion's own re-ranking of each query's top-K)
FUSIONS = {"FFGNN, paper preset": "paper", "FFGNN, default recipe": "default", "training-free": "free",
           "training-free, camera-aware": "free-camera", "training-free, default recipe's graph": "free-default"}
METHODS = {"FEN features": (None, None), **{peer: (None, peer) for peer in PEERS},
           **{name: (fusion, None) for name, fusion in FUSIONS.items()},
           "FFGNN, paper preset + k-reciprocal": ("paper", "k-reciprocal"),
           "FFGNN, paper preset + ECN": ("paper", "ECN"),
           "FFGNN, default recipe + k-reciprocal": ("default", "k-reciprocal"),
           "FFGNN, default recipe + ECN": ("default", "ECN"),
           "FFGNN, default recipe + CA-Jaccard": ("default", "CA-Jaccard"),
           "training-free, camera-aware + k-reciprocal": ("free-camera", "k-reciprocal"),
           "training-free, camera-aware + ECN": ("free-camera", "ECN"),
           "training-free, camera-aware + CA-Jaccard": ("free-camera", "CA-Jaccard")}


def fusion_model(fusion: str, models: dict):
    """The fusing network and its graph settings for a fusion kind of :data:`METHODS`."""
    from reidgraph.engine import load_ffgnn, recipe
    from reidgraph.graph import GraphSettings
    from reidgraph.nn import TrainingFreeFusion

    if fusion == "free-default":  # the graphs the default recipe trains and tests on, without training
        return TrainingFreeFusion(), replace(recipe()[0], **models["graph"])
    if fusion.startswith("free"):
        settings = GraphSettings(**models["graph"], same_camera_weight=0.0 if fusion == "free-camera" else 1.0)
        return TrainingFreeFusion(), settings
    return load_ffgnn(models[fusion])


def run_method(name: str, features: str, models: dict, params: dict, device: str = "cpu") -> dict:
    """Rank the query set of ``features`` with one method of :data:`METHODS`; runs in a fresh process.

    A fusion followed by a peer runs the peer on fused features: each query fused in its graph over
    the gallery, each gallery item in its graph over the rest of the gallery (``fused_features``).
    Camera-aware graphs and CA-Jaccard use the query's and gallery's camera ids, as the evaluation
    protocol already does to ignore same-camera matches.
    """
    import torch

    from reidgraph import rerank
    from reidgraph.evaluation import evaluate_order
    from reidgraph.features import FeatureSet
    from reidgraph.nn import ffgnn_rerank, fused_features, ranked_orders

    query, gallery = FeatureSet.load(features).query_gallery()
    qf, gf = query.feats.to(device), gallery.feats.to(device)
    qc, gc = query.camids.to(device), gallery.camids.to(device)
    fusion, peer = METHODS[name]
    baseline = peak_rss_gib()
    start = time.perf_counter()
    if fusion:
        model, settings = fusion_model(fusion, models)
        model = model.to(device)
    if fusion and not peer:
        orders = ffgnn_rerank(model, qf, gf, settings, query_camids=qc, gallery_camids=gc).orders(qf, gf)
    elif not peer:
        orders = ranked_orders(qf, gf)
    else:
        if fusion:
            qf, gf = (fused_features(model, qf, gf, settings, anchor_camids=qc, candidate_camids=gc),
                      fused_features(model, gf, gf, settings, exclude=torch.arange(len(gf), device=device),
                                     anchor_camids=gc, candidate_camids=gc))
        function, _, cameras = PEERS[peer]
        result = getattr(rerank, function)(qf, gf, *((qc, gc) if cameras else ()), **params)
        orders = (chunk.argsort(dim=1, stable=True).cpu() for chunk in result.distance_chunks())
    m = evaluate_order(orders, query.pids, gallery.pids, query.camids, gallery.camids)
    seconds = time.perf_counter() - start
    return {"method": name, "params": params, "rank1": float(m.cmc[0]), "rank5": float(m.cmc[min(4, len(m.cmc) - 1)]),
            "mAP": m.mAP, "mINP": m.mINP, "seconds": seconds, "peak_rss_gib": peak_rss_gib(),
            "baseline_rss_gib": baseline}


def isolated(*args) -> dict:
    """:func:`run_method` in a freshly spawned process."""
    return isolated_call(run_method, *args)


def prepare(args, work: Path) -> tuple[Path, dict, str]:
    """The features to rank, the FFGNN models to use (trained here when not given) and a description.

    Models: ``paper`` (trained with the paper's preset), ``default`` (with the default recipe), and
    ``graph``, the graph sizes (K, k, tau) every fusion uses (the presets' own with real features).
    """
    from reidgraph.engine import recipe, train_ffgnn
    from reidgraph.features import FeatureSet

    if args.quick:
        from reidgraph.data import synthetic_features
        train = synthetic_features(40, 6, 3, 16, seed=0)
        test = synthetic_features(20, 6, 3, 16, seed=0, first_pid=1000)
        test.save(work / "test.npz")
        graph, epochs, described = {"K": 20, "k": 5, "tau": 5}, 1, "generated features (quick: 20 ids, 16-d)"
        features = work / "test.npz"
    else:
        features, train = Path(args.features), None
        needed = [features] + ([] if args.model and args.default_model else [Path(args.train)])
        for path in needed:
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found; pass --features/--train, or --quick")
        graph, epochs, described = {}, args.epochs, str(features)
    models = {"graph": graph, "paper": args.model, "default": args.default_model}
    for kind in ("paper", "default"):
        if models[kind]:
            continue
        train = train if train is not None else FeatureSet.load(args.train)
        settings, config = recipe(kind)
        settings, config = replace(settings, **graph), replace(config, epochs=epochs or config.epochs)
        print(f"training FFGNN on {'generated' if args.quick else args.train} ({kind} recipe, {config.epochs} "
              "epochs)...", flush=True)
        models[kind] = str(work / f"ffgnn_{kind}.pt")
        train_ffgnn(train, settings, config, checkpoint=models[kind], progress=False)
    return features, models, described


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", default=str(DEFAULT / "cuhk03_labeled_val.npz"), help="features to rank")
    parser.add_argument("--train", default=str(DEFAULT / "cuhk03_labeled_train.npz"),
                        help="train features for the FFGNN (when no --model)")
    parser.add_argument("--model", help="an FFGNN from train-gnn --preset paper instead of training one")
    parser.add_argument("--default-model", help="an FFGNN from train-gnn (default recipe) instead of training one")
    parser.add_argument("--epochs", type=int, help="FFGNN epochs when training here (default: each preset's)")
    parser.add_argument("--quick", action="store_true", help="tiny generated features: a smoke run in seconds")
    parser.add_argument("--scale", choices=("market", "msmt", "both", "none"), default="market",
                        help="also time every method at Market-1501 and/or MSMT17 size on generated features "
                             "(default: market; msmt takes about half an hour on 2 cores)")
    parser.add_argument("--repeats", type=int,
                        help="runs per method at Market size, each in its own process; the median time is "
                             "reported (default 3; 1 with --quick; MSMT size: always one run)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.device != "cpu":
        import torch
        if not args.device.startswith("cuda") or not torch.cuda.is_available():
            parser.error(f"--device {args.device}: this machine offers cpu" +
                         (" and cuda" if torch.cuda.is_available() else " only (no CUDA device found)"))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            features, models, described = prepare(args, Path(tmp))
        except (FileNotFoundError, ValueError) as err:
            print(f"benchmarks/run.py: {err}", file=sys.stderr)
            return 2
        params = {name: (QUICK if args.quick else {n: p for n, (_, p, _) in PEERS.items()}).get(peer, {})
                  for name, (_, peer) in METHODS.items()}
        rows = [isolated(name, str(features), models, params[name], args.device) for name in METHODS]
    print(f"accuracy on {described}; {platform.machine()}, {args.device}, each method in its own process")
    print(f"{'method':<44}{'rank-1':>8}{'rank-5':>8}{'mAP':>8}{'mINP':>8}{'time (s)':>10}{'peak RSS (GiB)':>16}"
          f"{'after imports':>15}")
    for r in rows:
        print(f"{r['method']:<44}" + "".join(f"{100 * r[k]:8.1f}" for k in ("rank1", "rank5", "mAP", "mINP"))
              + f"{r['seconds']:10.2f}{r['peak_rss_gib']:16.2f}{r['baseline_rss_gib']:15.2f}")
    results = {"features": described, "machine": platform.machine(), "device": args.device, "accuracy": rows}
    save(args.out, results)
    if args.scale != "none":
        scales = ["quick"] if args.quick else ["market", "msmt"] if args.scale == "both" else [args.scale]
        results["scale"], summaries = [], {}
        for scale in scales:
            rows, summaries[scale] = scale_section(scale, args.device, args.repeats)
            results["scale"] += rows
            save(args.out, results)  # a long run keeps what it measured so far
        summary = {"scale": scales[0], **{k: v for k, v in summaries[scales[0]].items() if k != "completed"},
                   # None: the MSMT17-size section did not run here; nothing measured, nothing claimed
                   "msmt_scale_completed": summaries["msmt"]["completed"] if "msmt" in summaries else None}
        results["summary"] = summary
        if "market" in scales:  # summary.json holds the Market-scale figures (and MSMT's when run with them)
            path = Path(__file__).resolve().parent / "results" / "summary.json"
            path.write_text(json.dumps(summary, indent=2))
    save(args.out, results)
    return 0



if __name__ == "__main__":
    sys.exit(main())
