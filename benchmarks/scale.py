"""Speed and memory of every method at Market-1501 and MSMT17 size, each run in its own process.

Generated labelled features (:func:`labelled`: identity centres plus noise, query
and gallery drawn from the same identities, about 13 images an identity at Market
size, about 30 at MSMT size, whose test set has 3,060 identities; random camera
ids). At the noise used, the features alone score 50.5% mAP at Market size
(cosine ranking), between the two shared models on CUHK03 (23.9 and 63.2). Every re-ranking row ends in
what evaluation does with its result: CMC and mAP counted from its distances
with the labels (:meth:`~reidgraph.ranking.Ranking.evaluate`), and the row
records that mAP. A method runs in a freshly spawned
process so that its peak resident memory (``VmHWM``) is its own; with
``repeats > 1`` it runs that many times, each in a new process, and the table
gives the median time and the largest peak. At MSMT size every process runs
under a 24 GiB address-space limit, so a method that needs more fails with an
allocation error instead of taking the machine down; the table says so.
"""
from __future__ import annotations

import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

from ffgnn_inference import matmul_rate, performed_flops

# queries, gallery, D, identities
SCALES = {"market": (3368, 15913, 2048, 1501), "msmt": (11659, 82161, 2048, 3060), "quick": (60, 300, 64, 30)}
MEMORY_LIMIT_GIB = {"msmt": 24}
NOISE = 3.5  # per-dimension noise around unit-variance identity centres: Market-size cosine mAP 0.505

KNN = ["kNN K=150, torch float32", "kNN K=150, torch bf16-screened", "kNN K=150, KeOps", "kNN K=150, faiss",
       "kNN all-vs-all k=21, torch float32", "kNN all-vs-all k=21, torch bf16-screened"]
METHODS = ["graph building", "FFGNN inference", "FFGNN inference, paper preset", "FFGNN+ECN", "k-reciprocal",
           "dense k-reciprocal (original algorithm)",
           "CA-Jaccard", "ECN", "AQE", "GNN re-ranking", "GCRV"]
# what the MSMT17-size section runs: the methods the issue asks to complete, and the dense one, to show it cannot
MSMT = ["kNN K=150, torch float32", "FFGNN inference", "k-reciprocal", "dense k-reciprocal (original algorithm)",
        "GNN re-ranking", "CA-Jaccard", "ECN", "AQE"]


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


def available(name: str) -> bool:
    """Whether this machine can run ``name`` (KeOps and faiss are optional)."""
    import importlib.util

    from reidgraph.graph.optional import faiss_available
    needs = {"KeOps": lambda: importlib.util.find_spec("pykeops") is not None, "faiss": faiss_available}
    return all(present() for word, present in needs.items() if word in name)


def labelled(scale: str, seed: int = 0):
    """``(query [Q, D], gallery [G, D], q_pids, g_pids, q_camids, g_camids)`` of one scale: identity centres
    ``N(0, I)``, images ``centre + NOISE * N(0, I)``, query and gallery drawn from the same identities, camera
    ids uniform over 6 cameras at Market size and 15 at MSMT size."""
    import torch

    Q, G, D, ids = SCALES[scale]
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(ids, D, generator=g)
    q_pids, g_pids = torch.randint(ids, (Q,), generator=g), torch.randint(ids, (G,), generator=g)
    query = centres[q_pids] + NOISE * torch.randn(Q, D, generator=g)
    gallery = centres[g_pids] + NOISE * torch.randn(G, D, generator=g)
    cams = 6 if G < 50000 else 15
    return query, gallery, q_pids, g_pids, torch.randint(cams, (Q,), generator=g), torch.randint(cams, (G,), generator=g)


