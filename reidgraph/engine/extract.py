"""Feature extraction: images in, a :class:`FeatureSet` out, from a trained FEN or from any image model."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.datasets import ImageRecord
from ..data.image_dataset import ImageDataset
from ..data.transforms import build_transforms
from ..features import FeatureSet
from ..models import FEN


@torch.no_grad()
def extract_features(fen: FEN, records: Sequence[ImageRecord], height: int, width: int, *,
                     split: str | None = None, batch_size: int = 128, num_workers: int = 2,
                     device: str | torch.device = "cpu", progress: bool = True) -> FeatureSet:
    """BNNeck features ``[N, D]`` of ``records`` (the retrieval feature, BNNeck of paper §4.2).

    Unreadable images are dropped (with a warning, by :class:`ImageDataset`), so
    the result may hold fewer rows than ``records``; its ``paths`` say which.
    """
    data = ImageDataset(records, build_transforms(height, width, train=False))
    loader = DataLoader(data, batch_size=batch_size, num_workers=num_workers)
    was_training = fen.training
    fen.eval().to(device)
    feats = []
    for images, _, _, _ in tqdm(loader, desc="features", unit="batch", disable=not progress, leave=False):
        feats.append(fen(images.to(device)).float().cpu())  # eval mode: the [B, D] BNNeck feature
    fen.train(was_training)
    return FeatureSet(torch.cat(feats), data.pids, data.camids, paths=[r.path for r in data.records],
                      split=None if split is None else [split] * len(data))


def model_features(model: Callable[[np.ndarray], np.ndarray], records: Sequence[ImageRecord],
                   model_input: Callable[[Image.Image], np.ndarray], *, split: str | None = None,
                   batch_size: int = 64, num_workers: int = 2, progress: bool = True) -> FeatureSet:
    """Features ``[N, D]`` of ``records`` from any image model, e.g. an ONNX file or an OpenVINO IR.

    Args:
        model: images ``[B, 3, H, W]`` float32 -> features ``[B, D]`` (an
            :class:`~reidgraph.extractors.Extractor`).
        records: the images, with their labels.
        model_input: RGB PIL image -> ``[3, H, W]`` float32 (a :class:`~reidgraph.data.model_input.ModelInput`).
        split: the split name stored with every row (default: none).
        batch_size: images per call of ``model`` (default: ``64``).
        num_workers: processes decoding and resizing images while the model runs (default: ``2``).
        progress: show a progress bar (default: ``True``).

    Unreadable images are dropped (with a warning, by :class:`ImageDataset`); ``paths`` say which rows remain.
    """
    data = ImageDataset(records, model_input)
    loader = DataLoader(data, batch_size=batch_size, num_workers=num_workers)
    feats, rows = [], []
    for images, _, _, index in tqdm(loader, desc="features", unit="batch", disable=not progress, leave=False):
        feats.append(model(images.numpy()))
        rows += index.tolist()  # the item returned, which for a file that failed late is the next readable one
    kept = [data.records[i] for i in rows]
    return FeatureSet(torch.from_numpy(np.concatenate(feats)), [r.pid for r in kept], [r.camid for r in kept],
                      paths=[r.path for r in kept], split=None if split is None else [split] * len(kept))
