"""Choosing the pipeline on the user's own identities: hold some out, train, score every pipeline, keep the best.

``train-gnn`` (:func:`select_pipeline`) holds out :data:`FRACTION` of the train identities (seed
:data:`SEED`, :meth:`~reidgraph.features.FeatureSet.hold_out_ids`), splits them into query and gallery by
the CUHK03-NP rule (each (identity, camera) pair's first image is a query), trains an FFGNN on the other
identities (on raw features, and on features de-biased per camera), and ranks the held-out query against the
held-out gallery with every pipeline of :func:`candidates`: the peers alone, the training-free fusers, the
FFGNN alone and followed by each peer, each on raw and on de-biased features. The pipeline with the highest
mAP wins (ties: the first in that order). The model is then trained on every train identity, with or
without de-biasing as the winner was, and the winner and the held-out table are stored in its file
(:func:`store_pipeline`), so ``evaluate``/``rerank --model`` run it without ``--method``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..debias import Debias
from ..evaluation import evaluate_order
from ..features import FeatureSet
from ..graph import GraphSettings
from ..rerank.registry import DEBIAS, FUSERS, PEERS, PROPAGATE, parts, rerank
from .checkpoint import load_checkpoint, save_checkpoint

FRACTION = 0.2
SEED = 0
# Identities a train file needs for selection: FRACTION of them (at least 2) held out, at least 2 to train on.
MIN_IDS = 10


@dataclass
class Selection:
    """The winner of :func:`select_pipeline` and the table it won.

    Attributes:
        method: the winning pipeline's name, as ``evaluate --method`` takes it (``ffgnn+ecn``,
            ``debias+gcr+ffgnn``, ``gcrv``).
        debias: whether the model to train on every identity de-biases its features.
        rows: one dict per pipeline: ``method``, ``debias``, ``mAP``, ``rank1`` (fractions) on the held-out part;
            ``None`` scores and the reason under ``skipped`` for one whose defaults do not fit its size.
        held_out: ``ids``, ``query``, ``gallery``: the size of the held-out part.
    """

    method: str
    debias: bool
    rows: list[dict]
    held_out: dict

    def table(self) -> str:
        """The held-out table as aligned text, the winner marked."""
        width = max(len(r["method"]) for r in self.rows) + 2
        head = (f"held-out train identities ({self.held_out['ids']} ids, {self.held_out['query']} queries, "
                f"{self.held_out['gallery']} gallery); the winner is marked *")
        lines = [head, f"  {'pipeline':<{width}}{'mAP':>7}{'R1':>7}"]
        for r in self.rows:
            mark = "*" if r["method"] == self.method else " "
            scores = (f"{100 * r['mAP']:7.1f}{100 * r['rank1']:7.1f}" if r["mAP"] is not None
                      else f"  not run: {r['skipped']}")
            lines.append(f"{mark} {r['method']:<{width}}{scores}")
        return "\n".join(lines)


def candidates(debiased: bool, cameras: bool) -> list[str]:
    """The pipelines scored for one model (trained on de-biased features when ``debiased``): the peers alone
    and the training-free fusers on the same features (de-biased: each peer after GCRV too), then the FFGNN
    alone and followed by each peer, and (de-biased, as GCRV propagates) the same after GCR's propagation. De-biased names start with ``debias+``
    (``debias+gcr+ffgnn+ecn``), which a model trained with de-biasing runs as it runs ``gcr+ffgnn+ecn``.
    Without ``cameras`` (a single camera in the train file) the camera-aware ones are left out; GCRV is GCR
    after de-biasing, so it stands only among the de-biased ones (as ``gcrv``)."""
    peers = [p for p in PEERS if p != "gcrv" and (cameras or not PEERS[p].cameras)]
    fusers = [f for f in FUSERS if f != "ffgnn" and (cameras or f != "fusion")]
    free = ["cosine", *peers, *fusers]
    learned = ["ffgnn", *(f"ffgnn+{p}" for p in peers)]
    if not debiased:
        return [*free, *learned]
    free = [DEBIAS if m == "cosine" else "gcrv" if m == "gcr" else f"{DEBIAS}+{m}" for m in free]
    free += [f"{DEBIAS}+{PROPAGATE}+{p}" for p in peers if p != PROPAGATE]  # GCRV, then a peer
    spread = [f"{PROPAGATE}+{m}" for m in learned if m != f"ffgnn+{PROPAGATE}"]
    return [*free, *(f"{DEBIAS}+{m}" for m in [*learned, *spread])]


def check_selectable(train: FeatureSet, source: str) -> None:
    """Refuse, in one line, a train file with too few identities to hold some out."""
    ids = train.pids.unique().numel()
    if ids < MIN_IDS:
        raise ValueError(f"{source} holds {ids} identities; choosing the pipeline holds out {FRACTION:.0%} of them "
                         f"and needs at least {MIN_IDS}: pass more identities, or --no-select to train without "
                         "choosing")


def select_pipeline(train: FeatureSet, settings: GraphSettings, config, *, workdir: Path, debias: bool | None = None,
                    device: str | torch.device = "cpu", progress: bool = True, source: str = "the train file"
                    ) -> Selection:
    """Score every pipeline on held-out train identities (see the module docstring) and return the winner.

    Args:
        train: train features with ``pids`` and ``camids``.
        settings, config: the recipe to train with (:func:`~reidgraph.engine.recipe`).
        workdir: folder for the held-out models (resumed from when present, as any checkpoint).
        debias: ``True``/``False`` scores only the de-biased / raw pipelines; ``None`` both.
        device, progress: as :func:`~reidgraph.engine.train_ffgnn`.
        source: how errors name the train file.
    """
    from .train_gnn import train_ffgnn

    check_selectable(train, source)
    rest, held = train.hold_out_ids(FRACTION, seed=SEED)
    query, gallery = held.query_gallery()
    if settings.K >= len(gallery):
        raise ValueError(f"{source}: the held-out gallery holds {len(gallery)} images, too few for graphs of "
                         f"K={settings.K} neighbours; pass --K below {len(gallery)}, more identities, or --no-select")
    cameras = train.camids.unique().numel() > 1
    # The training-free fusers build graphs of the model's sizes.
    sizes = {"K": settings.K, "k": settings.k, "tau": settings.tau}
    workdir.mkdir(parents=True, exist_ok=True)
    rows, cache = [], {}
    for debiased in ((False, True) if debias is None else (debias,)):
        if debiased and not cameras:
            continue
        model = workdir / ("debias.pt" if debiased else "raw.pt")
        train_ffgnn(rest, settings, config, debias=Debias() if debiased else None, device=device,
                    checkpoint=model, progress=progress)
        for method in candidates(debiased, cameras):
            fuser = parts(method)[0]
            try:
                ranking = rerank(method, query.feats, gallery.feats, query_camids=query.camids,
                                 gallery_camids=gallery.camids, model=model if fuser == "ffgnn" else None,
                                 params=sizes if fuser in FUSERS and fuser != "ffgnn" else None, device=device,
                                 cache=cache)
            except ValueError as err:  # its defaults do not fit the held-out part (e.g. ECN's k=25 > G)
                rows.append({"method": method, "debias": debiased, "mAP": None, "rank1": None, "skipped": str(err)})
                continue
            m = evaluate_order(ranking.order_chunks(), query.pids, gallery.pids, query.camids, gallery.camids)
            rows.append({"method": method, "debias": debiased, "mAP": m.mAP, "rank1": m.rank(1)})
    best = max((r for r in rows if r["mAP"] is not None), key=lambda r: r["mAP"])  # the first of equal ones
    return Selection(best["method"], best["debias"], rows,
                     {"ids": held.pids.unique().numel(), "query": len(query), "gallery": len(gallery)})


def store_pipeline(path: str | Path, selection: Selection) -> None:
    """Write ``selection`` into the model file at ``path`` (atomically), for :func:`load_pipeline`."""
    state = load_checkpoint(path, "ffgnn")
    state["pipeline"] = {"method": selection.method, "debias": selection.debias, "rows": selection.rows,
                         "held_out": selection.held_out}
    save_checkpoint(state, path)


def load_pipeline(path: str | Path) -> Selection | None:
    """The pipeline stored in a model file by ``train-gnn``'s selection, ``None`` for a model trained without."""
    stored = load_checkpoint(path, "ffgnn").get("pipeline")
    return None if stored is None else Selection(**stored)
