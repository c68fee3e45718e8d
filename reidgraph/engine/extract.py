"""Feature extraction with a trained FEN: images in, a :class:`FeatureSet` out."""
from __future__ import annotations

from typing import Sequence

import torch
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
