"""Choosing the pipeline on the user's own identities: hold some out, train, score every pipeline, keep the best.

``train-gnn`` (:func:`select_pipeline`) holds out :data:`FRACTION` of the train identities (seed
:data:`SEED`, :meth:`~reidgraph.features.FeatureSet.hold_out_ids`), splits them into query and gallery by
the CUHK03-NP rule (each (identity, camera) pair's first image is a query), trains an FFGNN on the other
identities (on features de-biased per camera, :data:`MODELS`), and ranks the
held-out queries against the held-out gallery with every pipeline of :func:`candidates`: the peers alone and
the training-free fusers, on raw and on de-biased features; the FFGNN alone, after GCR's propagation, and
followed by each peer. The pipeline with the highest mAP wins (ties: the first in that order). The model is
then trained on every train identity, with or without de-biasing as the winner needs, and the winner and the
held-out table are stored in its file (:func:`~reidgraph.model_file.store_pipeline`), so ``evaluate``/``rerank --model`` run it
without ``--method``.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..debias import Debias
from ..evaluation import evaluate_order
from ..features import FeatureSet
from ..graph import GraphSettings
from ..rerank.plan import rerank
from ..rerank.registry import DEBIAS, FUSERS, PEERS, PROPAGATE, parts
from ..model_file import Selection

FRACTION = 0.2
SEED = 0
# The FFGNN trained on the rest: de-biased (the held-out part has cameras to de-bias). On identities held out of all
# three shared train files, the de-biased FFGNN's best pipeline beat the raw one's (by 0.3 to 3.1 mAP), and
# training one model instead of two keeps selection within 3x a plain training.
MODELS = (True,)
# Identities a train file needs for selection: FRACTION of them (at least 2) held out, at least 2 to train on.
MIN_IDS = 10


def candidates(debiased: bool, learned: bool = True) -> list[str]:
    """The pipelines scored on raw features, or on de-biased ones (``debiased``): the peers alone and the
    training-free fusers (de-biased: each peer after GCRV too); then, with ``learned``, the FFGNN (trained on
    those features) alone and followed by each peer, and (de-biased, as GCRV propagates) the same after GCR's
    propagation. De-biased names start with ``debias+`` (``debias+gcr+ffgnn+ecn``), which a model trained with
    de-biasing runs as it runs ``gcr+ffgnn+ecn``. GCRV is GCR after de-biasing, so it stands only among the
    de-biased ones (as ``gcrv``)."""
    peers = [p for p in PEERS if p != "gcrv"]
    fusers = [f for f in FUSERS if f != "ffgnn"]
    free = ["cosine", *peers, *fusers]
    model = ["ffgnn", *(f"ffgnn+{p}" for p in peers)] if learned else []
    if not debiased:
        return [*free, *model]
    free = [DEBIAS if m == "cosine" else "gcrv" if m == "gcr" else f"{DEBIAS}+{m}" for m in free]
    free += [f"{DEBIAS}+{PROPAGATE}+{p}" for p in peers if p != PROPAGATE]  # GCRV, then a peer
    spread = [f"{PROPAGATE}+{m}" for m in model if m != f"ffgnn+{PROPAGATE}"]
    return [*free, *(f"{DEBIAS}+{m}" for m in [*model, *spread])]


def check_selectable(train: FeatureSet, source: str) -> None:
    """Refuse, in one line, a train file with too few identities to hold some out."""
    ids = train.pids.unique().numel()
    if ids < MIN_IDS:
        raise ValueError(f"{source} holds {ids} identities; choosing the pipeline holds out {FRACTION:.0%} of them "
                         f"and needs at least {MIN_IDS}: pass more identities, or --no-select to train without "
                         "choosing")


def select_pipeline(train: FeatureSet, settings: GraphSettings, config, *, workdir: Path,
                    models: tuple[bool, ...] | None = None, device: str | torch.device = "cpu",
                    progress: bool = True, source: str = "the train file") -> Selection:
    """Score every pipeline on held-out train identities (see the module docstring) and return the winner.

    Args:
        train: train features with ``pids`` and ``camids``.
        settings, config: the recipe to train with (:func:`~reidgraph.engine.recipe`).
        workdir: folder for the held-out models (resumed from when present, as any checkpoint).
        models: the FFGNNs to train on the rest, by whether each de-biases: ``(True,)``, ``(False,)`` or
            ``(False, True)``; default :data:`MODELS`. The training-free pipelines are scored raw and de-biased
            either way.
        device, progress: as :func:`~reidgraph.engine.train_ffgnn`.
        source: how errors name the train file.
    """
    from .train_gnn import train_ffgnn

    check_selectable(train, source)
    rest, held = train.hold_out_ids(FRACTION, seed=SEED)
    query, gallery = held.query_gallery()
    if settings.K >= len(gallery):
        raise ValueError(f"{source}: the held-out gallery holds {len(gallery)} images, too few for graphs of "
                         f"K={settings.K} neighbors; pass --K below {len(gallery)}, more identities, or --no-select")
    matched = (query.pids[:, None] == gallery.pids[None]) & (query.camids[:, None] != gallery.camids[None])
    if not matched.any():
        raise ValueError(f"{source}: no held-out query has a match on another camera, so the held-out part cannot "
                         "be scored (the protocol ignores same-camera matches); pass real camids, or --no-select")
    models = models or MODELS
    # The training-free fusers build graphs of the model's sizes.
    sizes = {"K": settings.K, "k": settings.k, "tau": settings.tau}
    workdir.mkdir(parents=True, exist_ok=True)
    rows, cache = [], {}
    for debiased in (False, True):
        model = workdir / ("debias.pt" if debiased else "raw.pt")
        if debiased in models:
            train_ffgnn(rest, settings, config, debias=Debias() if debiased else None, device=device,
                        checkpoint=model, progress=progress)
        names = candidates(debiased, learned=debiased in models)
        for method in tqdm(names, desc=f"scoring {'de-biased' if debiased else 'raw'} pipelines on held-out ids",
                           disable=not progress, leave=False):
            fuser, start = parts(method)[0], time.perf_counter()
            try:
                ranking = rerank(method, query.feats, gallery.feats, query_camids=query.camids,
                                 gallery_camids=gallery.camids, model=model if fuser == "ffgnn" else None,
                                 params=sizes if fuser in FUSERS and fuser != "ffgnn" else None, device=device,
                                 cache=cache)
            except ValueError as err:  # its defaults do not fit the held-out part (e.g. ECN's k=25 > G)
                rows.append({"method": method, "debias": debiased, "mAP": None, "rank1": None, "skipped": str(err)})
                continue
            m = evaluate_order(ranking.order_chunks(), query.pids, gallery.pids, query.camids, gallery.camids)
            rows.append({"method": method, "debias": debiased, "mAP": m.mAP, "rank1": m.rank(1),
                         "seconds": time.perf_counter() - start})
    best = max((r for r in rows if r["mAP"] is not None), key=lambda r: r["mAP"])  # the first of equal ones
    # The model to train on every identity: the winner's, or (a training-free winner) the one trained here.
    debias = best["debias"] if "ffgnn" in best["method"] else models[-1]
    return Selection(best["method"], debias, rows,
                     {"ids": held.pids.unique().numel(), "query": len(query), "gallery": len(gallery)})
