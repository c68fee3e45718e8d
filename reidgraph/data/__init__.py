"""Data: datasets by name, image loading, transforms, samplers, generated data."""
from .._lazy import lazy_exports

_EXPORTS = {
    "DATASETS": ".datasets", "ImageRecord": ".datasets", "ReIDDataset": ".datasets", "load_dataset": ".datasets",
    "register_dataset": ".datasets", "ImageDataset": ".image_dataset", "PKSampler": ".samplers",
    "neighborhood_split": ".samplers", "random_graph_neighbors": ".samplers",
    "synthetic_features": ".synthetic_features", "build_transforms": ".transforms",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
