"""Features to graphs: kNN backends, neighbourhood adjacency, PyG graph builder."""
from .ann import AnnIndex, HNSWSettings, IVFSettings
from .adjacency import (cosine_similarity, neighborhood_adjacency, normalize_adjacency, row_topk_mask,
                        soft_jaccard, topk_members)
from .batches import iter_graph_batches
from .builder import build_graphs
from .edges import block_diagonal, dense_to_edges
from .search import knn
from .settings import GraphSettings
from .transform import NeighborhoodGraph

__all__ = [
    "AnnIndex", "GraphSettings", "HNSWSettings", "IVFSettings", "NeighborhoodGraph", "block_diagonal",
    "build_graphs", "cosine_similarity", "dense_to_edges", "iter_graph_batches", "knn", "neighborhood_adjacency",
    "normalize_adjacency", "row_topk_mask", "soft_jaccard", "topk_members",
]
