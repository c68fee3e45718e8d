"""FFGNN test-time inference: time, FLOP rate against this machine's matmul rate, and peak memory.

Clustered generated features at Market-1501 scale by default (3,368 queries x
15,913 gallery, 2048-d, 1,501 identities of ~13 images), K=150, 3 layers. The
matmul throughput is measured in the same run, so the ratio is not at the
mercy of a shared machine's load at another time.

Example: python benchmarks/ffgnn_inference.py --queries 3368 --out benchmarks/results/ffgnn_inference.json
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from reidgraph.graph import GraphSettings
from reidgraph.nn import FFGNN, ffgnn_rerank
from results_io import save


def clustered(num: int, dim: int, ids: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(ids, dim, generator=g)
    return centres[torch.randint(ids, (num,), generator=g)] + 0.8 * torch.randn(num, dim, generator=g)


def matmul_rate(dim: int, repeats: int = 5) -> float:
    """Median fp32 FLOP/s of a [4096, dim] x [dim, dim] product, the shape FFGNN's layers run."""
    a, b = torch.randn(4096, dim), torch.randn(dim, dim)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * 4096 * dim * dim / statistics.median(times)


def performed_flops(Q: int, G: int, D: int, K: int, layers: int) -> float:
    """Multiply-add FLOPs ffgnn_rerank performs: kNN, first-layer projections, per-graph cosine and layers."""
    n = K + 1
    knn = 2 * Q * G * D
    project = 2 * (Q + G) * D * D
    per_graph = 2 * n * n * D + layers * 2 * n * n * D + (layers - 1) * 2 * n * D * D
    return knn + project + Q * per_graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=3368)
    parser.add_argument("--gallery", type=int, default=15913)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--K", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out")
    args = parser.parse_args()
    gallery = clustered(args.gallery, args.dim, 1501, seed=0)
    query = clustered(args.queries, args.dim, 1501, seed=1)
    model = FFGNN(args.dim).eval()
    rate_before = matmul_rate(args.dim)
    start = time.perf_counter()
    ffgnn_rerank(model, query, gallery, GraphSettings(K=args.K), batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    rate_after = matmul_rate(args.dim)
    flops = performed_flops(args.queries, args.gallery, args.dim, args.K, len(model.convs))
    attainable = max(rate_before, rate_after)
    result = {"queries": args.queries, "gallery": args.gallery, "dim": args.dim, "K": args.K,
              "threads": torch.get_num_threads(), "seconds": seconds, "flops": flops,
              "achieved_flops_per_s": flops / seconds, "matmul_flops_per_s": attainable,
              "roofline_fraction": flops / seconds / attainable,
              "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    print(f"FFGNN inference, {args.queries} queries x {args.gallery} gallery, D={args.dim}, K={args.K}: "
          f"{seconds:.1f} s, {flops / 1e12:.2f} TFLOP performed, {flops / seconds / 1e9:.1f} GFLOP/s = "
          f"{100 * result['roofline_fraction']:.0f}% of the measured matmul rate ({attainable / 1e9:.1f} GFLOP/s), "
          f"peak RSS {result['peak_rss_gib']:.2f} GiB, {result['threads']} threads")
    save(args.out, result)


if __name__ == "__main__":
    main()
