"""Side-by-side comparison of FFGNN and the re-ranking methods people use, on the same features.

Accuracy section: on a features file (--features; default, where REIDGRAPH_SHARED is
set: the real CUHK03-labeled val features in SHARED/features), in one table with rank-1, rank-5, mAP, mINP,
time (ranking plus evaluation) and peak resident memory:
- the FEN ranking and each peer re-ranking method (k-reciprocal, CA-Jaccard,
  ECN, AQE, GNN re-ranking);
- FFGNN trained on the matching train features with the paper's preset
  (or --model) and with the default recipe (or --default-model), and
  training-free fusion on the paper's graphs, on camera-aware ones, and on
  the default recipe's graphs (what training adds on the same graphs);
- compositions: a re-ranking method run on FFGNN-fused features, as in the
  paper's Table 2 (Basel.+FFGNN+k-R, Basel.+FFGNN+ECN);
- GCR and GCRV (Zhang et al., TMM 2023: feature propagation across cameras, GCRV after per-camera
  de-biasing);
- every row above again after per-camera de-biasing (", de-biased": ``debias+METHOD``; the FFGNN rows
  with an FFGNN trained on de-biased train features, ``train-gnn --debias``), except GCR, whose de-biased
  row is GCRV.
Camera-aware variants and CA-Jaccard use the query's and gallery's camera ids
at test time, as the standard protocol already does to ignore same-camera
matches. Each method runs in its own fresh process, so its peak memory is its own.

Scale section (benchmarks/scale.py): every method timed at Market-1501 size
(3,368 queries x 15,913 gallery, 2048-d, 1,501 identities; median of
--repeats runs) and/or MSMT17 size (11,659 x 82,161, under a 24 GiB limit; one
run) on generated clustered features, each run in its own process, with its
peak resident memory. A Market-size run writes benchmarks/results/summary.json.

Examples:
    python benchmarks/run.py --features SHARED/features/osnet_x0_25_msmt17/cuhk03_labeled_val.npz \
        --train SHARED/features/osnet_x0_25_msmt17/cuhk03_labeled_train.npz --scale both \
        --out benchmarks/results/run_cpu2.json
    REIDGRAPH_SHARED=SHARED python benchmarks/run.py --scale both   # the same files
    python benchmarks/run.py --quick          # tiny sizes, about a minute
    python benchmarks/run.py --device cuda --scale market
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from results_io import cpu, save, update_summary
from scale import KNN, METHODS as SCALE_METHODS, isolated_call, peak_rss_gib, scale_section
from shared_paths import EPILOG, FEATURE_SETS, shared

PEERS = {"k-reciprocal": "k-reciprocal", "CA-Jaccard": "ca-jaccard", "ECN": "ecn", "AQE": "aqe",
         "GNN re-ranking": "gnn-rerank"}  # table name -> registry name; each with its paper's parameters
PROPAGATION = {"GCR": "gcr", "GCRV": "gcrv"}
QUICK = {"k-reciprocal": {"k1": 6, "k2": 3}, "ca-jaccard": {"k1_intra": 2, "k1_inter": 6, "k2_intra": 2, "k2_inter": 2},
         "ecn": {"k": 6, "t": 2, "q": 3}, "aqe": {"n": 3}, "gnn-rerank": {"k1": 6, "k2": 3}, "gcr": {"k1": 6},
         "gcrv": {"k1": 6}}
# table name -> (fuser: an FFGNN trained with the paper's preset or the default recipe, training-free fusion on
# the paper's, camera-aware or the default recipe's graphs, or none; the fuser's own parameters)
FUSIONS = {"FFGNN, paper preset": ("ffgnn", "paper", {}), "FFGNN, default recipe": ("ffgnn", "default", {}),
           "training-free": ("fusion-paper", None, {}),
           "training-free, camera-aware": ("fusion-paper", None, {"same_camera_weight": 0.0}),
           "training-free, default recipe's graph": ("fusion", None, {})}
COMPOSED = [("FFGNN, paper preset", "k-reciprocal"), ("FFGNN, paper preset", "ECN"),
            ("FFGNN, default recipe", "k-reciprocal"), ("FFGNN, default recipe", "ECN"),
            ("FFGNN, default recipe", "CA-Jaccard"), ("training-free, camera-aware", "k-reciprocal"),
            ("training-free, camera-aware", "ECN"), ("training-free, camera-aware", "CA-Jaccard")]
# table name -> (registry method, which trained model or None, fuser parameters)
RAW = {"FEN features": ("cosine", None, {}), **{name: (peer, None, {}) for name, peer in PEERS.items()},
       **FUSIONS,
       **{f"{fusion} + {peer}": (f"{FUSIONS[fusion][0]}+{PEERS[peer]}", FUSIONS[fusion][1],
                                 {f"{FUSIONS[fusion][0]}.{k}": v for k, v in FUSIONS[fusion][2].items()})
          for fusion, peer in COMPOSED}}


def debiased(method: str, model: str | None, params: dict) -> tuple[str, str | None, dict]:
    """A row of :data:`RAW` after per-camera de-biasing: ``debias+METHOD``, or, for an FFGNN row, the same
    method with the model of the same recipe trained on de-biased features (its file stores the stage)."""
    if model:
        return method, f"{model}+debias", params
    return ("debias" if method == "cosine" else f"debias+{method}"), None, params


METHODS = {**RAW, **{name: (peer, None, {}) for name, peer in PROPAGATION.items()},
           **{f"{name}, de-biased": debiased(*row) for name, row in RAW.items()}}


def method_params(name: str, graph: dict, quick: bool) -> dict:
    """The registry parameters of a table row: its fuser's, the run's graph sizes for training-free fusion,
    and with --quick the peers' small neighborhoods."""
    from reidgraph.rerank import parts

    method, _, params = METHODS[name]
    fuser, peer = parts(method)
    prefix = (lambda part: f"{part}." if fuser and peer else "")  # noqa: E731
    params = dict(params)
    if fuser and fuser != "ffgnn":
        params.update({prefix(fuser) + k: v for k, v in graph.items()})
    if peer and quick:
        params.update({prefix(peer) + k: v for k, v in QUICK[peer].items()})
    return params


