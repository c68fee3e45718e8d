"""The scale-out figures in one run, written to ``benchmarks/results/summary.json``.

1. k-reciprocal at Market-1501 size against the original dense algorithm
   (:mod:`scale`: 3,368 x 15,913, 2048-d generated labelled features, each run in its
   own process, the median of ``--repeats``; both end in evaluation with the labels):
   ``kreciprocal_speedup`` = dense seconds / ours.
2. k-reciprocal at MSMT17 size (11,659 x 82,161, one run, under 24 GiB):
   ``msmt_kreciprocal_seconds``.
3. ``reidgraph rerank`` in one process and under ``torchrun --nproc-per-node 2``
   (gloo) on generated label-free files (``--sharded-size`` queries x gallery,
   D=256), for cosine, fusion-paper and k-reciprocal: ``sharded_identical`` is
   true when every pair of output files holds the same lists (distances within 1e-6).
4. Approximate kNN on the shared real features (:mod:`ann` part (a), default
   settings): ``ann_recall_at_150``, the smallest recall@150 of either kind on
   either val gallery (alone, and with the train images as distractors), and
   ``ann_map_change_<features>``, the largest absolute mAP change (points) of
   either kind and pipeline there. Skipped where ``REIDGRAPH_SHARED`` is unset.
5. A generated 1,000,000-image gallery, D=256 (:mod:`ann` part (b)), IVF at its
   defaults: ``million_gallery_seconds`` (build + search of 10,000 queries) and
   ``million_gallery_peak_gib``.
6. ``gpu_ffgnn_market_seconds``: FFGNN inference at Market size on CUDA where this
   machine has it; otherwise null, with the reason.

The keys it measures replace those in ``summary.json``; keys other benchmarks wrote
(``benchmarks/run.py``'s FFGNN roofline) stay, and ``sources`` says which command wrote which, when.

Example:
    REIDGRAPH_SHARED=SHARED python benchmarks/summary.py --out benchmarks/results/summary_cpu2.json
    python benchmarks/summary.py --quick      # small sizes, a minute or two; writes no summary.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ann
from results_io import cpu, save, update_summary
from scale import measure

SHARDED_METHODS = ("cosine", "fusion-paper", "k-reciprocal")


def kreciprocal_section(scale: str, device: str, repeats: int) -> dict:
    """Our k-reciprocal and, unless at MSMT size, the dense original, each ``repeats`` times in fresh processes."""
    rows = {"ours": measure("k-reciprocal", scale, device, repeats)}
    if scale != "msmt":
        rows["dense"] = measure("dense k-reciprocal (original algorithm)", scale, device, repeats)
    for name, r in rows.items():
        print(f"  k-reciprocal {name:<6} {scale:<7} {r['seconds']:8.2f} s (runs: "
              f"{', '.join(f'{s:.2f}' for s in r['seconds_each'])})  peak {r['peak_rss_gib']:.2f} GiB  "
              f"mAP {100 * r.get('mAP', float('nan')):.2f}", flush=True)
    return rows


def sharded_section(queries: int, gallery: int, work: Path) -> dict:
    """``reidgraph rerank`` alone and under torchrun with 2 gloo processes; whether each pair of files agrees."""
    import numpy as np
    import torch

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(gallery // 10, 256, generator=g)
    for name, n in (("query", queries), ("gallery", gallery)):
        feats = centres[torch.randint(len(centres), (n,), generator=g)] + 0.8 * torch.randn(n, 256, generator=g)
        np.savez(work / f"{name}.npz", feats=feats.numpy())
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launchers = {"one": [sys.executable, "-m", "reidgraph.cli"],
                 "two": [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                         str(port), "-m", "reidgraph.cli"]}
    rows = {}
    for method in SHARDED_METHODS:
        seconds = {}
        for launch, prefix in launchers.items():
            out = work / f"{method}-{launch}.npz"
            start = time.perf_counter()
            subprocess.run([*prefix, "rerank", "--query", str(work / "query.npz"), "--gallery",
                            str(work / "gallery.npz"), "--method", method, "--top", "100", "--out", str(out),
                            "--quiet"], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"} if launch == "two"
                           else None)
            seconds[launch] = time.perf_counter() - start
        with np.load(work / f"{method}-one.npz") as one, np.load(work / f"{method}-two.npz") as two:
            same = bool(np.array_equal(one["index"], two["index"])
                        and np.allclose(one["distance"], two["distance"], rtol=0, atol=1e-6))
        rows[method] = {"identical": same, "seconds_one_process": seconds["one"],
                        "seconds_two_processes": seconds["two"]}
        print(f"  {method:<14} identical: {same}   1 process {seconds['one']:.1f} s, 2 processes "
              f"{seconds['two']:.1f} s", flush=True)
    return {"queries": queries, "gallery": gallery, "dim": 256, "methods": rows}


def ann_section(quick: bool, work: Path) -> tuple[dict, dict]:
    """Part (a) of :mod:`ann` where the shared features are found, and part (b) for IVF alone."""
    shared = []
    missing = [f for f in ann.FEATURE_SETS.values()
               if ann.SHARED is None or not (ann.SHARED / f / "cuhk03_labeled_val.npz").is_file()]
    if missing:
        print(f"  (a) skipped: no shared features for {', '.join(missing)} (set REIDGRAPH_SHARED)")
    else:
        for name, folder in ann.FEATURE_SETS.items():
            for r in ann.shared_section(name, folder):
                shared.append(r)
                print(f"  {name:<6} {r['gallery']:<32} {r['kind']:<5} recall@150 {r['recall_at_150']:.4f}  "
                      f"mAP change: cosine top-150 {r['cosine_head_map_change']:+.2f}, fusion-paper "
                      f"{r['fusion_map_change']:+.2f}", flush=True)
    cfg = ({"gallery": 20_000, "queries": 500, "recall_queries": 200, "dim": 256} if quick else
           {"gallery": 1_000_000, "queries": 10_000, "recall_queries": 1_000, "dim": 256})
    million = {**cfg, **ann.million_section(cfg, ["ivf"], str(work))}
    return {"rows": shared}, million


def gpu_section() -> dict:
    """FFGNN inference at Market size on CUDA, or why it was not measured."""
    import torch

    if not torch.cuda.is_available():
        return {"seconds": None, "reason": "no CUDA device on this machine"}
    r = measure("FFGNN inference", "market", "cuda", 3)
    return {"seconds": r["seconds"], "device": torch.cuda.get_device_name(), "row": r}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per Market-size k-reciprocal (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (quick scale, 20,000-image ANN gallery); writes no summary.json")
    parser.add_argument("--sharded-size", type=int, nargs=2, default=(1000, 20000), metavar=("QUERIES", "GALLERY"))
    parser.add_argument("--machine", default=cpu(), help="for the record (default: this CPU, as /proc/cpuinfo names it)")
    parser.add_argument("--out", help="also write every row as JSON here")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    market, msmt = ("quick", "quick") if args.quick else ("market", "msmt")
    results = {"machine": args.machine, "platform": platform.machine(), "quick": args.quick}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"1. k-reciprocal against the dense original, {market} size, median of {args.repeats}")
        results["kreciprocal_market"] = kreciprocal_section(market, "cpu", args.repeats)
        save(args.out, results)
        print(f"2. k-reciprocal at {msmt} size, one run")
        results["kreciprocal_msmt"] = kreciprocal_section(msmt, "cpu", 1)
        save(args.out, results)
        queries, gallery = (100, 2000) if args.quick else args.sharded_size
        print(f"3. reidgraph rerank, 1 process against torchrun --nproc-per-node 2 (gloo), {queries} x {gallery}")
        results["sharded"] = sharded_section(queries, gallery, work)
        save(args.out, results)
        print("4. approximate kNN (faiss IVF, HNSW): shared features, then a generated gallery (IVF)")
        results["ann_shared"], results["million"] = ann_section(args.quick, work)
        save(args.out, results)
    results["gpu"] = gpu_section()

    ours, dense = results["kreciprocal_market"]["ours"], results["kreciprocal_market"]["dense"]
    rows, ivf = results["ann_shared"]["rows"], results["million"]["kinds"]["ivf"]
    summary = {
        "kreciprocal_speedup": dense["seconds"] / ours["seconds"],
        "kreciprocal_seconds": ours["seconds"], "dense_kreciprocal_seconds": dense["seconds"],
        "kreciprocal_peak_rss_gib": ours["peak_rss_gib"], "dense_kreciprocal_peak_rss_gib": dense["peak_rss_gib"],
        "msmt_kreciprocal_seconds": results["kreciprocal_msmt"]["ours"]["seconds"],
        "msmt_kreciprocal_peak_rss_gib": results["kreciprocal_msmt"]["ours"]["peak_rss_gib"],
        "sharded_identical": all(r["identical"] for r in results["sharded"]["methods"].values()),
        "ann_recall_at_150": min((r["recall_at_150"] for r in rows), default=None),
        **{f"ann_map_change_{name}": max((max(abs(r["fusion_map_change"]), abs(r["cosine_head_map_change"]))
                                          for r in rows if r["features"] == name), default=None)
           for name in ann.FEATURE_SETS},
        "million_gallery_seconds": ivf["build_plus_search_seconds"],
        "million_gallery_recall_at_150": ivf["recall_at_150"],
        "million_gallery_peak_gib": ivf["peak_rss_gib"],
        "gpu_ffgnn_market_seconds": results["gpu"]["seconds"],
    }
    results["summary"] = summary
    save(args.out, results)
    print(json.dumps(summary, indent=2))
    if not args.quick:
        update_summary(summary, f"benchmarks/summary.py on the {args.machine}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
