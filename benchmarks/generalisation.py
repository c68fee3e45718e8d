"""The pipeline reidgraph chooses, against GCRV, on every shared feature set: one command.

For each shared set (CUHK03 OSNet, CUHK03 omz, Market-1501 OSNet), as a new user would:

1. ``reidgraph train-gnn --features TRAIN --out m.pt`` (default flags: the pipeline is chosen on identities
   held out of TRAIN), timed against ``train-gnn --no-select`` (one training) in the same run;
2. ``reidgraph evaluate --features VAL --model m.pt`` (no ``--method``: the stored pipeline);
3. ``reidgraph evaluate --features VAL`` (neither: the label-free rule, with camera ids), and the rule
   without camera ids (every image on one camera; the protocol still uses the ids);
4. on VAL, for comparison only (nothing is chosen here): GCRV, k-reciprocal, ECN, every pipeline of the
   model's held-out table, and the label-free pipelines.

Example:
    REIDGRAPH_SHARED=../shared python benchmarks/generalisation.py --out benchmarks/results/generalisation_cpu2.json
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_io import cpu, save
from shared_paths import TRAIN_FILES, shared_folder_and_out
# Label-free pipelines scored on val for comparison (with camera ids).
LABEL_FREE_ROWS = ["gcrv", "debias+k-reciprocal", "debias+ecn", "debias+ca-jaccard", "debias+gnn-rerank",
                   "debias+gcr+k-reciprocal", "debias+gcr+ecn", "debias+gcr+ca-jaccard", "ca-jaccard"]


def cli(*args: str) -> tuple[str, float]:
    """Run ``reidgraph ARGS`` in a fresh process: ``(stdout, seconds)``; a failure stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "reidgraph.cli", *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"reidgraph {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout, time.perf_counter() - start


def val_rows(val: Path, model: Path, methods: list[str]) -> dict[str, float]:
    """mAP on ``val`` of each method (with ``model`` where it has an FFGNN); fused features computed once."""
    from reidgraph.evaluation import evaluate_order
    from reidgraph.features import FeatureSet
    from reidgraph.rerank import parts, rerank
    from reidgraph.rerank.registry import LABEL_FREE

    q, g = FeatureSet.load(val).query_gallery()
    cache, rows = {}, {}
    for method in methods:
        uses = parts(method)[0] == "ffgnn"
        ranking = rerank(method, q.feats, g.feats, query_camids=q.camids, gallery_camids=g.camids,
                         model=model if uses else None, cache=cache)
        rows[method] = evaluate_order(ranking.order_chunks(), q.pids, g.pids, q.camids, g.camids).mAP
    ranking = rerank(LABEL_FREE[False], q.feats, g.feats)  # the rule without camera ids
    rows["label-free rule, no camera ids"] = evaluate_order(ranking.order_chunks(), q.pids, g.pids, q.camids,
                                                            g.camids).mAP
    for method in ("k-reciprocal", "ecn"):
        rows[method] = evaluate_order(rerank(method, q.feats, g.feats).order_chunks(), q.pids, g.pids, q.camids,
                                      g.camids).mAP
    return rows


def one_set(name: str, files: Path, work: Path) -> dict:
    """Every figure of one shared set (``files``: its path without ``_train.npz``/``_val.npz``)."""
    train, val = Path(f"{files}_train.npz"), Path(f"{files}_val.npz")
    model, plain = work / "m.pt", work / "plain.pt"
    _, plain_seconds = cli("train-gnn", "--no-select", "--features", str(train), "--out", str(plain), "--quiet")
    out, select_seconds = cli("train-gnn", "--features", str(train), "--out", str(model), "--quiet")
    print(out.strip())
    stored = json.loads(cli("evaluate", "--features", str(val), "--model", str(model), "--json", "--quiet")[0])
    free = json.loads(cli("evaluate", "--features", str(val), "--json", "--quiet")[0])
    from reidgraph.model_file import load_pipeline
    selection = load_pipeline(model)
    scored = [r["method"] for r in selection.rows if r["mAP"] is not None]
    methods = list(dict.fromkeys([m for m in scored if m.startswith("debias") == selection.debias
                                  or "ffgnn" not in m] + LABEL_FREE_ROWS))
    rows = val_rows(val, model, methods)
    own = {m: v for m, v in rows.items() if "ffgnn" in m and m.split("+")[-1] == "ffgnn"}
    return {"set": name, "train": str(train), "val": str(val), "plain_seconds": plain_seconds,
            "select_seconds": select_seconds, "select_vs_plain": select_seconds / plain_seconds,
            "stored_pipeline": selection.method, "held_out": selection.held_out, "held_out_rows": selection.rows,
            "stored_mAP": stored["mAP"], "stored_rank1": stored["rank1"], "label_free_method": free["method"],
            "label_free_mAP": free["mAP"], "val_mAP": rows, "gcrv_mAP": rows["gcrv"],
            "ffgnn_own_best": max(own, key=own.get), "ffgnn_own_mAP": max(own.values())}


def main() -> int:
    folder, out = shared_folder_and_out(__doc__)
    results = []
    for name, files in TRAIN_FILES.items():
        with tempfile.TemporaryDirectory() as work:
            results.append(one_set(name, folder / "features" / files, Path(work)))
        r = results[-1]
        v = r["val_mAP"]
        free_best = max((m for m in v if "ffgnn" not in m and "no camera" not in m), key=v.get)
        print(f"{name}: stored {r['stored_pipeline']} {100 * r['stored_mAP']:.1f} mAP (best on val "
              f"{max(v, key=v.get)} {100 * max(v.values()):.1f}); GCRV {100 * r['gcrv_mAP']:.1f}; label-free "
              f"{r['label_free_method']} {100 * r['label_free_mAP']:.1f} (best label-free {free_best} "
              f"{100 * v[free_best]:.1f}); no camera ids {100 * v['label-free rule, no camera ids']:.1f} against "
              f"k-reciprocal {100 * v['k-reciprocal']:.1f} / ECN {100 * v['ecn']:.1f}; FFGNN without a peer after "
              f"{r['ffgnn_own_best']} {100 * r['ffgnn_own_mAP']:.1f}; selection {r['select_seconds']:.0f} s = "
              f"{r['select_vs_plain']:.2f}x train-gnn --no-select ({r['plain_seconds']:.0f} s)", flush=True)
    save(out, {"machine": cpu(), "sets": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
