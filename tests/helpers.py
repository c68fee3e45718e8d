"""Helpers the tests import (fixtures live in conftest.py; nothing is imported from it)."""

TINY_TRAIN = ["--arch", "resnet18", "--height", "32", "--width", "16", "--P", "4", "--images-per-id", "2",
              "--workers", "0", "--K", "10", "--k", "3", "--tau", "3", "--quiet"]
"""``reidgraph train`` flags for a seconds-long run on the ``tiny_market`` fixture."""


def onnx_of(module, path, shape, dynamic=(0,)):
    """``module`` (eval mode) exported to the ONNX file ``path`` for inputs of ``shape`` ``[B, 3, H, W]``, the
    input and output axes in ``dynamic`` left free (default: the batch); returns ``path``."""
    import warnings

    import torch

    images = torch.zeros(*shape)
    with torch.no_grad(), warnings.catch_warnings():
        rank = module.eval()(images).dim()
        warnings.simplefilter("ignore")  # torch >= 2.9: the TorchScript-based exporter is deprecated
        torch.onnx.export(module, (images,), str(path), input_names=["images"], output_names=["out"],
                          dynamic_axes={"images": {i: f"axis{i}" for i in dynamic},
                                        "out": {i: f"axis{i}" for i in dynamic if i < rank}},
                          opset_version=17, dynamo=False)
    return path


def transcription(image, height, width, bgr=False, raw=False, mean=(0.485, 0.456, 0.406),
                  std=(0.229, 0.224, 0.225)):
    """A model's input ``[3, height, width]`` from a PIL ``image``, written out in numpy: RGB, PIL bilinear
    resize, channel flip (``bgr``), scaling to 0-1 (unless ``raw``), normalisation, HWC -> CHW."""
    import numpy as np
    from PIL import Image

    x = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR)).astype(np.float32)
    if bgr:
        x = x[:, :, [2, 1, 0]]
    if not raw:
        x = x / np.float32(255)
    x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
    return np.moveaxis(x, 2, 0)
