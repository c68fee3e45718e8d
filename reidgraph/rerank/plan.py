"""One re-ranking pipeline, resolved and checked once: what every entry point runs.

:func:`resolve` turns a method's name, its parameters and an FFGNN model file into a :class:`Plan`:

* the name is split into its stages and parts (:mod:`~reidgraph.rerank.registry`): de-biasing, GCR's
  propagation, a fuser, a peer (``debias+gcr+ffgnn+ecn``);
* no name: the pipeline the model file stores (``train-gnn``'s selection; ``ffgnn`` for a file without one,
  and a stored training-free pipeline runs without the model), or with no model the label-free rule
  (:func:`~reidgraph.rerank.registry.label_free`);
* each part's parameters are routed to it (``ecn.k``), the model is loaded once, and every check that needs
  no features runs: a model given to a method that takes none, camera ids a method needs, a de-biasing stage
  a model refuses.

:func:`rerank` (the Python API), ``reidgraph rerank`` and ``evaluate``, the benchmarks and the sharded
``torchrun`` path (:func:`~reidgraph.rerank.sharded.top_lists`) all resolve through it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import usable_device
from ..debias import Debias, debias
from ..graph import GraphSettings
from ..model_file import load_debias, load_ffgnn, load_pipeline
from ..ranking import CosineRanking, HeadRanking, Ranking
from .propagation import gcr
from .registry import (COSINE_HEAD, DEBIAS, FUSION, LABEL_FREE, NEIGHBOR_METHODS, PEERS, PROPAGATE, debiased,
                       fusion_settings, label_free, needs_cameras, parts, propagated, route)


@dataclass(frozen=True)
class Plan:
    """A resolved pipeline.

    Attributes:
        method: its full name (``debias+gcr+ffgnn+ecn``).
        own: each part's own parameters (keys ``"debias"``, ``"gcr"``, the fuser's and the peer's name).
        fuser, peer: its fuser and peer (``None`` where absent).
        debias: the de-biasing it starts with: the named one, or the one its model was trained after.
        propagate: whether GCR's propagation follows the de-biasing.
        model: the FFGNN model file of ``ffgnn``.
        network, settings: the fuser's network and graph settings (``None`` without a fuser).
        chosen: how ``method`` was chosen where none was named, ``None`` where it was.
    """

    method: str
    own: dict[str | None, dict[str, Any]]
    fuser: str | None
    peer: str | None
    debias: Debias | None
    propagate: bool
    model: Path | None = None
    network: torch.nn.Module | None = field(default=None, compare=False, repr=False)
    settings: GraphSettings | None = None
    chosen: str | None = None

    @property
    def per_query(self) -> bool:
        """Whether each query needs only its nearest gallery neighbours: cosine or a fuser alone, with no stage
        that needs the whole gallery (a named or a model's de-biasing, GCR's propagation). Such a plan can
        search a gallery index and shard the gallery."""
        return self.peer is None and self.debias is None and not self.propagate

    @property
    def sharded(self) -> bool:
        """Whether a ``torchrun`` job can share the work (:func:`~reidgraph.rerank.sharded.top_lists`): the
        per-query plans (:attr:`per_query`) and k-reciprocal."""
        return self.per_query or self.method == "k-reciprocal"

    def check_index(self) -> None:
        """Nothing, or a one-line ``ValueError`` unless the plan can search a gallery index (:attr:`per_query`)."""
        if not self.per_query:
            why = "de-biases with the whole gallery" if self.debias is not None and self.peer is None \
                and not self.propagate else "compares every image with every other"
            raise ValueError(f"method {self.method!r}{f' with {self.model}' if self.model else ''} {why} and "
                             f"cannot use a gallery index; use one of {', '.join(NEIGHBOR_METHODS)} (a model "
                             "trained without --debias for ffgnn), or drop the index")

    def rank(self, query, gallery, *, query_camids=None, gallery_camids=None, device=None, index=None,
             progress: bool = False, cache: dict | None = None) -> Ranking:
        """Re-rank ``gallery`` ``[G, D]`` for each query ``[Q, D]``: de-bias, propagate, fuse, then the peer.

        Args: as :func:`rerank`. Returns a :class:`~reidgraph.ranking.Ranking` of ``Q x G``.
        """
        device = usable_device(device) if device is not None else torch.as_tensor(query).device
        query, gallery = (torch.as_tensor(x).to(device) for x in (query, gallery))
        cams = [None if c is None else torch.as_tensor(c).to(device) for c in (query_camids, gallery_camids)]
        if index is not None:
            self.check_index()
        if self.debias is not None:
            query, gallery = debias(query, gallery, *cams, ridge=self.debias.ridge, min_images=self.debias.min_images)
        if self.propagate:
            spread = gcr(query, gallery, *cams, **self.own[PROPAGATE])
            query, gallery = spread.query, spread.gallery
        if self.fuser:
            net = self.checked_network(query.shape[1]).to(device)
            if not self.peer:
                from ..nn import ffgnn_rerank
                return ffgnn_rerank(net, query, gallery, self.settings, query_camids=cams[0], gallery_camids=cams[1],
                                    neighbors=_searched(index, query, gallery, self.settings.K), progress=progress)
            cache = {} if cache is None else cache
            if self.key not in cache:
                cache[self.key] = fused_pair(net, self.settings, query, gallery, *cams, progress)
            query, gallery = cache[self.key]
        if not self.peer:
            if index is None:
                return CosineRanking(query, gallery)
            return _cosine_head(query, gallery, _searched(index, query, gallery, min(COSINE_HEAD, gallery.shape[0])))
        chosen = PEERS[self.peer]
        return chosen.function(query, gallery, *(cams if chosen.cameras else ()), **self.own[self.peer])

    @property
    def key(self) -> tuple:
        """What the fused features of a composition depend on besides the features: the stages, the fuser, the
        model file and the fuser's parameters (a cache key)."""
        return (self.debias and (self.debias.ridge, self.debias.min_images),
                self.propagate and tuple(sorted(self.own[PROPAGATE].items())), self.fuser, str(self.model),
                tuple(sorted(self.own[self.fuser].items())))

    def checked_network(self, dim: int) -> torch.nn.Module:
        """The fuser's network, refused in one line where its features are not ``dim``-d."""
        channels = getattr(self.network, "channels", None)
        if channels is not None and channels != dim:
            raise ValueError(f"{self.model} expects {channels}-d features but these are {dim}-d; "
                             f"use features of the model it was trained on")
        return self.network


