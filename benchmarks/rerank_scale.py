"""`reidgraph rerank` at MSMT17 size: time and peak memory of every method through the command.

Data: generated clustered features (as benchmarks/scale.py), 11,659 queries x
82,161 gallery, 2048-d, 3,060 identities, 15 random camera ids, written once as
``query.npz`` / ``gallery.npz`` (feats, camids, paths; no identity labels) in
``--work``. Each method runs ``reidgraph rerank --query query.npz --gallery
gallery.npz --method M --top 100 --out ranked.npz`` in its own fresh process,
so the time (wall clock, reading the files and writing the output included)
and the peak resident memory (``VmHWM``) are its own. ``ffgnn`` uses a model
trained here for one epoch with the default recipe on generated 2048-d train
features: its inference cost does not depend on what it learned.

Example:
    python benchmarks/rerank_scale.py --work /tmp/msmt --out benchmarks/results/rerank_msmt_cpu2.json
"""
from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ffgnn_inference import clustered
from results_io import save
from scale import SCALES, isolated_call, peak_rss_gib

METHODS = ["cosine", "ffgnn", "fusion", "fusion-paper", "k-reciprocal", "ca-jaccard", "ecn", "aqe", "gnn-rerank"]
CAMERAS = 15


def write_inputs(work: Path, scale: str) -> None:
    """query.npz and gallery.npz (label-free) and train.npz (for the model) of the given size, once."""
    import torch

    from reidgraph.data import synthetic_features

    Q, G, D, ids = SCALES[scale]
    g = torch.Generator().manual_seed(2)
    for name, num, seed in (("query", Q, 1), ("gallery", G, 0)):
        path = work / f"{name}.npz"
        if not path.is_file():
            np.savez(path, feats=clustered(num, D, ids, seed=seed).numpy(),
                     camids=torch.randint(CAMERAS, (num,), generator=g).numpy(),
                     paths=np.array([f"{name}/{i:06d}.jpg" for i in range(num)]))
    if not (work / "train.npz").is_file():
        synthetic_features(200, 8, 4, D, seed=3).save(work / "train.npz")


def train_model(work: Path) -> Path:
    """An FFGNN of the default recipe after one epoch on the generated train features."""
    from reidgraph.engine import recipe, train_ffgnn
    from reidgraph.features import FeatureSet

    path = work / "ffgnn.pt"
    if not path.is_file():
        settings, config = recipe()
        train_ffgnn(FeatureSet.load(work / "train.npz"), settings, replace(config, epochs=1), checkpoint=path,
                    progress=False)
    return path


def run_command(argv: list[str]) -> dict:
    """``reidgraph`` with ``argv`` in this (fresh) process: exit code, seconds and peak RSS."""
    from reidgraph.cli import main

    baseline = peak_rss_gib()
    start = time.perf_counter()
    code = main(argv)
    return {"exit_code": code, "seconds": time.perf_counter() - start, "peak_rss_gib": peak_rss_gib(),
            "baseline_rss_gib": baseline}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="folder for the generated inputs, the model and the outputs")
    parser.add_argument("--scale", choices=("msmt", "market", "quick"), default="msmt")
    parser.add_argument("--methods", nargs="+", default=METHODS, help=f"default: {' '.join(METHODS)}")
    parser.add_argument("--top", type=int, default=100)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    write_inputs(work, args.scale)
    model = train_model(work) if any(m.startswith("ffgnn") for m in args.methods) else None
    Q, G, D, ids = SCALES[args.scale]
    print(f"reidgraph rerank at {args.scale} size: {Q} queries x {G} gallery, D={D}, generated clustered features, "
          f"{CAMERAS} random cameras, --top {args.top}; {platform.machine()}, cpu, each method in its own process")
    print(f"{'method':<16}{'exit':>6}{'time (s)':>10}{'peak RSS (GiB)':>16}{'after imports':>15}")
    rows = []
    for method in args.methods:
        out = work / f"ranked_{method}.npz"
        argv = ["rerank", "--query", str(work / "query.npz"), "--gallery", str(work / "gallery.npz"),
                "--method", method, "--top", str(args.top), "--out", str(out), "--quiet"]
        row = {"method": method, **isolated_call(run_command, argv + (["--model", str(model)] if method.startswith(
            "ffgnn") else []))}
        if row["exit_code"] == 0:
            with np.load(out) as data:
                row["output_shape"] = list(data["index"].shape)
        rows.append(row)
        print(f"{method:<16}{row['exit_code']:6d}{row['seconds']:10.1f}{row['peak_rss_gib']:16.2f}"
              f"{row['baseline_rss_gib']:15.2f}", flush=True)
        save(args.out, {"scale": args.scale, "queries": Q, "gallery": G, "dim": D, "top": args.top,
                        "machine": platform.machine(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
