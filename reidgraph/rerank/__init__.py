"""Re-ranking methods behind one call: ``rerank(name, query, gallery, ...)`` returns a
:class:`~reidgraph.ranking.Ranking`, through one resolver (:func:`resolve`, :mod:`~reidgraph.rerank.plan`);
:mod:`~reidgraph.rerank.registry` lists the names.

The peer methods are also callable directly; each takes ``(query [Q, D],
gallery [G, D], **params)`` (CA-Jaccard also the camera ids) and returns a
:class:`~reidgraph.ranking.Ranking`, whose ``distance_chunks(chunk_size)``
yields final distances ``[q, G]`` (smaller is closer) and ``top(k)`` each
query's best ``k``.
"""
from .ca_jaccard import CAJaccard, ca_jaccard, ca_jaccard_dense
from .ecn import ecn, ecn_dense
from .propagation import gcr, gcrv
from .gnn_rerank import gnn_rerank, gnn_rerank_dense
from .kreciprocal import k_reciprocal, k_reciprocal_dense
from .query_expansion import average_query_expansion
from .plan import Plan, rerank, resolve
from .registry import FUSERS, PEERS, method_names, needs_cameras, parameters, parts

__all__ = ["CAJaccard", "FUSERS", "PEERS", "Plan", "average_query_expansion", "ca_jaccard", "ca_jaccard_dense", "ecn",
           "ecn_dense", "gcr", "gcrv", "gnn_rerank", "gnn_rerank_dense", "k_reciprocal", "k_reciprocal_dense", "method_names",
           "needs_cameras", "parameters", "parts", "rerank", "resolve"]
