"""How the IVF index's default ``nprobe`` was chosen: on identities held out inside the train split, never on val.

For each feature folder and each of three seeds, 20% of the train identities are held out (seed 0 is
``benchmarks/recipe.py``'s split): their images make CUHK03-NP queries and a gallery, and the other 80%
of the train images join that gallery as distractors (the shape of the val + train-distractor gallery that ``benchmarks/ann.py``
reports on). One IVF index at its default cells is built over that gallery; for each candidate
``scan`` (gallery items scanned per neighbor asked for, the rule ``nprobe = max(64, scan k nlist / G)``)
the queries' K=150 neighbors are searched, and the script prints recall@150 against exact search and
the mAP change (points) of training-free fusion on the paper's graphs (``fusion-paper``) fed those
neighbors instead of the exact ones. The default is the smallest ``scan`` whose change stays within
0.1 points on every feature set and split (one split alone is a noisy estimate of a change this small).

Example:
    REIDGRAPH_SHARED=SHARED python benchmarks/ann_defaults.py --out benchmarks/results/ann_defaults_cpu2.json
"""
from __future__ import annotations

from results_io import save
from shared_paths import folders_and_out

K = 150
SCANS = (30, 60, 120, 240)
SEEDS = (0, 1, 2)
TOLERANCE = 0.1  # mAP points


def held_out_rows(folder, seed: int) -> list[dict]:
    """Recall@150 and the fusion-paper mAP change of each candidate ``scan`` on ``folder``'s held-out ids."""
    import torch

    from reidgraph.features import FeatureSet
    from reidgraph.graph import AnnIndex, GraphSettings, knn
    from reidgraph.graph import ann as ann_module
    from reidgraph.nn import TrainingFreeFusion, ffgnn_rerank

    rest, held = FeatureSet.load(folder / "cuhk03_labeled_train.npz").hold_out_ids(0.2, seed=seed)
    q, g = held.query_gallery()
    gallery = torch.cat([g.feats, rest.feats])
    labels = (q.pids, torch.cat([g.pids, rest.pids]), q.camids, torch.cat([g.camids, rest.camids]))

    def fused_map(neighbors) -> float:
        return ffgnn_rerank(TrainingFreeFusion(), q.feats, gallery, GraphSettings(),
                            neighbors=neighbors).evaluate(*labels).mAP

    _, exact = knn(q.feats, gallery, K, backend="torch")
    exact_map = fused_map(exact)
    index = AnnIndex.build(gallery, "ivf")
    nlist = index.settings.nlist
    rows = []
    for scan in SCANS:
        ann_module._SCAN_PER_NEIGHBOUR = scan  # the rule's constant, as the default will read it
        _, found = index.search(q.feats, K)
        hits = (found[:, :, None] == exact[:, None, :]).any(dim=2).float().mean()
        rows.append({"features": folder.name, "seed": seed, "queries": len(q), "gallery_size": len(gallery), "nlist": nlist,
                     "scan": scan, "nprobe": index.nprobe(K), "recall_at_150": float(hits),
                     "fusion_map_exact": exact_map, "fusion_map_change": 100 * (fused_map(found) - exact_map)})
    return rows


def main() -> int:
    folders, out = folders_and_out(__doc__, "cuhk03_labeled_train.npz")
    rows = [r for folder in folders for seed in SEEDS for r in held_out_rows(folder, seed)]
    print(f"IVF nprobe rule on held-out train identities (20%, seeds {SEEDS}) + the other train images as "
          f"distractors; K={K}; fusion-paper mAP change in points")
    print(f"{'features':<22}{'seed':>5}{'gallery':>9}{'nlist':>7}{'scan':>6}{'nprobe':>8}{'recall@150':>12}{'mAP change':>12}")
    for r in rows:
        print(f"{r['features']:<22}{r['seed']:>5}{r['gallery_size']:>9}{r['nlist']:>7}{r['scan']:>6}{r['nprobe']:>8}"
              f"{r['recall_at_150']:12.4f}{r['fusion_map_change']:+12.2f}")
    within = [s for s in SCANS if all(abs(r["fusion_map_change"]) <= TOLERANCE for r in rows if r["scan"] == s)]
    chosen = within[0] if within else None
    print(f"smallest scan within {TOLERANCE} mAP points on every feature set and split: {chosen}")
    save(out, {"k": K, "tolerance_points": TOLERANCE, "rows": rows, "chosen_scan": chosen})
    return 0 if chosen is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