def resolve(method: str | None = None, params: dict[str, Any] | None = None, model: str | Path | None = None, *,
            query_camids=None, gallery_camids=None) -> Plan:
    """The :class:`Plan` of ``method`` with ``params`` and ``model``, for features with these camera ids.

    Args:
        method: a name of :func:`~reidgraph.rerank.registry.method_names`, a composition, or ``None``: the
            pipeline ``model`` stores, or without a model the label-free rule for these camera ids.
        params: the method's parameters by name (:func:`~reidgraph.rerank.registry.parameters`).
        model: the FFGNN model file of ``ffgnn`` (from ``train-gnn``).
        query_camids, gallery_camids: ``[Q]`` / ``[G]`` camera ids or ``None``; a method that needs them is
            refused without both.

    Raises a one-line ``ValueError`` for anything the plan cannot run.
    """
    params = dict(params or {})
    method, model, chosen = choose(method, params, model, query_camids=query_camids, gallery_camids=gallery_camids)
    fuser, peer = parts(method)
    own = route(method, params)
    cameras = query_camids is not None and gallery_camids is not None
    _check_model_and_cameras(method, params, model, cameras)
    stage = _debias_stage(method, own, model)
    network, settings = _fuser_network(fuser, model, own[fuser], cameras) if fuser else (None, None)
    return Plan(method, own, fuser, peer, stage, propagated(method)[0], None if model is None else Path(model),
                network, settings, chosen)


def choose(method: str | None, params: dict[str, Any] | None, model: str | Path | None, *, query_camids=None,
           gallery_camids=None) -> tuple[str, str | Path | None, str | None]:
    """``(method, model, how it was chosen)``: ``method`` as given (``None`` for how), or with none the pipeline
    ``model`` stores (``ffgnn`` for a file without one; a stored training-free pipeline drops the model), or with
    no model either the label-free rule for these camera ids. ``params`` without a method or a model are refused:
    they set a named method's parameters."""
    if method is not None:
        return method, model, None
    if model is not None:
        stored = load_pipeline(model)
        method = stored.method if stored else "ffgnn"
        chosen = f"the pipeline {model} stores" if stored else f"{model} stores no pipeline (trained with --no-select)"
        return method, model if parts(method)[0] == "ffgnn" else None, chosen
    if params:
        raise ValueError("parameters set those of a named method; name the method (--method) too")
    method = label_free(query_camids, gallery_camids)
    return method, None, f"the label-free rule, {'with' if method == LABEL_FREE[True] else 'without'} camera ids"


def rerank(method: str | None, query, gallery, *, query_camids=None, gallery_camids=None,
           model: str | Path | None = None, params: dict[str, Any] | None = None,
           device: str | torch.device | None = None, index=None, progress: bool = False,
           cache: dict | None = None) -> Ranking:
    """Re-rank ``gallery`` for each query with the named method: ``resolve(...).rank(...)``.

    Args:
        method: a name of :func:`~reidgraph.rerank.registry.method_names`, or a composition
            (``FUSER+PEER``, ``debias+METHOD``, ``gcr+METHOD``); ``None``: as :func:`resolve`.
        query: ``[Q, D]`` features; gallery: ``[G, D]`` features (any ReID model's).
        query_camids, gallery_camids: ``[Q]`` / ``[G]`` camera ids; needed by
            camera-aware methods (:func:`~reidgraph.rerank.registry.needs_cameras`), optional otherwise.
        model: the FFGNN model file of ``ffgnn`` (its graph settings are used).
        params: the method's parameters by name (:func:`~reidgraph.rerank.registry.parameters`).
        device: where to compute (default: the features' device).
        index: an :class:`~reidgraph.graph.AnnIndex` over ``gallery``, searched for each query's
            nearest neighbors in place of exact kNN; for the per-query methods only
            (:data:`~reidgraph.rerank.registry.NEIGHBOR_METHODS`). The fusers search their ``K``; ``cosine``
            searches :data:`~reidgraph.rerank.registry.COSINE_HEAD` (or ``G``) and ranks them by exact cosine,
            the rest of the gallery after them.
        progress: progress bars.
        cache: a dict to keep the fused features of compositions in: pass the same one to calls with the same
            ``query``, ``gallery`` and cameras, and ``ffgnn+ecn`` after ``ffgnn+k-reciprocal`` fuses nothing
            again (keyed by :attr:`Plan.key`).

    Returns:
        A :class:`~reidgraph.ranking.Ranking` of ``Q x G``.
    """
    plan = resolve(method, params, model, query_camids=query_camids, gallery_camids=gallery_camids)
    return plan.rank(query, gallery, query_camids=query_camids, gallery_camids=gallery_camids, device=device,
                     index=index, progress=progress, cache=cache)