def run_scale_method(name: str, scale: str, device: str = "cpu") -> dict:
    """Time one method at a given scale on generated features; runs in a fresh process."""
    import torch

    from reidgraph import rerank
    from reidgraph.engine import recipe
    from reidgraph.evaluation import evaluate_distances
    from reidgraph.graph import GraphSettings, iter_graph_batches, knn
    from reidgraph.nn import FFGNN, ffgnn_rerank
    from reidgraph.ranking import Ranking

    limit = MEMORY_LIMIT_GIB.get(scale)
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit * 2**30, limit * 2**30))
    Q, G, D, ids = SCALES[scale]
    query, gallery, q_pids, g_pids, qc, gc = (t.to(device) for t in labelled(scale))
    K = min(150, G // 2)
    settings = GraphSettings(K=K, k=min(20, K), tau=min(20, K))
    default = replace(recipe()[0], K=K, k=min(20, K), tau=min(20, K))
    peers = {"k-reciprocal": lambda: rerank.k_reciprocal(query, gallery),
             "CA-Jaccard": lambda: rerank.ca_jaccard(query, gallery, qc, gc),
             "ECN": lambda: rerank.ecn(query, gallery), "AQE": lambda: rerank.average_query_expansion(query, gallery),
             "GNN re-ranking": lambda: rerank.gnn_rerank(query, gallery),
             "GCRV": lambda: rerank.gcrv(query, gallery, qc, gc)}

    scores = {}

    def consume(result) -> None:  # what evaluation does with a re-ranked distance: count from it with the labels
        labels = (q_pids, g_pids, qc, gc)
        metrics = result.evaluate(*labels) if isinstance(result, Ranking) else evaluate_distances(result, *labels)
        scores["mAP"] = metrics.mAP

    def all_vs_all(screen: bool) -> None:  # the kNN k-reciprocal, ECN and GNN re-ranking run
        both = torch.cat([query, gallery])
        knn(both, both, 21, backend="torch", screen=screen)

    def graphs() -> None:
        _, neighbors = knn(query, gallery, K)
        for _ in iter_graph_batches(torch.nn.functional.normalize(query, dim=1),
                                    torch.nn.functional.normalize(gallery, dim=1), neighbors, settings, 64):
            pass

    work = {"kNN K=150, torch float32": lambda: knn(query, gallery, K, backend="torch", screen=False),
            "kNN K=150, torch bf16-screened": lambda: knn(query, gallery, K, backend="torch", screen=True),
            "kNN K=150, KeOps": lambda: knn(query, gallery, K, backend="keops"),
            "kNN K=150, faiss": lambda: knn(query, gallery, K, backend="faiss"),
            "kNN all-vs-all k=21, torch float32": lambda: all_vs_all(screen=False),
            "kNN all-vs-all k=21, torch bf16-screened": lambda: all_vs_all(screen=True),
            "graph building": graphs,
            "FFGNN inference": lambda: consume(ffgnn_rerank(default_model().to(device), query, gallery, default,
                                                            query_camids=qc, gallery_camids=gc)),
            "FFGNN inference, paper preset": lambda: ffgnn_rerank(FFGNN(D).to(device).eval(), query, gallery, settings),
            "FFGNN+ECN": lambda: consume(rerank.rerank("ffgnn+ecn", query, gallery, query_camids=qc,
                                                       gallery_camids=gc, model=model_file(default))),
            "dense k-reciprocal (original algorithm)": lambda: consume(rerank.k_reciprocal_dense(query, gallery)),
            **{n: (lambda f=f: consume(f())) for n, f in peers.items()}}
    def default_model():  # the default recipe's network, its W moved off the identity as training moves it
        net = FFGNN(D, output="l2", init="identity")
        for conv in net.convs:
            conv.lin.weight.data.add_(torch.randn(D, D, generator=torch.Generator().manual_seed(1)), alpha=0.02)
        return net.eval()

    def model_file(graph) -> str:  # the default model as train-gnn writes it, for the registry's ffgnn+PEER
        from reidgraph.checkpoint import save_checkpoint, stage_config
        from reidgraph.engine.train_gnn import GNNTrainConfig
        path = os.path.join(tempfile.mkdtemp(), "m.pt")
        save_checkpoint({"kind": "ffgnn", "config": stage_config(GNNTrainConfig(), graph=graph, channels=D),
                         "modules": {"model": default_model().state_dict()}}, path)
        return path

    baseline = peak_rss_gib()
    row = {"method": name, "scale": scale, "queries": Q, "gallery": G, "dim": D, "device": device,
           "memory_limit_gib": limit, "completed": True}
    start = time.perf_counter()
    try:
        work[name]()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            row["cuda_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    except (MemoryError, RuntimeError) as err:  # torch reports a refused allocation as a RuntimeError
        if "alloc" not in str(err).lower() and not isinstance(err, MemoryError):
            raise
        row.update(completed=False, error=str(err).splitlines()[0][:200])
    return {**row, **scores, "seconds": time.perf_counter() - start, "peak_rss_gib": peak_rss_gib(),
            "baseline_rss_gib": baseline}


def isolated_call(function, *args) -> dict:
    """``function(*args)`` in a freshly spawned process."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def isolated_run(name: str, scale: str, device: str) -> dict:
    """One run of :func:`run_scale_method` in its own process; a crash of that process (killed for memory,
    say) is a run that did not complete, not the end of the benchmark."""
    try:
        return isolated_call(run_scale_method, name, scale, device)
    except Exception as err:  # BrokenProcessPool and whatever the child raised
        return {"method": name, "scale": scale, "device": device, "completed": False,
                "error": f"{type(err).__name__}: {err}"[:200], "seconds": float("nan"),
                "peak_rss_gib": float("nan"), "baseline_rss_gib": float("nan")}


def measure(name: str, scale: str, device: str, repeats: int) -> dict:
    """Median time and largest peak memory of ``repeats`` runs, each in a new process.

    KeOps on CPU runs once: it is the GPU path, one to two orders of magnitude slower on CPU.
    """
    if "KeOps" in name and device == "cpu":
        repeats = 1
    runs = [isolated_run(name, scale, device) for _ in range(repeats)]
    done = [r for r in runs if r["completed"]]
    row = dict(runs[-1] if not done else done[0])
    row.update(repeats=repeats, seconds_each=[r["seconds"] for r in runs],
               seconds=statistics.median(r["seconds"] for r in (done or runs)),
               peak_rss_gib=max(r["peak_rss_gib"] for r in runs), completed=len(done) == len(runs))
    return row


def scale_section(scale: str, device: str, repeats: int, only: list[str] | None = None) -> tuple[list[dict], dict]:
    """Print and return the rows of one scale (``only`` these methods, where given), and its summary figures:
    those of the methods that ran."""
    Q, G, D, ids = SCALES[scale]
    repeats = 1 if scale == "msmt" else repeats
    names = MSMT if scale == "msmt" else KNN + METHODS
    names = [n for n in names if available(n) and (only is None or n in only)]
    limit = MEMORY_LIMIT_GIB.get(scale)
    print(f"\nspeed and memory, {scale} scale: {Q} queries x {G} gallery, D={D}, {ids} identities (generated, "
          f"labelled) on {device}; each run in its own process, median of the runs"
          + (f", under a {limit} GiB address-space limit" if limit else ""))
    print(f"{'method':<42}{'time (s)':>10}{'runs':>6}{'peak RSS (GiB)':>16}{'after set-up':>14}")
    rates = [matmul_rate(D)]
    rows = []
    for name in names:
        r = measure(name, scale, device, repeats)
        rows.append(r)
        status = "" if r["completed"] else f"   did not complete: {r.get('error', '')}"
        print(f"{name:<42}{r['seconds']:10.2f}{r['repeats']:6d}{r['peak_rss_gib']:16.2f}{r['baseline_rss_gib']:14.2f}{status}",
              flush=True)
    rates.append(matmul_rate(D))
    by = {r["method"]: r for r in rows}
    summary = {"matmul_flops_per_s": max(rates),
               "completed": [r["method"] for r in rows if r["completed"] and (not limit or r["peak_rss_gib"] <= limit)]}
    ours = by.get("k-reciprocal")
    if ours:
        summary.update(kreciprocal_seconds=ours["seconds"], kreciprocal_peak_rss_gib=ours["peak_rss_gib"])
    dense = by.get("dense k-reciprocal (original algorithm)")
    if ours and dense and ours["completed"] and dense["completed"]:
        print(f"k-reciprocal vs the original dense algorithm: {dense['seconds'] / ours['seconds']:.1f}x faster, "
              f"{ours['peak_rss_gib'] / dense['peak_rss_gib']:.2f} of its peak memory")
        summary.update(kreciprocal_speedup=dense["seconds"] / ours["seconds"],
                       dense_kreciprocal_seconds=dense["seconds"], dense_kreciprocal_peak_rss_gib=dense["peak_rss_gib"])
    ffgnn, paper, composed = (by.get(n) for n in ("FFGNN inference", "FFGNN inference, paper preset", "FFGNN+ECN"))
    if ffgnn:
        summary.update(ffgnn_seconds=ffgnn["seconds"], ffgnn_peak_rss_gib=ffgnn["peak_rss_gib"])
    if composed:
        summary.update(ffgnn_ecn_seconds=composed["seconds"], ffgnn_ecn_peak_rss_gib=composed["peak_rss_gib"])
    if ours:
        for key, row in (("ffgnn", ffgnn), ("ffgnn_ecn", composed)):
            if row:
                print(f"{row['method']} vs k-reciprocal: {row['seconds'] / ours['seconds']:.2f}x its time")
                summary[f"{key}_vs_kreciprocal_seconds"] = row["seconds"] / ours["seconds"]
    if paper:
        flops = performed_flops(Q, G, D, min(150, G // 2), 3)
        fraction = flops / paper["seconds"] / max(rates)
        print(f"FFGNN inference, paper preset: {flops / 1e12:.2f} TFLOP performed at "
              f"{flops / paper['seconds'] / 1e9:.1f} GFLOP/s, {100 * fraction:.0f}% of the float32 matmul rate "
              f"measured in this run ({max(rates) / 1e9:.1f} GFLOP/s)")
        summary.update(ffgnn_roofline_fraction=fraction, ffgnn_flops=flops, ffgnn_paper_seconds=paper["seconds"],
                       ffgnn_paper_peak_rss_gib=paper["peak_rss_gib"], ffgnn_roofline_rate="float32 matmul")
    gcrv = by.get("GCRV")
    if gcrv:
        summary.update(gcrv_seconds=gcrv["seconds"], gcrv_peak_rss_gib=gcrv["peak_rss_gib"])
    if gcrv and ours:
        print(f"GCRV vs k-reciprocal: {gcrv['seconds'] / ours['seconds']:.2f}x its time, "
              f"{gcrv['peak_rss_gib'] / ours['peak_rss_gib']:.2f}x its peak memory")
        summary["gcrv_vs_kreciprocal_seconds"] = gcrv["seconds"] / ours["seconds"]
    return rows, summary
