"""Models that leave Python: a trained FEN as an ONNX file.

The exported graph takes ``images [batch, 3, H, W]`` (RGB, ``float32``, resized to
the training size and normalised with the ImageNet mean and std, as
:func:`reidgraph.data.transforms.build_transforms` does at test time) and returns
``features [batch, D]``, the BNNeck feature that ``reidgraph extract`` writes. The
batch axis is dynamic; height and width are fixed at export.

Needs the ``export`` extra: ``pip install 'reidgraph[export]'``.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from ._checks import int_in_range
from .atomic import atomic_write

__all__ = ["export_onnx", "DEFAULT_OPSET"]

#: ONNX opset of the exported graph: supported by every onnxruntime since 1.14.
DEFAULT_OPSET = 17

_INSTALL = "pip install 'reidgraph[export]'"


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(f"exporting to ONNX needs the onnx package; install it with {_INSTALL}") from None
    return onnx


def opsets() -> tuple[int, int]:
    """The lowest and highest ONNX opset the installed TorchScript-based exporter writes (7 to 20 in torch 2.14)."""
    from torch.onnx import _constants

    return _constants.ONNX_MIN_OPSET, getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET",
                                              _constants.ONNX_MAX_OPSET)


def export_onnx(checkpoint: str | Path, out: str | Path, *, height: int | None = None, width: int | None = None,
                opset: int = DEFAULT_OPSET) -> Path:
    """Export the FEN of a ``reidgraph train`` checkpoint to ONNX.

    Args:
        checkpoint: the stage-1 checkpoint (``fen.pt`` in the folder ``reidgraph train`` writes).
        out: the ONNX file to write (its folder is created; written atomically, so a failed
            export leaves no partial file).
        height, width: input image size; default the size the FEN was trained at.
        opset: ONNX opset version. (default: :data:`DEFAULT_OPSET`)

    Returns:
        ``out`` as a :class:`~pathlib.Path`, holding a model that passed ``onnx.checker``: input
        ``images [batch, 3, height, width]``, output ``features [batch, D]``; its metadata
        (``reidgraph.*`` keys) records the arch, image size, feature dimension and normalisation.

    Raises:
        ImportError: ``onnx`` is not installed (``pip install 'reidgraph[export]'``).
        ValueError: the checkpoint is missing or not a FEN checkpoint, or a size is out of range.
    """
    onnx = _import_onnx()
    checkpoint, out = Path(checkpoint), Path(out)
    int_in_range("opset", opset, *opsets(), "the installed torch.onnx exporter's range")
    if not checkpoint.is_file():
        raise ValueError(f"checkpoint {checkpoint} does not exist; pass the fen.pt written by `reidgraph train`")
    from .engine.train_fen import load_fen

    fen, config = load_fen(checkpoint)
    height = int_in_range("height", config.get("height", 256) if height is None else height, 1, 2**16)
    width = int_in_range("width", config.get("width", 128) if width is None else width, 1, 2**16)

    fen = fen.eval().cpu()
    images = torch.zeros(2, 3, height, width)  # batch 2: nothing may specialise on a batch of 1
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript-based exporter (dynamo=False) needs no onnxscript and handles the whole
        # FEN; torch >= 2.9 warns that it is deprecated. The shape check in FEN.feature_map is
        # traced as a constant, which is right for the fixed channel count.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(fen, (images,), buffer, opset_version=opset, input_names=["images"],
                          output_names=["features"],
                          dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}}, dynamo=False)

    from .data.transforms import IMAGENET_MEAN, IMAGENET_STD

    model = onnx.load_from_string(buffer.getvalue())
    model.doc_string = (f"reidgraph FEN ({fen.arch}): images [batch, 3, {height}, {width}], RGB in [0, 1] "
                        f"normalised with mean {IMAGENET_MEAN} and std {IMAGENET_STD} -> features [batch, {fen.dim}] "
                        "(the BNNeck feature that `reidgraph extract` writes)")
    for key, value in {"arch": fen.arch, "height": height, "width": width, "dim": fen.dim,
                       "mean": ",".join(map(str, IMAGENET_MEAN)), "std": ",".join(map(str, IMAGENET_STD)),
                       "checkpoint": checkpoint.name}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"reidgraph.{key}", str(value)
    onnx.checker.check_model(model, full_check=True)
    with atomic_write(out, "wb") as f:
        f.write(model.SerializeToString())
    return out