def run_method(name: str, features: str, models: dict, params: dict, device: str = "cpu") -> dict:
    """Rank the query set of ``features`` with one method of :data:`METHODS`; runs in a fresh process.

    Every method goes through :func:`reidgraph.rerank.rerank`. Camera-aware graphs and CA-Jaccard use the
    query's and gallery's camera ids, as the evaluation protocol already does to ignore same-camera matches.
    """
    from reidgraph.evaluation import results_row
    from reidgraph.features import FeatureSet
    from reidgraph.rerank import rerank

    query, gallery = FeatureSet.load(features).query_gallery()
    method, model, _ = METHODS[name]
    baseline = peak_rss_gib()
    start = time.perf_counter()
    ranking = rerank(method, query.feats, gallery.feats, query_camids=query.camids, gallery_camids=gallery.camids,
                     model=models[model] if model else None, params=params, device=device)
    row = results_row(name, ranking, query, gallery, 0.0)
    return {**row, "registry_method": method, "params": params, "seconds": time.perf_counter() - start,
            "peak_rss_gib": peak_rss_gib(), "baseline_rss_gib": baseline}


def isolated(*args) -> dict:
    """:func:`run_method` in a freshly spawned process."""
    return isolated_call(run_method, *args)


def prepare(args, work: Path) -> tuple[Path, dict, str]:
    """The features to rank, the FFGNN models to use (trained here when not given) and a description.

    Models: ``paper`` (trained with the paper's preset), ``default`` (with the default recipe), and
    ``graph``, the graph sizes (K, k, tau) every fusion uses (the presets' own with real features).
    Every path is checked before any work starts.
    """
    from reidgraph.debias import Debias
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
        train = None
        to_train = kinds(args.methods) - {kind for kind, given in (("paper", args.model),
                                                                    ("default", args.default_model)) if given}
        needed = [("--features", args.features)] + ([("--train", args.train)] if to_train else [])
        needed += [(flag, m) for flag, m in (("--model", args.model), ("--default-model", args.default_model)) if m]
        for flag, path in needed:
            if path is None:
                raise FileNotFoundError(f"{flag} not given; pass an existing file, set REIDGRAPH_SHARED, or use "
                                        "--quick for generated data")
            if not Path(path).is_file():
                raise FileNotFoundError(f"{flag} {path} not found; pass an existing file (or --quick for "
                                        "generated data)")
        features = Path(args.features)
        graph, epochs, described = {}, args.epochs, str(features)
    models = {"graph": graph, "paper": args.model, "default": args.default_model}
    for kind in sorted(kinds(args.methods)):
        if models.get(kind):
            continue
        train = train if train is not None else FeatureSet.load(args.train)
        preset, _, debias = kind.partition("+")
        settings, config = recipe(preset)
        settings, config = replace(settings, **graph), replace(config, epochs=epochs or config.epochs)
        print(f"training FFGNN on {'generated' if args.quick else args.train} ({preset} recipe, {config.epochs} "
              f"epochs{', de-biased features' if debias else ''})...", flush=True)
        models[kind] = str(work / f"ffgnn_{preset}{'_debias' if debias else ''}.pt")
        start = time.perf_counter()
        train_ffgnn(train, settings, config, debias=Debias() if debias else None, checkpoint=models[kind],
                    progress=False)
        models[f"{kind} seconds"] = time.perf_counter() - start
    return features, models, described


