"""Data: datasets by name, image loading, transforms, samplers, generated data."""
from .datasets import DATASETS, ImageRecord, ReIDDataset, load_dataset, register_dataset
from .image_dataset import ImageDataset
from .samplers import PKSampler, neighbourhood_split, random_graph_neighbors
from .synthetic_features import synthetic_features
from .transforms import build_transforms

__all__ = [
    "DATASETS", "ImageDataset", "ImageRecord", "PKSampler", "ReIDDataset", "build_transforms", "load_dataset",
    "neighbourhood_split", "random_graph_neighbors", "register_dataset", "synthetic_features",
]
