"""Every re-ranking method by name: the catalogue that :func:`~reidgraph.rerank.plan.resolve` reads.

``rerank(name, query, gallery, ...)`` (:mod:`~reidgraph.rerank.plan`) returns a
:class:`~reidgraph.ranking.Ranking` (``top(k)``, ``order_chunks()``, ``distance_chunks()``) for any of:

* ``cosine``: the features as they are, ``d = 1 - cos`` (no re-ranking);
* fusers, which fuse each query with its top-K gallery neighbors in a graph
  and re-rank those K: ``ffgnn`` (a model from ``train-gnn``), ``fusion``
  (training-free fusion on the default recipe's graphs: camera-aware,
  λ = 0.3), ``fusion-paper`` (training-free fusion on the paper's graphs);
* peers: ``k-reciprocal``, ``ca-jaccard``, ``ecn``, ``aqe``, ``gnn-rerank``, ``gcr``, ``gcrv``;
* compositions ``FUSER+PEER`` (``ffgnn+ecn``, ``fusion+ca-jaccard``, ...): the
  peer re-ranks fused features, each query fused in its graph over the gallery
  and each gallery item in its graph over the rest of the gallery (the paper's
  Basel.+FFGNN+ECN, Table 2);
* any of these after per-camera de-biasing, ``debias+METHOD`` (``debias+ffgnn+k-reciprocal``;
  ``debias`` alone ranks the de-biased features by cosine): query and gallery features are
  de-biased with the gallery's per-camera statistics (:mod:`reidgraph.debias`) before the rest.
  An FFGNN trained on de-biased features (``train-gnn --debias``) stores the stage, and ``ffgnn``
  with that model applies it whether or not the name says ``debias+``;
* any method but GCR after GCR's propagation, ``gcr+METHOD`` (``debias+gcr+ffgnn``): query and gallery
  features are propagated together over GCR's global and cross-camera graphs
  (:func:`~reidgraph.rerank.propagation.gcr`, its parameters as ``gcr.*``) before the rest; an FFGNN
  then re-ranks each query's neighborhood in the propagated space.

Parameters are passed by name (``params={"k1": 30}``); in a composition a name
two parts take is written ``part.name`` (``{"ecn.k": 20, "fusion.K": 100}``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from ..debias import Debias
from ..graph import GraphSettings
from ..graph.settings import RECIPE
from ..ranking import Ranking
from .ca_jaccard import ca_jaccard
from .ecn import ecn
from .propagation import gcr, gcrv
from .gnn_rerank import gnn_rerank
from .kreciprocal import k_reciprocal
from .query_expansion import average_query_expansion

# Keyword arguments that say how to compute, not what: never method parameters.
_HOW = ("chunk_size", "neighbors")


@dataclass(frozen=True)
class Peer:
    """A re-ranking method on features: ``function(query, gallery[, query_camids, gallery_camids], **params)``."""

    function: Callable[..., Ranking]
    cameras: bool
    summary: str

    def parameters(self) -> dict[str, Any]:
        """Its keyword parameters and their defaults (the method's paper's values)."""
        return {n: p.default for n, p in inspect.signature(self.function).parameters.items()
                if p.default is not inspect.Parameter.empty and n not in _HOW}


PEERS = {
    "k-reciprocal": Peer(k_reciprocal, False, "k-reciprocal encoding (Zhong et al., CVPR 2017)"),
    "ca-jaccard": Peer(ca_jaccard, True, "camera-aware Jaccard distance (Chen et al., CVPR 2024); needs camera ids"),
    "ecn": Peer(ecn, False, "expanded cross neighborhood distance (Sarfraz et al., CVPR 2018)"),
    "aqe": Peer(average_query_expansion, False, "average query expansion"),
    "gnn-rerank": Peer(gnn_rerank, False, "GNN re-ranking (Zhang et al., 2020)"),
    "gcr": Peer(gcr, True, "graph-convolution feature propagation across cameras (Zhang et al., TMM 2023); "
                           "needs camera ids"),
    "gcrv": Peer(gcrv, True, "GCR after per-camera de-biasing (Zhang et al., TMM 2023); needs camera ids"),
}
# The stages a method can start with, in this order: per-camera de-biasing of query and gallery
# (reidgraph.debias), then GCR's propagation of both together (reidgraph.rerank.propagation).
DEBIAS = "debias"
PROPAGATE = "gcr"
FUSERS = {
    "ffgnn": "a trained FFGNN (--model from train-gnn) re-ranks each query's top-K; its graphs as in training",
    "fusion": "training-free fusion on the default recipe's graphs (camera-aware, lambda 0.3); needs camera ids",
    "fusion-paper": "training-free fusion on the paper's graphs (K 150, k 20, lambda 0.7, tau 20)",
}
SUMMARIES = {"cosine": "the features' own ranking, 1 - cos (no re-ranking)", **FUSERS,
             **{name: peer.summary for name, peer in PEERS.items()},
             "FUSER+PEER": "a peer on fused features, e.g. ffgnn+ecn, fusion+ca-jaccard",
             "debias+METHOD": "METHOD after per-camera de-biasing (debias alone: then cosine); needs camera ids",
             "gcr+METHOD": "METHOD on features propagated by GCR (e.g. debias+gcr+ffgnn); needs camera ids"}
# The method to run with no method named and no model: by whether camera ids tell at least two cameras apart.
# Chosen on identities held out inside the three shared train files, each with its whole held-out gallery and
# with parts of it (benchmarks/label_free.py): with cameras, GCRV then CA-Jaccard fell least short of the best
# label-free pipeline of any of the 12 held-out sets (1.5 mAP); without, k-reciprocal fell least short of the
# better of k-reciprocal and ECN (1.0 mAP), against whitening or GCR first, which gained on some sets and lost
# more on others.
LABEL_FREE = {True: "debias+gcr+ca-jaccard", False: "k-reciprocal"}
# The methods that need only each query's nearest gallery neighbors, so can take them from an index.
NEIGHBOR_METHODS = ("cosine", *FUSERS)
# The neighbors cosine ranking takes from an index: the paper's K.
COSINE_HEAD = 150
# Training-free fusion's parameters: its graph's and the propagation's.
_GRAPH = ("K", "k", "lam", "tau", "same_camera_weight")
FUSION = {"alpha": 0.3, "steps": 3}  # training-free fusion's own parameters and their defaults
_DEBIAS = {"ridge": Debias.ridge, "min_images": Debias.min_images}


def label_free(query_camids=None, gallery_camids=None) -> str:
    """The :data:`LABEL_FREE` method for these camera ids (``[Q]``/``[G]`` or ``None``): the camera-aware one
    where both sides have ids and they hold at least two cameras, the other one otherwise."""
    cameras = query_camids is not None and gallery_camids is not None and torch.cat(
        [torch.as_tensor(c).reshape(-1) for c in (query_camids, gallery_camids)]).unique().numel() > 1
    return LABEL_FREE[cameras]


def method_names() -> list[str]:
    """Every single method's name (compositions are ``FUSER+PEER`` of these)."""
    return ["cosine", *FUSERS, *PEERS]


