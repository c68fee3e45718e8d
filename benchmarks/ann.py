"""Approximate kNN (faiss IVF and HNSW, reidgraph.graph.ann) against exact search.

(a) Real features (``SHARED/features/*/cuhk03_labeled_val.npz``, CUHK03-NP
query/gallery): recall@150 of each kind at its default settings against exact
torch kNN, and the mAP change (points) of two K=150 pipelines when they take the
ANN's neighbors instead of the exact ones: the cosine ranking of each query's
150 candidates followed by the rest of the gallery in cosine order (exact
candidates give the plain cosine ranking), and training-free fusion on the
paper's graphs (``fusion-paper``: :func:`~reidgraph.nn.ffgnn_rerank` with
:class:`~reidgraph.nn.TrainingFreeFusion`, kNN backend ``ivf`` / ``hnsw``). The
val galleries hold 738 images, so also with the 7,239 train images of the same
model added as distractors (7,977). The defaults were chosen on the train features
alone (see ``reidgraph/graph/ann.py``); they are train-vs-train neighbors there,
distractors here.

(b) A generated gallery of 1,000,000 images, D=256: identity centres drawn
around 1,000 group centres (``N(group, 1.5^2 I)``), 50,000 identities, images
``N(identity, 0.8^2 I)``, generated in chunks with fixed seeds; 10,000 queries
drawn the same way. Per kind, each step in its own fresh process (peak RSS is the
process's ``VmHWM``, which unlike ``ru_maxrss`` does not carry a parent's peak):
build + save the index to a temporary folder; load it + search the 10,000
queries for K=150; recall@150 on the first 1,000 queries against exact chunked
torch search, also for a ladder of ``nprobe`` / ``ef_search`` values.

Example:
    REIDGRAPH_SHARED=SHARED nice -n 10 python benchmarks/ann.py --out benchmarks/results/ann_cpu2.json
    python benchmarks/ann.py --quick        # tiny sizes, seconds
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from results_io import cpu, save
from scale import isolated_call, peak_rss_gib
from shared_paths import ENV, shared

SHARED = shared("features")  # None where $REIDGRAPH_SHARED is unset: part (a) is then skipped
FEATURE_SETS = {"osnet": "osnet_x0_25_msmt17", "omz": "omz_0277"}
KINDS = ("ivf", "hnsw")
K = 150
PEAK_LIMIT_GIB = 16
LADDER = {"ivf": ("nprobe", [16, 32, 64, 128, 256, 512, 1024]), "hnsw": ("ef_search", [150, 300, 600, 1200, 2400])}


def recall_at(found, exact) -> float:
    """Mean over queries of |found ∩ exact| / k (both ``[Q, k]`` indices)."""
    import torch

    hits = (found[:, :, None] == exact[:, None, :]).any(dim=2) if found.shape[0] * K * K < 2**28 else torch.cat(
        [(f[:, :, None] == e[:, None, :]).any(dim=2) for f, e in zip(found.split(256), exact.split(256))])
    return float(hits.float().mean())


# (a) real features ---------------------------------------------------------------------------------------------

def shared_section(name: str, folder: str) -> list[dict]:
    import torch

    from reidgraph.features import FeatureSet
    from reidgraph.graph import GraphSettings, knn
    from reidgraph.nn import TrainingFreeFusion, ffgnn_rerank
    from reidgraph.ranking import HeadRanking
    from reidgraph.rerank import rerank

    val = FeatureSet.load(SHARED / folder / "cuhk03_labeled_val.npz")
    train = FeatureSet.load(SHARED / folder / "cuhk03_labeled_train.npz")
    q, g = val.query_gallery()
    # train identities as distractors: ids no query shares
    pids = torch.cat([g.pids, train.pids + int(g.pids.max()) + 1])
    galleries = {"val gallery": (g.feats, g.pids, g.camids),
                 "val gallery + train distractors": (torch.cat([g.feats, train.feats]), pids,
                                                     torch.cat([g.camids, train.camids]))}
    rows = []
    for gallery_name, (feats, g_pids, g_camids) in galleries.items():
        labels = (q.pids, g_pids, q.camids, g_camids)
        exact_sims, exact_idx = knn(q.feats, feats, K, backend="torch")
        cosine = HeadRanking(q.feats, feats, exact_idx, 1 - exact_sims).evaluate(*labels).mAP
        fused = {}
        for backend in ("torch", *KINDS):
            start = time.perf_counter()
            fused[backend] = ffgnn_rerank(TrainingFreeFusion(), q.feats, feats, GraphSettings(),
                                          backend=backend).evaluate(*labels).mAP
            fused[f"{backend}_seconds"] = time.perf_counter() - start
        registry = rerank("fusion-paper", q.feats, feats).evaluate(*labels).mAP
        assert abs(registry - fused["torch"]) < 1e-9, "fusion-paper through the registry differs from ffgnn_rerank"
        for kind in KINDS:
            start = time.perf_counter()
            sims, idx = knn(q.feats, feats, K, backend=kind)
            seconds = time.perf_counter() - start
            head = HeadRanking(q.feats, feats, idx, 1 - sims).evaluate(*labels).mAP
            rows.append({"features": name, "gallery": gallery_name, "queries": len(q), "gallery_size": len(feats),
                         "kind": kind, "settings": "defaults", "recall_at_150": recall_at(idx, exact_idx),
                         "knn_seconds": seconds, "cosine_head_map_exact": cosine, "cosine_head_map_ann": head,
                         "cosine_head_map_change": 100 * (head - cosine), "fusion_map_exact": fused["torch"],
                         "fusion_map_ann": fused[kind], "fusion_map_change": 100 * (fused[kind] - fused["torch"]),
                         "fusion_seconds_exact": fused["torch_seconds"],
                         "fusion_seconds_ann": fused[f"{kind}_seconds"]})
    return rows


# (b) a generated million-image gallery ---------------------------------------------------------------------------

def generated(n: int, dim: int, seed: int, groups: int, ids: int, chunk: int = 65536):
    """``[n, dim]`` images of the identities of seed-0 centres (see the module docstring), in chunks."""
    import torch

    shared = torch.Generator().manual_seed(0)
    group = torch.randn(groups, dim, generator=shared)
    identity = group[torch.randint(groups, (ids,), generator=shared)] + 1.5 * torch.randn(ids, dim, generator=shared)
    out = torch.empty(n, dim)
    for start in range(0, n, chunk):
        g = torch.Generator().manual_seed(seed * 1_000_003 + start)
        m = min(chunk, n - start)
        out[start:start + m] = identity[torch.randint(ids, (m,), generator=g)] + 0.8 * torch.randn(m, dim, generator=g)
    return out


def sizes(cfg: dict) -> tuple[int, int]:
    return max(1, cfg["gallery"] // 1000), max(1, cfg["gallery"] // 20)  # groups, identities


def run_exact(cfg: dict, work: str) -> dict:
    """Exact top-150 of the first ``recall_queries`` queries (chunked torch matmul), saved for the recall."""
    import torch

    from reidgraph.graph import knn

    gallery = generated(cfg["gallery"], cfg["dim"], 1, *sizes(cfg))
    query = generated(cfg["queries"], cfg["dim"], 2, *sizes(cfg))[:cfg["recall_queries"]]
    start = time.perf_counter()
    sims, idx = knn(query, gallery, K, backend="torch", chunk_size=128, screen=False)
    seconds = time.perf_counter() - start
    torch.save({"sims": sims, "idx": idx}, Path(work) / "exact.pt")
    return {"seconds": seconds, "queries": cfg["recall_queries"], "peak_rss_gib": peak_rss_gib()}


def run_build(cfg: dict, work: str, kind: str) -> dict:
    from reidgraph.graph import AnnIndex

    start = time.perf_counter()
    gallery = generated(cfg["gallery"], cfg["dim"], 1, *sizes(cfg))
    generate = time.perf_counter() - start
    start = time.perf_counter()
    index = AnnIndex.build(gallery, kind)
    build = time.perf_counter() - start
    start = time.perf_counter()
    path = Path(work) / f"{kind}.ann"
    index.save(path)
    return {"generate_seconds": generate, "build_seconds": build, "save_seconds": time.perf_counter() - start,
            "index_gib": path.stat().st_size / 2**30, "settings": repr(index.settings), "peak_rss_gib": peak_rss_gib()}


def run_search(cfg: dict, work: str, kind: str) -> dict:
    import torch

    from reidgraph.graph import AnnIndex

    baseline = peak_rss_gib()
    start = time.perf_counter()
    index = AnnIndex.load(Path(work) / f"{kind}.ann", dim=cfg["dim"], size=cfg["gallery"])
    load = time.perf_counter() - start
    query = generated(cfg["queries"], cfg["dim"], 2, *sizes(cfg))
    start = time.perf_counter()
    _, idx = index.search(query, K)
    search = time.perf_counter() - start
    peak = peak_rss_gib()
    exact = torch.load(Path(work) / "exact.pt", weights_only=True)
    R = exact["idx"].shape[0]
    setting = index.nprobe(K) if kind == "ivf" else index.ef_search(K)
    name, values = LADDER[kind]
    limit = index.settings.nlist if kind == "ivf" else math.inf
    ladder = []
    for value in sorted({v for v in values if v <= limit} | {setting}):
        index.settings = type(index.settings)(**{**vars(index.settings), name: value})
        t = time.perf_counter()
        _, found = index.search(query[:R], K)
        ladder.append({name: value, "recall_at_150": recall_at(found, exact["idx"]),
                       "seconds_per_1000_queries": (time.perf_counter() - t) * 1000 / R, "default": value == setting})
    return {"load_seconds": load, "search_seconds": search, "default_" + name: setting,
            "recall_at_150": recall_at(idx[:R], exact["idx"]), "peak_rss_gib": peak, "baseline_rss_gib": baseline,
            "ladder": ladder}


def million_section(cfg: dict, kinds: list[str], work: str) -> dict:
    exact = isolated_call(run_exact, cfg, work)
    print(f"exact torch kNN (float32, chunks of 128 queries): {exact['queries']} queries in {exact['seconds']:.1f} s "
          f"(~{exact['seconds'] * cfg['queries'] / exact['queries']:.0f} s for {cfg['queries']}), "
          f"peak RSS {exact['peak_rss_gib']:.2f} GiB", flush=True)
    rows = {}
    searched = f"search {cfg['queries']} (s)"
    print(f"{'kind':<6}{'build (s)':>10}{'save (s)':>9}{'load (s)':>9}{searched:>18}"
          f"{'recall@150':>12}{'peak build':>12}{'peak search':>13}{'index GiB':>11}  settings")
    for kind in kinds:
        build = isolated_call(run_build, cfg, work, kind)
        search = isolated_call(run_search, cfg, work, kind)
        (Path(work) / f"{kind}.ann").unlink()
        rows[kind] = {**build, **{k: v for k, v in search.items() if k != "peak_rss_gib"},
                      "build_peak_rss_gib": build["peak_rss_gib"], "search_peak_rss_gib": search["peak_rss_gib"],
                      "peak_rss_gib": max(build["peak_rss_gib"], search["peak_rss_gib"]),
                      "build_plus_search_seconds": build["build_seconds"] + search["search_seconds"]}
        r = rows[kind]
        print(f"{kind:<6}{r['build_seconds']:10.1f}{r['save_seconds']:9.1f}{r['load_seconds']:9.1f}"
              f"{r['search_seconds']:18.1f}{r['recall_at_150']:12.4f}{r['build_peak_rss_gib']:12.2f}"
              f"{r['search_peak_rss_gib']:13.2f}{r['index_gib']:11.2f}  {r['settings']}", flush=True)
    for kind, r in rows.items():
        name = LADDER[kind][0]
        steps = [f"{s[name]}{'*' if s['default'] else ''}: {s['recall_at_150']:.4f} "
                 f"({s['seconds_per_1000_queries']:.1f} s/1k)" for s in r["ladder"]]
        print(f"  {kind} {name} ladder on {exact['queries']} queries (* default): " + ", ".join(steps))
    return {"exact": exact, "kinds": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--recall-queries", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--skip-shared", action="store_true", help="leave out part (a), the real features")
    parser.add_argument("--quick", action="store_true", help="a 20,000-image gallery, 500 queries (seconds)")
    parser.add_argument("--work", help="folder for the indexes and exact neighbors (default: a temporary one)")
    parser.add_argument("--machine", default=cpu(), help="for the record (default: this CPU, as /proc/cpuinfo names it)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.gallery, args.queries, args.recall_queries = 20_000, 500, 200
    if not 1 <= args.recall_queries <= args.queries:
        parser.error("--recall-queries must be between 1 and --queries")
    results = {"machine": args.machine, "k": K, "shared": [], "million": None}

    missing = [f for f in FEATURE_SETS.values() if SHARED is None or not (SHARED / f / "cuhk03_labeled_val.npz").is_file()]
    if not args.skip_shared and missing:
        print(f"(a) skipped: no features in {SHARED or '$' + ENV + '/features (unset)'} for {', '.join(missing)}")
    elif not args.skip_shared:
        print(f"(a) real features, CUHK03-NP val queries; K={K}; ANN at default settings; mAP in %, change in points")
        print(f"{'features':<9}{'gallery':<40}{'kind':<6}{'recall@150':>11}{'cosine top-150 mAP':>22}"
              f"{'fusion-paper mAP':>22}")
        for name, folder in FEATURE_SETS.items():
            for r in shared_section(name, folder):
                results["shared"].append(r)
                gallery = f"{r['gallery']} ({r['gallery_size']})"
                print(f"{name:<9}{gallery:<40}{r['kind']:<6}"
                      f"{r['recall_at_150']:11.4f}"
                      f"{100 * r['cosine_head_map_exact']:10.2f} ->{100 * r['cosine_head_map_ann']:6.2f}"
                      f" ({r['cosine_head_map_change']:+.2f})"
                      f"{100 * r['fusion_map_exact']:8.2f} ->{100 * r['fusion_map_ann']:6.2f}"
                      f" ({r['fusion_map_change']:+.2f})", flush=True)
        val = [r for r in results["shared"] if r["gallery"] == "val gallery"]
        results["ann_recall_at_150"] = min(r["recall_at_150"] for r in val)
        results["ann_recall_at_150_with_distractors"] = min(r["recall_at_150"] for r in results["shared"]
                                                            if r["gallery"] != "val gallery")
        for name in FEATURE_SETS:
            # the larger loss of either kind and either pipeline, on the val gallery
            results[f"ann_map_change_{name}"] = min(min(r["fusion_map_change"], r["cosine_head_map_change"])
                                                    for r in val if r["features"] == name)
        save(args.out, results)

    cfg = {"gallery": args.gallery, "queries": args.queries, "recall_queries": args.recall_queries, "dim": args.dim}
    groups, ids = sizes(cfg)
    print(f"\n(b) generated gallery: {args.gallery} x {args.dim} ({ids} identities in {groups} groups), "
          f"{args.queries} queries, K={K}; {args.machine}; each step in a fresh process")
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        million = million_section(cfg, args.kinds, work)
    results["million"] = {**cfg, **million}
    kinds = million["kinds"]
    # the headline figures: IVF, the kind that reaches recall@150 >= 0.99 at its defaults there
    headline = "ivf" if "ivf" in kinds else next(iter(kinds))
    results["million_gallery_kind"] = headline
    results["million_gallery_seconds"] = kinds[headline]["build_plus_search_seconds"]
    results["million_gallery_recall_at_150"] = kinds[headline]["recall_at_150"]
    results["million_gallery_seconds_by_kind"] = {k: r["build_plus_search_seconds"] for k, r in kinds.items()}
    results["million_gallery_peak_gib"] = max(r["peak_rss_gib"] for r in kinds.values())
    over = [k for k, r in kinds.items() if r["peak_rss_gib"] > PEAK_LIMIT_GIB]
    print(f"peak RSS {results['million_gallery_peak_gib']:.2f} GiB: "
          + (f"OVER the {PEAK_LIMIT_GIB} GiB limit for {', '.join(over)}" if over else f"under {PEAK_LIMIT_GIB} GiB"))
    save(args.out, results)
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
