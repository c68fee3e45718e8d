"""Image transforms for training and testing the FEN (paper §4.2: resize, flip, translation, random erasing)."""
from __future__ import annotations

import torchvision.transforms as T

from .._checks import in_unit_interval, int_in_range
from .model_input import IMAGENET_MEAN, IMAGENET_STD


def build_transforms(height: int = 256, width: int = 128, train: bool = True, flip: float = 0.5,
                     pad: int = 10, erasing: float = 0.5) -> T.Compose:
    """PIL image -> normalised tensor ``[3, height, width]``.

    Training: resize, random horizontal flip, translation (pad then random crop
    back to size), ImageNet normalisation, random erasing. Testing: resize and
    normalise only, so the same image always gives the same tensor.

    Args:
        height (int, optional): output height, at least 16. (default: ``256``; the paper uses 384)
        width (int, optional): output width, at least 8. (default: ``128``)
        train (bool, optional): build the random training pipeline. (default: ``True``)
        flip (float, optional): horizontal flip probability; ``0`` disables it. (default: ``0.5``)
        pad (int, optional): padding in pixels before the random crop; ``0`` disables
            translation. (default: ``10``)
        erasing (float, optional): random erasing probability; ``0`` disables it. (default: ``0.5``)
    """
    int_in_range("height", height, 16, 100_000, "person crops smaller than 16x8 carry no usable detail")
    int_in_range("width", width, 8, 100_000, "person crops smaller than 16x8 carry no usable detail")
    in_unit_interval("flip", flip)
    in_unit_interval("erasing", erasing)
    int_in_range("pad", pad, 0, max(height, width), "pad is in pixels, at most the image size")
    size = (height, width)
    if not train:
        return T.Compose([T.Resize(size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    steps = [T.Resize(size)]
    if flip > 0:
        steps.append(T.RandomHorizontalFlip(p=flip))
    if pad > 0:
        steps += [T.Pad(pad), T.RandomCrop(size)]
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if erasing > 0:
        # value 0 after normalisation is the ImageNet mean colour, so erased patches look like
        # average background rather than black occluders.
        steps.append(T.RandomErasing(p=erasing, value=0))
    return T.Compose(steps)