def kinds(rows: list[str]) -> set[str]:
    """The trained models (``paper``, ``default``, each also ``+debias``) that the chosen table rows use."""
    return {METHODS[name][1] for name in rows} - {None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=EPILOG)
    default = {split: shared("features", FEATURE_SETS[0], f"cuhk03_labeled_{split}.npz") for split in ("val", "train")}
    parser.add_argument("--features", default=default["val"],
                        help=f"features to rank (required unless --quick; default: SHARED/features/{FEATURE_SETS[0]}/"
                             "cuhk03_labeled_val.npz)")
    parser.add_argument("--train", default=default["train"],
                        help="train features for the FFGNN, when one is trained here (default: "
                             f"SHARED/features/{FEATURE_SETS[0]}/cuhk03_labeled_train.npz)")
    parser.add_argument("--model", help="an FFGNN from train-gnn --preset paper instead of training one")
    parser.add_argument("--default-model", help="an FFGNN from train-gnn (default recipe) instead of training one")
    parser.add_argument("--methods", nargs="+", metavar="ROW", default=list(METHODS),
                        help="only these rows of the accuracy table, by their names (default: all)")
    parser.add_argument("--epochs", type=int, help="FFGNN epochs when training here (default: each preset's)")
    parser.add_argument("--quick", action="store_true", help="tiny generated features: a smoke run in seconds")
    parser.add_argument("--scale", choices=("market", "msmt", "both", "none"), default="market",
                        help="also time every method at Market-1501 and/or MSMT17 size on generated features "
                             "(default: market; msmt takes about half an hour on 2 cores)")
    parser.add_argument("--scale-methods", nargs="+", metavar="ROW",
                        help="only these rows of the speed section, by their names (default: all)")
    parser.add_argument("--repeats", type=int,
                        help="runs per method at Market size, each in its own process; the median time is "
                             "reported (default 3; 1 with --quick; MSMT size: always one run)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    unknown = [name for name in args.methods if name not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown rows {unknown}; choose among {list(METHODS)}")
    unknown = [name for name in args.scale_methods or [] if name not in KNN + SCALE_METHODS]
    if unknown:
        parser.error(f"--scale-methods: unknown rows {unknown}; choose among {KNN + SCALE_METHODS}")
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
        params = {name: method_params(name, models["graph"], args.quick) for name in args.methods}
        rows = [isolated(name, str(features), models, params[name], args.device) for name in args.methods]
    print(f"accuracy on {described}; {cpu()}, {args.device}, each method in its own process")
    print(f"{'method':<56}{'rank-1':>8}{'rank-5':>8}{'mAP':>8}{'mINP':>8}{'time (s)':>10}{'peak RSS (GiB)':>16}"
          f"{'after imports':>15}")
    for r in rows:
        print(f"{r['method']:<56}" + "".join(f"{100 * r[k]:8.1f}" for k in ("rank1", "rank5", "mAP", "mINP"))
              + f"{r['seconds']:10.2f}{r['peak_rss_gib']:16.2f}{r['baseline_rss_gib']:15.2f}")
    results = {"features": described, "machine": cpu(), "device": args.device,
               "training_seconds": {k.removesuffix(" seconds"): v for k, v in models.items() if k.endswith(" seconds")},
               "accuracy": rows}
    save(args.out, results)
    if args.scale != "none":
        scales = ["quick"] if args.quick else ["market", "msmt"] if args.scale == "both" else [args.scale]
        results["scale"], summaries = [], {}
        for scale in scales:
            rows, summaries[scale] = scale_section(scale, args.device, args.repeats, args.scale_methods)
            results["scale"] += rows
            save(args.out, results)  # a long run keeps what it measured so far
        summary = {"scale": scales[0], **{k: v for k, v in summaries[scales[0]].items() if k != "completed"},
                   # None: the MSMT17-size section did not run here; nothing measured, nothing claimed
                   "msmt_scale_completed": summaries["msmt"]["completed"] if "msmt" in summaries else None}
        results["summary"] = summary
        if "market" in scales:  # summary.json holds the Market-scale figures (and MSMT's when run with them)
            update_summary(summary, f"benchmarks/run.py --scale {args.scale} ({cpu()}, {args.device})")
    save(args.out, results)
    return 0



if __name__ == "__main__":
    sys.exit(main())
