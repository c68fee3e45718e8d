"""``ImageDataset``: image records as a torch ``Dataset`` that a bad file cannot crash."""
from __future__ import annotations

import warnings
from typing import Callable, Iterable

import torch
from PIL import Image
from torch.utils.data import Dataset

from .datasets import ImageRecord


class ImageDataset(Dataset):
    """Images with their labels: item ``i`` is ``(image, pid, camid, index)``.

    ``image`` is ``transform(rgb_pil_image)`` (e.g. a ``[3, H, W]`` tensor), or
    the RGB PIL image when ``transform`` is None.

    Real datasets hold the odd truncated or empty file, and one bad file must
    not end a long training run. With ``check=True`` every file is opened and
    verified here, and unreadable ones are dropped with one warning. A file
    that still fails later (PIL's ``verify`` does not decode the pixels) is
    replaced by the next readable item, with one warning per dataset object
    (so per ``DataLoader`` worker); ``index`` is then the index of the item
    actually returned, so labels and paths looked up by it stay right.

    Args:
        records: :class:`ImageRecord` or ``(path, pid, camid)`` tuples.
        transform: callable applied to each RGB PIL image (default: None).
        check: verify every file at construction (default: True).

    Attributes:
        records: the kept records.
        pids: ``[N]`` int64 person ids of ``records``.
        camids: ``[N]`` int64 camera ids of ``records``.
    """

    def __init__(self, records: Iterable[ImageRecord], transform: Callable | None = None, check: bool = True):
        records = [ImageRecord(*r) for r in records]
        if not records:
            raise ValueError("records is empty; pass at least one ImageRecord, e.g. load_dataset(...).train")
        self.records = _readable(records) if check else records
        self.transform = transform
        self.pids = torch.tensor([r.pid for r in self.records], dtype=torch.long)
        self.camids = torch.tensor([r.camid for r in self.records], dtype=torch.long)
        self._warned = False

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        n = len(self.records)
        for step in range(n):
            i = (index + step) % n
            try:
                image = _load_rgb(self.records[i].path)
            except Exception as err:  # PIL raises many types on bad data; see _readable
                if not self._warned:
                    warnings.warn(f"cannot read {self.records[i].path} ({err}); returning the next readable "
                                  "image instead (further failures are not reported)")
                    self._warned = True
                continue
            # Outside the try: a bug in the transform must surface, not be skipped as a bad file.
            if self.transform is not None:
                image = self.transform(image)
            record = self.records[i]
            return image, record.pid, record.camid, i
        raise OSError(f"none of the {n} images can be read any more (e.g. {self.records[index % n].path}); "
                      "check that the dataset folder is still there")


def _load_rgb(path: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _readable(records: list[ImageRecord]) -> list[ImageRecord]:
    """The records whose file PIL can open and verify; warn once about the others."""
    kept, bad = [], []
    for record in records:
        try:
            with Image.open(record.path) as image:
                image.verify()
        # PIL reports bad data as OSError, SyntaxError, ValueError, struct.error, ... depending on
        # the format, and a missing file as FileNotFoundError: any of them means "cannot use".
        except Exception as err:
            bad.append(f"{record.path} ({err})")
        else:
            kept.append(record)
    if not kept:
        raise ValueError(f"none of the {len(records)} images can be read (e.g. {bad[0]}); "
                         "check the paths and the image files")
    if bad:
        warnings.warn(f"dropped {len(bad)} of {len(records)} images that cannot be read (e.g. {bad[0]})")
    return kept
