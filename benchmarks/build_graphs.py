"""Time building neighborhood graphs: kNN + adjacency + PyG edges.

Prints medians over ``--repeats`` runs and writes JSON with ``--out``.
Example: python benchmarks/build_graphs.py --anchors 1000 --gallery 15913 --dim 2048
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from reidgraph.graph import GraphSettings, build_graphs, knn
from reidgraph.graph.search import keops_runs
from results_io import save


def timed(fn, repeats: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--anchors", type=int, default=1000)
    parser.add_argument("--gallery", type=int, default=15913, help="candidates (Market-1501 gallery size)")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--K", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    g = torch.Generator(device="cpu").manual_seed(0)
    # Clustered like ReID features: ~13 images per identity around a centre.
    centres = torch.randn(args.gallery // 13 + 1, args.dim, generator=g)
    gallery = (centres.repeat_interleave(13, 0)[:args.gallery] + 0.8 * torch.randn(args.gallery, args.dim, generator=g))
    gallery = gallery.to(device)
    anchors = gallery[:args.anchors] + 0.1 * torch.randn(args.anchors, args.dim, generator=g).to(device)
    settings = GraphSettings(K=args.K)
    # KeOps on CPU is 10-80x slower than a matmul; it is measured on CUDA only.
    backends = ["torch"] + (["keops"] if device.type == "cuda" and keops_runs("cuda") else [])
    results = {"anchors": args.anchors, "gallery": args.gallery, "dim": args.dim, "settings": settings.as_dict(),
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
               or platform.machine(), "threads": torch.get_num_threads(), "torch": torch.__version__, "runs": {}}
    for backend in backends:
        knn(anchors[:8], gallery, args.K, backend=backend)  # warm-up (KeOps compiles here)
        knn_t = timed(lambda: knn(anchors, gallery, args.K, backend=backend), args.repeats, device)
        total_t = timed(lambda: build_graphs(anchors, gallery, settings, backend=backend), args.repeats, device)
        results["runs"][backend] = {"knn_seconds": statistics.median(knn_t),
                                    "build_seconds": statistics.median(total_t),
                                    "knn_all": knn_t, "build_all": total_t}
        print(f"{backend:>6}: kNN {statistics.median(knn_t):.4f} s, build {args.anchors} graphs "
              f"(kNN + adjacency + PyG edges) {statistics.median(total_t):.3f} s  "
              f"[median of {args.repeats}; {results['device']}, {results['threads']} threads]")
    save(args.out, results)


if __name__ == "__main__":
    main()
