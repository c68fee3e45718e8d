"""How many gallery images a camera needs for de-biasing statistics of its own (``min_images``), chosen on
identities held out inside the train files, never on val.

For each shared train file (CUHK03-labeled through OSNet x0.25 and omz-0277, Market-1501 through OSNet x0.25),
30% of the identities (seed 0) are held out and split into query and gallery by the CUHK03-NP rule. Then, for
each camera and each ``n``, that camera's gallery is cut to ``n`` random images (3 draws) and every query is
ranked by cosine after de-biasing (:func:`reidgraph.debias.debias`), with the cut camera using

- its own statistics (``min_images=1``), or
- the whole gallery's (the fallback, ``min_images=n+1``).

Printed: the mAP of the queries on the cut camera under each, averaged over cameras and draws, per ``n``; the
chosen ``min_images`` is the smallest ``n`` from which own statistics do at least as well on every file.

Example:
    REIDGRAPH_SHARED=SHARED python benchmarks/debias_min.py --out benchmarks/results/debias_min_cpu2.json
"""
from __future__ import annotations

from pathlib import Path

import torch
from results_io import save
from shared_paths import shared_folder_and_out

from reidgraph.debias import debias
from reidgraph.evaluation import evaluate_order
from reidgraph.features import FeatureSet
from reidgraph.ranking import ranked_orders

FILES = {"CUHK03 OSNet": "features/osnet_x0_25_msmt17/cuhk03_labeled_train.npz",
         "CUHK03 omz-0277": "features/omz_0277/cuhk03_labeled_train.npz",
         "Market-1501 OSNet": "features/osnet_x0_25_msmt17/market1501_train.npz"}
SIZES = (1, 2, 3, 5, 10, 20, 40)
DRAWS = 3


def cut_camera_map(q: FeatureSet, g: FeatureSet, camera: int, n: int, draw: int, own: bool) -> float:
    """mAP of the queries on ``camera`` once its gallery is cut to ``n`` images, de-biased with its own
    statistics (``own``) or the whole gallery's."""
    rows = torch.nonzero(g.camids == camera).flatten()
    keep = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(draw))[:n]]
    cut = g.subset(torch.isin(torch.arange(len(g)), keep) | (g.camids != camera))
    mine = q.subset(q.camids == camera)
    qf, gf = debias(mine.feats, cut.feats, mine.camids, cut.camids, min_images=1 if own else n + 1)
    return evaluate_order(ranked_orders(qf, gf), mine.pids, cut.pids, mine.camids, cut.camids).mAP


def measure(path: Path) -> dict:
    _, held = FeatureSet.load(path).hold_out_ids(0.3, seed=0)
    q, g = held.query_gallery()
    cameras = [int(c) for c in g.camids.unique() if int((q.camids == c).sum()) > 0]
    table = {}
    for n in SIZES:
        runs = {own: [cut_camera_map(q, g, c, n, d, own) for c in cameras for d in range(DRAWS)]
                for own in (True, False)}
        table[n] = {"own": sum(runs[True]) / len(runs[True]), "whole": sum(runs[False]) / len(runs[False])}
    return {"path": str(path), "query": len(q), "gallery": len(g), "cameras": cameras, "by_size": table}


def main() -> None:
    root, out = shared_folder_and_out(__doc__.split("\n")[0])
    results = {"sizes": SIZES, "draws": DRAWS, "held_out_fraction": 0.3, "files": {}}
    print("mAP (%) of a camera's queries once its gallery is cut to n images: its own de-biasing statistics / "
          f"the whole gallery's; held-out train identities, mean over cameras and {DRAWS} draws")
    print(f"{'file':<20}" + "".join(f"{'n=' + str(n):>14}" for n in SIZES))
    for name, rel in FILES.items():
        r = measure(root / rel)
        results["files"][name] = r
        cells = (f"{100 * v['own']:6.1f} /{100 * v['whole']:5.1f} " for v in r["by_size"].values())
        print(f"{name:<20}" + "".join(cells),
              flush=True)
    wins = [n for n in SIZES if all(r["by_size"][n]["own"] >= r["by_size"][n]["whole"]
                                    for r in results["files"].values())]
    chosen = next((n for n in SIZES if all(m in wins for m in SIZES if m >= n)), None)
    results["chosen_min_images"] = chosen
    print(f"smallest n from which own statistics do at least as well on every file: {chosen}")
    save(out, results)


if __name__ == "__main__":
    main()
