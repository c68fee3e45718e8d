"""How a person image becomes a ReID model's input: size, channel order, value range, normalisation.

Models made elsewhere disagree on all four: torchreid and fast-reid's Python code feed RGB divided by 255
and normalised with the ImageNet mean and std, Open Model Zoo's IR models take raw BGR 0-255 and normalise
inside, fast-reid's ONNX exports take raw RGB 0-255. :class:`ModelInput` states one convention and applies it.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

from .._checks import int_in_range

if TYPE_CHECKING:
    from PIL import Image

CHANNEL_ORDERS = ("rgb", "bgr")
VALUE_RANGES = ("0-1", "0-255")
# The usual ReID normalisation (torchreid, fast-reid, torchvision): per RGB channel, on values in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet(channel_order: str = "rgb", value_range: str = "0-1") -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ImageNet ``(mean, std)`` in ``channel_order`` and ``value_range``: the same normalisation however
    the channels are ordered and scaled (``bgr``, ``0-255``: ``mean`` (103.53, 116.28, 123.675))."""
    scale = 255.0 if value_range == "0-255" else 1.0
    order = slice(None, None, -1) if channel_order == "bgr" else slice(None)
    return (tuple(round(m * scale, 6) for m in IMAGENET_MEAN[order]),
            tuple(round(s * scale, 6) for s in IMAGENET_STD[order]))


@dataclass(frozen=True)
class ModelInput:
    r"""The input a model expects; calling it turns a PIL image into that input.

    ``ModelInput(...)(image)`` is, in numpy::

        x = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR), np.float32)  # [H, W, 3]
        if channel_order == "bgr":
            x = x[..., ::-1]
        if value_range == "0-1":
            x = x / 255
        x = ((x - mean) / std).transpose(2, 0, 1)                                                 # [3, H, W]

    ``mean`` and ``std`` are per channel of ``x`` as the model receives it: in its channel order and value
    range. The defaults are the usual ReID ones (torchreid, fast-reid's Python code, ``reidgraph train``).

    Args:
        height, width: input size in pixels (default: ``256``, ``128``).
        channel_order: ``"rgb"`` or ``"bgr"`` (default: ``"rgb"``).
        value_range: ``"0-1"`` (pixels divided by 255) or ``"0-255"`` (raw) (default: ``"0-1"``).
        mean, std: three numbers each (default: ImageNet's, :data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`).
    """

    height: int = 256
    width: int = 128
    channel_order: str = "rgb"
    value_range: str = "0-1"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self):
        int_in_range("height", self.height, 1, 2**16)
        int_in_range("width", self.width, 1, 2**16)
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel order {self.channel_order!r} is not one of {', '.join(CHANNEL_ORDERS)}; "
                             "use one of those")
        if self.value_range not in VALUE_RANGES:
            raise ValueError(f"value range {self.value_range!r} is not one of {', '.join(VALUE_RANGES)}; "
                             "use one of those")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3 or not all(np.isfinite(v) for v in value):
                raise ValueError(f"{name} {value!r} is not three finite numbers, one per channel; e.g. "
                                 f"{','.join(map(str, IMAGENET_MEAN))}")
        if min(self.std) <= 0:
            raise ValueError(f"std {self.std!r} holds a value <= 0; pass positive numbers (1,1,1: none)")

    def __call__(self, image: Image.Image) -> np.ndarray:
        """``image`` (any PIL mode) as the model's input ``[3, height, width]`` float32."""
        from PIL import Image  # with the first image, not with `reidgraph extract --help`

        x = np.asarray(image.convert("RGB").resize((self.width, self.height), Image.BILINEAR), np.float32)
        if self.channel_order == "bgr":
            x = x[..., ::-1]
        if self.value_range == "0-1":
            x = x / np.float32(255)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def describe(self) -> str:
        """One line, e.g. ``256x128 RGB 0-1, mean 0.485,0.456,0.406, std 0.229,0.224,0.225``."""
        return (f"{self.height}x{self.width} {self.channel_order.upper()} {self.value_range}, "
                f"mean {','.join(f'{v:g}' for v in self.mean)}, std {','.join(f'{v:g}' for v in self.std)}")
