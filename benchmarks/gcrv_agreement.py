r"""How closely reidgraph's GCRV ranks as the public GCRV code, on the shared real features.

On each shared val file (CUHK03-labeled through OSNet x0.25 and through omz-0277, Market-1501 through OSNet
x0.25; under ``--shared``), every query's gallery is ranked by:

- the public ``gcrv.py`` with its Market config (PVG ``LA=10``, GCR ``K1=15, K2=3, BETA=0.2, SCALE=0.3``,
  3 rounds), transcribed in numpy float64 (``benchmarks/gcrv_public.py``), for GCRV and for GCR alone;
- reidgraph's :func:`~reidgraph.rerank.gcrv` / :func:`~reidgraph.rerank.gcr` with their defaults, except
  ``min_images=1`` (the public code uses every camera's own statistics, however few its images; on these
  files every camera holds hundreds);
- no re-ranking, for reference.

Printed per file: the top-10 positional agreement of ours with the transcription,

.. math::
    A = \frac{|\{(q, r) : r < 10,\ o_{qr} = o'_{qr}\}|}{10 Q}

(``o_qr``: the gallery index at 0-based rank ``r`` of query ``q``, both stable argsorts), the mAP and rank-1 of
each ranking under the standard protocol, and the seconds each took on this machine.

Example:
    python benchmarks/gcrv_agreement.py --shared SHARED --out benchmarks/results/gcrv_agreement_cpu2.json
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import torch
from gcrv_public import gcrv as public_gcrv
from results_io import save
from shared_paths import shared_folder_and_out

from reidgraph.evaluation import evaluate_order
from reidgraph.features import FeatureSet
from reidgraph.rerank import gcr, gcrv

FILES = {"CUHK03 OSNet": "features/osnet_x0_25_msmt17/cuhk03_labeled_val.npz",
         "CUHK03 omz-0277": "features/omz_0277/cuhk03_labeled_val.npz",
         "Market-1501 OSNet": "features/osnet_x0_25_msmt17/market1501_val.npz"}
TOP = 10


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def measure(path: Path) -> dict:
    query, gallery = FeatureSet.load(path).query_gallery()
    args = (query.feats, gallery.feats, query.camids, gallery.camids)
    plain = (q.numpy().astype(np.float64) for q in (query.feats, query.camids, gallery.feats, gallery.camids))
    qf, qc, gf, gc = plain
    labels = (query.pids, gallery.pids, query.camids, gallery.camids)
    row = {"path": str(path), "Q": len(query), "G": len(gallery), "cameras": int(gallery.camids.unique().numel())}
    for name, ours, pvg in (("gcrv", gcrv, True), ("gcr", gcr, False)):
        reference, public_seconds = timed(public_gcrv, qf, qc.astype(int), gf, gc.astype(int), pvg_enabled=pvg)
        params = {"min_images": 1} if pvg else {}
        ranking, seconds = timed(ours, *args, **params)
        order = np.concatenate([c.numpy() for c in ranking.order_chunks()])
        expected = np.argsort(reference, axis=1, kind="stable")
        ours_m, public_m = evaluate_order(order, *labels), evaluate_order(expected, *labels)
        row[name] = {"agreement_top10": float((order[:, :TOP] == expected[:, :TOP]).mean()),
                     "mAP": ours_m.mAP, "rank1": ours_m.rank(1), "public_mAP": public_m.mAP,
                     "public_rank1": public_m.rank(1), "seconds": seconds, "public_seconds": public_seconds}
    base = evaluate_order(np.argsort(1 - qf @ gf.T / np.outer(np.linalg.norm(qf, axis=1), np.linalg.norm(gf, axis=1)),
                                     axis=1, kind="stable"), *labels)
    row["features"] = {"mAP": base.mAP, "rank1": base.rank(1)}
    return row


def main() -> None:
    root, out = shared_folder_and_out(__doc__.split("\n")[0])
    print("reidgraph GCRV / GCR vs the public gcrv.py (Market config) transcribed in float64; "
          f"top-{TOP} positional agreement, standard-protocol mAP / rank-1, seconds on "
          f"{platform.processor() or platform.machine()}")
    results = {"top": TOP, "torch_threads": torch.get_num_threads(), "files": {}}
    for name, rel in FILES.items():
        r = measure(root / rel)
        results["files"][name] = r
        print(f"\n{name}: Q={r['Q']}, G={r['G']}, {r['cameras']} cameras; "
              f"features alone mAP {100 * r['features']['mAP']:.2f}")
        for method in ("gcrv", "gcr"):
            m = r[method]
            print(f"  {method:<5} agreement {m['agreement_top10']:.4f}   mAP ours {100 * m['mAP']:.2f} / public "
                  f"{100 * m['public_mAP']:.2f}   R1 ours {100 * m['rank1']:.2f} / public {100 * m['public_rank1']:.2f}"
                  f"   {m['seconds']:.1f} s / public {m['public_seconds']:.1f} s", flush=True)
    save(out, results)


if __name__ == "__main__":
    main()
