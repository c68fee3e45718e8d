r"""Whether the fast FFGNN inference ranks as the direct float32 path, on the shared real features.

For each shared feature set, a default-recipe FFGNN is trained on its train file (``train_ffgnn`` with the
default recipe and seed 0; the val file is not looked at), and every val query's top-K is re-ranked twice:

- the direct path: each layer's :math:`h W` per graph (:meth:`~reidgraph.nn.FFGNN.forward_dense`), the float32
  reference;
- the fast path: the same layers from each image's precomputed products by the layers' weights
  (:mod:`reidgraph.nn.layer_products`), which :func:`~reidgraph.nn.ffgnn_rerank` takes where it costs less.

Printed per set: the top-10 positional agreement of the fast path with the reference,

.. math::
    A = \frac{|\{(q, r) : r < 10,\ o_{qr} = o'_{qr}\}|}{10 Q},

the largest difference of the two re-ranked distances, the mAP of each (standard protocol), and the seconds
each took on this machine. The fused features of ``ffgnn+PEER`` (queries over the gallery, gallery items over
the rest of it) are compared too: their largest cosine distance between the two paths.

Example:
    python benchmarks/ffgnn_agreement.py --shared SHARED --out benchmarks/results/ffgnn_agreement_cpu2.json
"""
from __future__ import annotations

import time

import torch
from results_io import cpu, save
from shared_paths import TRAIN_FILES, shared_folder_and_out

import reidgraph.nn.fusion as fusion
from reidgraph.engine import recipe, train_ffgnn
from reidgraph.features import FeatureSet
from reidgraph.nn import ffgnn_rerank, fused_features

TOP = 10


def both_paths(function, *args, **kwargs) -> dict:
    """``function``'s result and seconds by the fast path and by the direct one."""
    chosen = fusion._products_pay
    out = {}
    try:
        for path, pays in (("fast", lambda *a: True), ("direct", lambda *a: False)):
            fusion._products_pay = pays
            start = time.perf_counter()
            out[path] = (function(*args, **kwargs), time.perf_counter() - start)
    finally:
        fusion._products_pay = chosen
    return out


def measure(root, rel: str) -> dict:
    train = FeatureSet.load(root / "features" / f"{rel}_train.npz")
    query, gallery = FeatureSet.load(root / "features" / f"{rel}_val.npz").query_gallery()
    settings, config = recipe()
    torch.manual_seed(0)
    start = time.perf_counter()
    model = train_ffgnn(train, settings, config, progress=False)
    trained = time.perf_counter() - start
    cams = {"query_camids": query.camids, "gallery_camids": gallery.camids}
    labels = (query.pids, gallery.pids, query.camids, gallery.camids)
    runs = both_paths(ffgnn_rerank, model, query.feats, gallery.feats, settings, **cams)
    (fast, fast_s), (ref, ref_s) = runs["fast"], runs["direct"]
    row = {"Q": len(query), "G": len(gallery), "dim": query.feats.shape[1], "train_seconds": trained,
           "agreement_top10": float((fast.index[:, :TOP] == ref.index[:, :TOP]).float().mean()),
           "max_distance_difference": float((fast.distance - ref.distance).abs().max()),
           "mAP_fast": fast.evaluate(*labels).mAP, "mAP_direct": ref.evaluate(*labels).mAP,
           "seconds_fast": fast_s, "seconds_direct": ref_s}
    own = torch.arange(len(gallery))
    fused = both_paths(lambda: (fused_features(model, query.feats, gallery.feats, settings, anchor_camids=query.camids,
                                               candidate_camids=gallery.camids),
                                fused_features(model, gallery.feats, gallery.feats, settings, exclude=own,
                                               anchor_camids=gallery.camids, candidate_camids=gallery.camids)))
    row["fused_max_cosine_distance"] = max(float((1 - (a * b).sum(1)).abs().max())
                                           for a, b in zip(fused["fast"][0], fused["direct"][0]))
    row["fused_seconds_fast"], row["fused_seconds_direct"] = fused["fast"][1], fused["direct"][1]
    return row


def main() -> None:
    root, out = shared_folder_and_out(__doc__.split("\n")[0])
    print(f"fast FFGNN inference vs the direct float32 path, default-recipe models trained on each train file; "
          f"{cpu()}, {torch.get_num_threads()} threads")
    results = {"top": TOP, "cpu": cpu(), "torch_threads": torch.get_num_threads(), "sets": {}}
    for name, rel in TRAIN_FILES.items():
        r = results["sets"][name] = measure(root, rel)
        print(f"{name}: Q={r['Q']} G={r['G']} D={r['dim']}: top-{TOP} agreement {r['agreement_top10']:.5f}, "
              f"max |distance difference| {r['max_distance_difference']:.2e}, mAP {100 * r['mAP_fast']:.2f} fast / "
              f"{100 * r['mAP_direct']:.2f} direct; ffgnn {r['seconds_fast']:.1f} s / {r['seconds_direct']:.1f} s; "
              f"fused features max cosine distance {r['fused_max_cosine_distance']:.2e}, "
              f"{r['fused_seconds_fast']:.1f} s / {r['fused_seconds_direct']:.1f} s", flush=True)
    results["agreement_top10"] = min(r["agreement_top10"] for r in results["sets"].values())
    results["max_mAP_change"] = max(abs(r["mAP_fast"] - r["mAP_direct"]) for r in results["sets"].values())
    save(out, results)


if __name__ == "__main__":
    main()
