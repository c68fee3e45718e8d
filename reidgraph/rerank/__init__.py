"""Peer re-ranking methods behind one signature, for side-by-side comparison with FFGNN.

Each takes ``(query [Q, D], gallery [G, D], **params)`` and returns an object
whose ``distance_chunks(chunk_size)`` yields final distances ``[q, G]`` for
consecutive query chunks (smaller is closer), and ``dense()`` for small inputs.
"""
from .ca_jaccard import CAJaccard, ca_jaccard, ca_jaccard_dense
from .ecn import ecn, ecn_dense
from .gnn_rerank import gnn_rerank, gnn_rerank_dense
from .kreciprocal import k_reciprocal, k_reciprocal_dense
from .query_expansion import average_query_expansion

__all__ = ["CAJaccard", "average_query_expansion", "ca_jaccard", "ca_jaccard_dense", "ecn", "ecn_dense", "gnn_rerank",
           "gnn_rerank_dense", "k_reciprocal", "k_reciprocal_dense"]
