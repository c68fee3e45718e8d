"""ModelInput: an image as a model's input, against a plain numpy transcription of each convention."""
import numpy as np
import pytest
import torch
from helpers import transcription
from PIL import Image

from reidgraph.data.model_input import IMAGENET_MEAN, IMAGENET_STD, ModelInput, imagenet
from reidgraph.data.transforms import build_transforms


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (37, 19, 3), dtype=np.uint8))


@pytest.mark.parametrize("order, value_range, mean, std", [
    ("rgb", "0-1", IMAGENET_MEAN, IMAGENET_STD),
    ("bgr", "0-1", IMAGENET_MEAN[::-1], IMAGENET_STD[::-1]),
    ("rgb", "0-255", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    ("bgr", "0-255", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),   # Open Model Zoo's IR models
    ("rgb", "0-1", (0.1, 0.5, 0.9), (2.0, 0.5, 1.0)),
])
def test_each_convention_is_its_numpy_transcription(image, order, value_range, mean, std):
    x = ModelInput(32, 16, order, value_range, mean, std)(image)
    assert x.shape == (3, 32, 16) and x.dtype == np.float32 and x.flags.c_contiguous
    expected = transcription(image, 32, 16, order == "bgr", value_range == "0-255", mean, std)
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-6)


def test_defaults_are_the_test_transforms_of_reidgraph_train(image):
    x = ModelInput(64, 32)(image)
    np.testing.assert_allclose(x, build_transforms(64, 32, train=False)(image).numpy(), rtol=0, atol=1e-6)
    assert ModelInput().height == 256 and ModelInput().width == 128


def test_imagenet_in_any_order_and_range_normalises_alike(image):
    reference = ModelInput(32, 16)(image)
    for order in ("rgb", "bgr"):
        for value_range in ("0-1", "0-255"):
            x = ModelInput(32, 16, order, value_range, *imagenet(order, value_range))(image)
            same = x[::-1] if order == "bgr" else x
            np.testing.assert_allclose(same, reference, rtol=0, atol=1e-5)
    assert imagenet("bgr", "0-255")[0] == (103.53, 116.28, 123.675)


def test_grey_and_rgba_images_become_three_channels():
    grey = Image.fromarray(np.full((8, 4), 100, np.uint8))
    assert ModelInput(8, 4, value_range="0-255", mean=(0, 0, 0), std=(1, 1, 1))(grey).tolist() == \
        torch.full((3, 8, 4), 100.0).tolist()
    assert ModelInput(8, 4)(grey.convert("RGBA")).shape == (3, 8, 4)


@pytest.mark.parametrize("kwargs, message", [
    ({"channel_order": "rbg"}, "channel order 'rbg' is not one of rgb, bgr"),
    ({"value_range": "255"}, "value range '255' is not one of 0-1, 0-255"),
    ({"mean": (0.5, 0.5)}, "mean (0.5, 0.5) is not three finite numbers"),
    ({"std": (1.0, 0.0, 1.0)}, "holds a value <= 0"),
    ({"height": 0}, "height=0 is outside"),
])
def test_bad_settings_say_what_to_pass(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ModelInput(**kwargs)
