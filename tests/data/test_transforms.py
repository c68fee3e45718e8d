"""build_transforms: output shape, normalisation, randomness only in training."""
import numpy as np
import pytest
import torch
from PIL import Image

from reidgraph.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (90, 40, 3), dtype=np.uint8))


@pytest.mark.parametrize("train", [True, False])
def test_output_shape(image, train):
    out = build_transforms(64, 32, train=train)(image)
    assert out.shape == (3, 64, 32) and out.dtype == torch.float32


def test_test_transform_normalises_with_imagenet_stats():
    colour = (200, 100, 50)
    out = build_transforms(32, 16, train=False)(Image.new("RGB", (16, 32), colour))
    expected = [(c / 255 - m) / s for c, m, s in zip(colour, IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(out, torch.tensor(expected).view(3, 1, 1).expand(3, 32, 16), atol=1e-5)


def test_test_transform_is_deterministic(image):
    tf = build_transforms(64, 32, train=False)
    torch.manual_seed(0)
    a = tf(image)
    torch.manual_seed(1)
    assert torch.equal(a, tf(image))


def test_train_transform_is_random(image):
    tf = build_transforms(64, 32, train=True)
    torch.manual_seed(0)
    outs = [tf(image) for _ in range(5)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    torch.manual_seed(0)
    assert all(torch.equal(a, tf(image)) for a in outs)


def test_train_without_augmentation_equals_test(image):
    plain = build_transforms(64, 32, train=True, flip=0, pad=0, erasing=0)
    assert torch.equal(plain(image), build_transforms(64, 32, train=False)(image))


@pytest.mark.parametrize("kwargs,match", [
    ({"height": 8}, "height"),
    ({"width": 4}, "width"),
    ({"flip": 1.5}, "flip"),
    ({"erasing": -0.1}, "erasing"),
    ({"pad": -1}, "pad"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_transforms(**kwargs)
