"""Features to graphs: kNN backends, neighborhood adjacency, PyG graph builder and dataset."""
from .._lazy import lazy_exports

_EXPORTS = {
    "AnnIndex": ".ann", "HNSWSettings": ".ann", "IVFSettings": ".ann", "cosine_similarity": ".adjacency",
    "neighborhood_adjacency": ".adjacency", "normalize_adjacency": ".adjacency", "row_topk_mask": ".adjacency",
    "soft_jaccard": ".adjacency", "topk_members": ".adjacency", "iter_graph_batches": ".batches",
    "build_graphs": ".builder", "NeighborhoodDataset": ".dataset", "knn": ".search",
    "GraphSettings": ".settings", "NeighborhoodGraph": ".transform",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