def debiased(method: str) -> tuple[bool, str]:
    """``(whether the method starts with de-biasing, the rest of its name)``: ``debias+ecn`` -> ``(True, "ecn")``,
    ``debias`` -> ``(True, "cosine")``."""
    if method == DEBIAS:
        return True, "cosine"
    first, plus, rest = method.partition("+")
    return (True, rest) if first == DEBIAS and plus else (False, method)


def propagated(method: str) -> tuple[bool, str]:
    """``(whether the method, after any de-biasing, starts with GCR's propagation, the rest of its name)``:
    ``debias+gcr+ffgnn`` -> ``(True, "ffgnn")``; ``gcr`` alone is the peer: ``(False, "gcr")``."""
    rest = debiased(method)[1]
    first, plus, after = rest.partition("+")
    return (True, after) if first == PROPAGATE and plus else (False, rest)


def stages(method: str) -> tuple[str, ...]:
    """The stages ``method`` starts with, of ``(DEBIAS, PROPAGATE)``."""
    return tuple(name for name, present in ((DEBIAS, debiased(method)[0]), (PROPAGATE, propagated(method)[0]))
                 if present)


def parts(method: str) -> tuple[str | None, str | None]:
    """``(fuser, peer)`` of a method name (after any stages), ``(None, None)`` for ``cosine``; a one-line
    error for unknown names."""
    whole = method
    staged, method = propagated(method)
    if staged and (method in ("", "cosine", PROPAGATE, "gcrv") or method.endswith(f"+{PROPAGATE}")):
        raise ValueError(f"{whole!r} propagates with GCR twice or before nothing; write {PROPAGATE}+METHOD with "
                         f"METHOD a fuser or a peer other than {PROPAGATE} and gcrv")
    fuser, plus, peer = method.partition("+")
    if not plus and method in FUSERS:
        return method, None
    if not plus and method in PEERS:
        return None, method
    if method == "cosine":
        return None, None
    if plus and fuser in FUSERS and peer in PEERS:
        return fuser, peer
    raise ValueError(f"unknown method {whole!r}; choose one of {', '.join(method_names())}, "
                     f"or FUSER+PEER with FUSER in {', '.join(FUSERS)} and PEER in {', '.join(PEERS)}, "
                     f"each optionally after {DEBIAS}+ and {PROPAGATE}+")