def fused_pair(net, settings: GraphSettings, query, gallery, query_camids, gallery_camids, progress: bool):
    """Fused query features ``[Q, D]`` (graphs over the gallery) and gallery features ``[G, D]`` (graphs over the
    rest of it), for a peer to re-rank."""
    from ..nn import fused_features

    own = torch.arange(gallery.shape[0], device=gallery.device)
    return (fused_features(net, query, gallery, settings, anchor_camids=query_camids,
                           candidate_camids=gallery_camids, progress=progress),
            fused_features(net, gallery, gallery, settings, exclude=own, anchor_camids=gallery_camids,
                           candidate_camids=gallery_camids, progress=progress))


def _searched(index, query: Tensor, gallery: Tensor, k: int) -> Tensor | None:
    """``[Q, k]`` neighbors of each query found by ``index`` (checked to be over ``gallery``), or ``None``."""
    return None if index is None else index.check(gallery).search(query, k)[1]


def _cosine_head(query: Tensor, gallery: Tensor, neighbors: Tensor) -> HeadRanking:
    """The given neighbors ranked by exact cosine distance, then the rest of the gallery."""
    q, g = F.normalize(query, dim=1), F.normalize(gallery, dim=1)
    index = neighbors.to(q.device)
    distance = 1 - torch.einsum("qd,qkd->qk", q, g[index])
    distance, order = distance.sort(dim=1, stable=True)
    return HeadRanking(q, g, index.gather(1, order), distance)


def _check_model_and_cameras(method: str, params: dict | None, model, cameras: bool) -> None:
    """Nothing, or a one-line ``ValueError`` where ``method`` is given a model it does not take, or lacks
    the camera ids it needs (``cameras``: both query and gallery have them)."""
    if model is not None and parts(method)[0] != "ffgnn":
        raise ValueError(f"method {method!r} takes no model; drop --model, or choose ffgnn (or ffgnn+PEER)")
    if needs_cameras(method, params) and not cameras:
        raise ValueError(f"method {method!r} needs the camera id of every query and gallery image: add camids to "
                         "the features, or choose a method without cameras (cosine, fusion-paper, k-reciprocal, "
                         "ecn, aqe, gnn-rerank)")


def _debias_stage(method: str, own: dict[str | None, dict[str, Any]], model) -> Debias | None:
    """The de-biasing ``method`` starts with: its own (``debias+``, parameters ``own["debias"]``) or the one an
    FFGNN ``model`` was trained after (``train-gnn --debias``); ``None`` for neither. A model trained on raw
    features is refused with ``debias+``: it never saw de-biased ones."""
    named = debiased(method)[0]
    if model is None or parts(method)[0] != "ffgnn":
        return Debias(**own[DEBIAS]).check() if named else None
    trained = load_debias(model)
    if named and trained is None:
        raise ValueError(f"{model} was trained on features without de-biasing; drop '{DEBIAS}+' from the method, "
                         "or train the model with train-gnn --debias")
    if named and own[DEBIAS]:
        raise ValueError(f"{model} fixes the de-biasing it was trained after; drop the {DEBIAS}.* parameters")
    return trained


def _fuser_network(fuser: str, model, own: dict[str, Any], cameras: bool) -> tuple[torch.nn.Module, GraphSettings]:
    """The fusing network of ``fuser`` (``model`` for ``ffgnn``, its parameters ``own``) and its graph settings,
    refused where its graphs need camera ids and ``cameras`` is false."""
    from ..nn import TrainingFreeFusion

    if fuser != "ffgnn":
        settings = fusion_settings(fuser, own)
        return TrainingFreeFusion(own.get("alpha", FUSION["alpha"]), own.get("steps", FUSION["steps"])), settings
    if model is None:
        raise ValueError("method 'ffgnn' needs a trained model: pass --model m.pt (from reidgraph train-gnn)")
    net, settings = load_ffgnn(model)
    if settings.camera_aware and not cameras:
        raise ValueError(f"{model} was trained on camera-aware graphs, which need the camera id of every "
                         "query and gallery image: add camids to the features")
    return net, settings


__all__ = ["Plan", "choose", "fused_pair", "rerank", "resolve"]
