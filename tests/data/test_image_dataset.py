import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms.functional import pil_to_tensor

from reidgraph.data.datasets import ImageRecord
from reidgraph.data.image_dataset import ImageDataset


def make_records(folder: Path, n: int, mode: str = "RGB") -> list[ImageRecord]:
    """``n`` tiny 8x16 (W x H) images; image ``i`` is filled with value ``10 * i``, pid ``i``, camid ``i % 2``."""
    records = []
    for i in range(n):
        path = folder / f"{i:04d}.png"
        Image.new(mode, (8, 16), 10 * i if mode == "L" else (10 * i,) * 3).save(path)
        records.append(ImageRecord(str(path), i, i % 2))
    return records


def test_items_are_transformed_rgb_images_with_labels_and_index(tmp_path):
    records = make_records(tmp_path, 3, mode="L")
    data = ImageDataset(records, transform=pil_to_tensor)
    image, pid, camid, index = data[2]
    assert image.shape == (3, 16, 8) and image.dtype == torch.uint8 and bool((image == 20).all())
    assert (pid, camid, index) == (2, 0, 2)
    assert torch.equal(data.pids, torch.tensor([0, 1, 2])) and data.pids.dtype == torch.long
    assert torch.equal(data.camids, torch.tensor([0, 1, 0])) and data.camids.dtype == torch.long
    images, pids, camids, indices = next(iter(DataLoader(data, batch_size=3)))
    assert images.shape == (3, 3, 16, 8) and pids.tolist() == [0, 1, 2] and indices.tolist() == [0, 1, 2]


def test_without_transform_items_are_pil_images_and_tuples_are_accepted(tmp_path):
    records = [tuple(r) for r in make_records(tmp_path, 2, mode="L")]
    image, *_ = ImageDataset(records)[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (8, 16)


def test_corrupt_images_are_dropped_with_one_counting_warning(tmp_path):
    records = make_records(tmp_path, 4)
    Path(records[1].path).write_bytes(b"not a png")
    Path(records[3].path).write_bytes(Path(records[3].path).read_bytes()[:20])  # truncated
    with pytest.warns(UserWarning) as record:
        data = ImageDataset(records)
    assert len(record) == 1
    assert "dropped 2 of 4 images" in str(record[0].message) and "0001.png" in str(record[0].message)
    assert [r.pid for r in data.records] == [0, 2] and data.pids.tolist() == [0, 2] and len(data) == 2


def test_no_readable_image_is_an_error(tmp_path):
    records = make_records(tmp_path, 2)
    for r in records:
        Path(r.path).write_bytes(b"")
    with pytest.raises(ValueError, match="none of the 2 images can be read"):
        ImageDataset(records)
    with pytest.raises(ValueError, match="records is empty"):
        ImageDataset([])


def test_a_file_failing_mid_epoch_yields_the_next_item_and_warns_once(tmp_path):
    records = make_records(tmp_path, 4)
    data = ImageDataset(records, transform=pil_to_tensor)
    Path(records[1].path).unlink()
    Path(records[3].path).write_bytes(b"broken")
    with pytest.warns(UserWarning, match="0001.png") as record:
        _, pid, camid, index = data[1]
        assert (pid, camid, index) == (2, 0, 2)
        assert data[3][3] == 0  # wraps around to the start
    assert len(record) == 1
    assert [data[i][3] for i in range(4)] == [0, 2, 2, 0]


def test_check_false_keeps_every_record_and_fails_only_when_nothing_is_readable(tmp_path):
    records = make_records(tmp_path, 2)
    for r in records:
        Path(r.path).unlink()
    data = ImageDataset(records, check=False)
    assert len(data) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(OSError, match="none of the 2 images can be read any more"):
            data[0]