def parameters(method: str) -> dict[str, Any]:
    """The parameters ``method`` takes and their defaults; in a composition, ``part.name`` for each."""
    takes = _takes(method)
    return {f"{part}.{n}" if len(takes) > 1 else n: v for part, names in takes.items() for n, v in names.items()}


def _takes(method: str) -> dict[str, dict[str, Any]]:
    """Each part of ``method`` (``debias``, fuser, peer; those it has) and the parameters it takes."""
    fuser, peer = parts(method)
    found = {DEBIAS: _DEBIAS} if debiased(method)[0] else {}
    if propagated(method)[0]:
        found[PROPAGATE] = PEERS[PROPAGATE].parameters()
    if fuser:
        found[fuser] = _fuser_parameters(fuser)
    if peer:
        found[peer] = PEERS[peer].parameters()
    return found


def needs_cameras(method: str, params: dict | None = None) -> bool:
    """Whether ``method`` (with ``params``) uses the camera id of every image; for ``ffgnn`` that depends
    on the model too (its graphs may be camera-aware), which :func:`~reidgraph.rerank.plan.resolve` checks once it is loaded."""
    fuser, peer = parts(method)
    own = route(method, params or {})
    graph = fuser in ("fusion", "fusion-paper") and fusion_settings(fuser, own[fuser]).camera_aware
    return bool(peer and PEERS[peer].cameras) or graph or bool(stages(method))


def _fuser_parameters(fuser: str | None) -> dict[str, Any]:
    if fuser in ("fusion", "fusion-paper"):
        base = _base_settings(fuser)
        return {**{n: getattr(base, n) for n in _GRAPH}, **FUSION}
    return {}


def _base_settings(fuser: str) -> GraphSettings:
    return RECIPE if fuser == "fusion" else GraphSettings()


def fusion_settings(fuser: str, own: dict[str, Any]) -> GraphSettings:
    """The graph settings of training-free ``fuser`` with its own parameters ``own`` (those of :data:`_GRAPH`)."""
    return replace(_base_settings(fuser), **{n: v for n, v in own.items() if n in _GRAPH})


def route(method: str, params: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    """Each part's own parameters from ``params`` (``name`` or ``part.name``; text values read by :func:`typed`);
    a one-line error for any name no part takes, or that two parts take without a ``part.`` prefix. Every part
    has an entry (``None`` for an absent fuser or peer)."""
    fuser, peer = parts(method)
    takes = _takes(method)
    own: dict[str | None, dict[str, Any]] = {DEBIAS: {}, PROPAGATE: {}, fuser: {}, peer: {}}
    for key, value in params.items():
        part, dot, name = key.rpartition(".")
        candidates = [p for p in takes if name in takes[p] and (not dot or p == part)]
        if len(candidates) != 1:
            known = ", ".join(parameters(method)) or "none"
            if len(candidates) > 1:
                raise ValueError(f"parameter {key!r} is taken by several parts of {method!r}: write "
                                 f"{' or '.join(f'{p}.{name}' for p in candidates)}")
            hint = " (ffgnn takes its graph settings from the model)" if fuser == "ffgnn" else ""
            raise ValueError(f"method {method!r} has no parameter {key!r}{hint}; it takes: {known}")
        own[candidates[0]][name] = typed(key, value, takes[candidates[0]][name])
    return own


def typed(key: str, value, default):
    """``value`` as given, or, where it is text and ``default`` is not, read as ``default``'s type (bool, int,
    float; ``none`` for an optional number): how command-line values become parameters."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return value.lower() in ("true", "1")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float) or default is None:
            return None if value.lower() == "none" else float(value)
    except ValueError:
        raise ValueError(f"parameter {key}={value}: expected {type(default).__name__ if default is not None else 'a number'}"
                         f" like {default!r}") from None
    return value


__all__ = ["DEBIAS", "FUSERS", "FUSION", "LABEL_FREE", "PEERS", "PROPAGATE", "SUMMARIES", "debiased", "fusion_settings", "label_free",
           "method_names", "needs_cameras", "parameters", "parts", "propagated", "route",
           "stages"]
