"""ReID models from anywhere as feature extractors: an ONNX file, an OpenVINO IR or a reidgraph FEN checkpoint.

:func:`open_model` reads the file, whatever wrote it (torchreid, fast-reid and ``reidgraph export`` write
ONNX; Open Model Zoo ships IR), and returns an :class:`Extractor`: images ``[B, 3, H, W]`` float32 in,
features ``[B, D]`` float32 out. What the model states about its input (the size of a fixed input shape,
the normalisation an IR or a ``reidgraph export`` carries) is in ``declared``; :func:`model_input` merges it
with the caller's choices and the usual ReID defaults into a
:class:`~reidgraph.data.model_input.ModelInput`.

onnxruntime (``pip install 'reidgraph[onnxruntime]'``) and openvino (``pip install 'reidgraph[openvino]'``)
are imported only when a model of theirs is opened.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import numpy as np

from ._checks import first_line, usable_device
from .data.model_input import IMAGENET_MEAN, IMAGENET_STD, ModelInput, imagenet

__all__ = ["Extractor", "open_model", "model_input"]

FIX = ("pass an ONNX file (torchreid, fast-reid, `reidgraph export`), an OpenVINO IR .xml (its .bin beside it) "
       "or a fen.pt from `reidgraph train`")


class Extractor:
    """A ReID model as a function: images ``[B, 3, H, W]`` float32 -> features ``[B, D]`` float32.

    Attributes:
        source: the model file.
        kind: ``"onnx"``, ``"openvino"`` or ``"fen"``.
        declared: the :class:`~reidgraph.data.model_input.ModelInput` fields the model states.
        fixed: those of ``declared`` it cannot run without (``height``, ``width`` of a fixed input shape).
    """

    def __init__(self, source: Path, kind: str, run: Callable[[np.ndarray], np.ndarray], declared: dict,
                 fixed: frozenset[str] = frozenset(), batch: int | None = None):
        self.source, self.kind, self.declared, self.fixed = source, kind, declared, fixed
        self._run, self._batch = run, batch

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features ``[B, D]`` of ``images [B, 3, H, W]``; a model with a fixed batch size runs in chunks of it
        (the last padded with copies of its first image)."""
        images = np.ascontiguousarray(images, np.float32)
        step = self._batch or len(images)
        feats = []
        for start in range(0, len(images), step):
            chunk = images[start:start + step]
            padded = np.concatenate([chunk, np.repeat(chunk[:1], step - len(chunk), 0)]) if len(chunk) < step \
                else chunk
            out = np.asarray(self._run(padded))
            one_vector_per_image(list(out.shape), self.source, len(padded))
            feats.append(out.reshape(len(padded), out.shape[1])[:len(chunk)])
        return np.concatenate(feats).astype(np.float32, copy=False)


def one_vector_per_image(shape: list, source: Path, batch: int | None = None) -> None:
    """Raise unless an output ``shape`` (ints; names or None for axes not fixed) is one vector per image:
    ``[B, D]``, or ``[B, D, 1, 1]`` as pooled outputs often are."""
    if len(shape) >= 2 and all(not isinstance(s, int) or s == 1 for s in shape[2:]) \
            and (batch is None or shape[0] == batch):
        return
    shown = "[" + ", ".join(str(s) for s in shape) + "]"
    images = f" for {batch} images" if batch is not None else ""
    raise ValueError(f"{source} outputs {shown}{images}, not one vector per image ([batch, D]); export the "
                     "model's feature (embedding) output in eval mode, not a feature map")


def fixed_size(declared: dict) -> frozenset[str]:
    """:attr:`Extractor.fixed` of a graph whose input shape fixes the sizes in ``declared``."""
    return frozenset(k for k in ("height", "width") if k in declared)


def runtime(module: str, source: Path, what: str):
    """Import the runtime package ``module`` (also the pip extra's name), or a one-line ValueError."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(f"{source} is {what}; running it needs the {module} package: "
                         f"pip install 'reidgraph[{module}]'") from None


def open_model(path: str | Path, device: str = "cpu") -> Extractor:
    """The model in ``path`` as an :class:`Extractor` on ``device``, told apart by content, not by name.

    Args:
        path: an ONNX file, an OpenVINO IR ``.xml`` (its ``.bin`` beside it) or a ``reidgraph train``
            ``fen.pt``.
        device: ``cpu`` or ``cuda[:i]`` (ONNX: onnxruntime's CUDA provider; FEN: torch). OpenVINO runs on
            the CPU. (default: ``"cpu"``)

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: (one line) a file of none of the three kinds, one that its runtime cannot load, a model
            that does not map one image batch to one vector per image, a device it cannot use, or a runtime
            package not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model {path} does not exist; {FIX}")
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):  # torch.save: a zip, or a legacy pickle
        return _fen(path, device)
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return _openvino(path, device)
    if head.startswith(b"\x08"):  # a protobuf ModelProto opens with field 1, ir_version, a varint
        return _onnx(path, device)
    raise ValueError(f"{path} is neither an ONNX model, an OpenVINO IR nor a reidgraph FEN checkpoint; {FIX}")


def _onnx(path: Path, device: str) -> Extractor:
    ort = runtime("onnxruntime", path, "an ONNX model")
    providers = ["CPUExecutionProvider"]
    if device != "cpu":
        kind, _, index = device.partition(":")
        if kind != "cuda" or not (index.isdigit() or not index):
            raise ValueError(f"--device {device}: onnxruntime runs ONNX models on cpu or cuda[:i]; use one of those")
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(f"--device {device}: this onnxruntime has no CUDA provider (it has "
                             f"{', '.join(ort.get_available_providers())}); pip install onnxruntime-gpu, or use cpu")
        providers = [("CUDAExecutionProvider", {"device_id": int(index or 0)}), *providers]
    try:
        session = ort.InferenceSession(str(path), providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types for an unreadable or invalid graph
        raise ValueError(f"{path} is not an ONNX model onnxruntime can load ({first_line(err)}); {FIX}") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    name = _image_input([(i.name, i.shape) for i in inputs], path)
    one_vector_per_image(outputs[0].shape, path)
    batch, _, height, width = inputs[0].shape
    declared = {k: v for k, v in (("height", height), ("width", width)) if isinstance(v, int)}
    meta = session.get_modelmeta().custom_metadata_map
    if "reidgraph.mean" in meta:  # `reidgraph export` records the normalisation of the FEN it exported
        declared.update(channel_order="rgb", value_range="0-1", mean=channel_numbers(meta["reidgraph.mean"]),
                        std=channel_numbers(meta["reidgraph.std"]))
    output = outputs[0].name
    return Extractor(path, "onnx", lambda x: session.run([output], {name: x})[0], declared,
                     fixed_size(declared), batch if isinstance(batch, int) else None)


def _openvino(path: Path, device: str) -> Extractor:
    ov = runtime("openvino", path, "an OpenVINO IR")
    if device != "cpu":
        raise ValueError(f"--device {device}: OpenVINO models run on the CPU here; use --device cpu (or run an "
                         "ONNX export of the model on CUDA with onnxruntime-gpu)")
    core = ov.Core()
    try:
        model = core.read_model(str(path))
    except Exception as err:  # OpenVINO raises RuntimeError subclasses for a bad .xml or a missing .bin
        raise ValueError(f"{path} is not an OpenVINO IR that OpenVINO can read ({first_line(err)}); keep its .bin "
                         f"beside it, or {FIX}") from None
    dims = [[d.get_length() if d.is_static else None for d in p.get_partial_shape()] for p in model.inputs]
    _image_input([(p.any_name, shape) for p, shape in zip(model.inputs, dims)], path)
    one_vector_per_image([d.get_length() if d.is_static else None for d in model.output(0).get_partial_shape()],
                         path)
    _, _, height, width = dims[0]
    declared = {k: v for k, v in (("height", height), ("width", width)) if v is not None}
    # Model Optimizer records the preprocessing it built into the IR (Open Model Zoo's models: mean and scale
    # inside, channels reversed), so the IR takes raw pixels; BGR where it reversed the channels.
    conversion = ("conversion_parameters",)
    if any(model.has_rt_info([*conversion, key]) for key in ("mean_values", "scale_values")):
        declared.update(value_range="0-255", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    if model.has_rt_info([*conversion, "reverse_input_channels"]) and \
            model.get_rt_info([*conversion, "reverse_input_channels"]).astype(str) == "True":
        declared["channel_order"] = "bgr"
    batch = dims[0][0]
    try:  # Open Model Zoo's IRs fix the batch at 1; most take any batch once reshaped
        model.reshape({model.input(0): ov.PartialShape([-1, 3, height or -1, width or -1])})
        batch = None
    except Exception:  # OpenVINO's RuntimeError where a layer cannot follow: run in batches of the IR's size
        pass
    # f32: on CPUs with bf16 units OpenVINO would otherwise compute in bf16 (cosine to f32 features ~0.9995).
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    output = compiled.output(0)
    return Extractor(path, "openvino", lambda x: compiled(x)[output], declared,
                     fixed_size(declared), batch)


def _fen(path: Path, device: str) -> Extractor:
    import torch

    from .engine.train_fen import load_fen

    torch_device = usable_device(device, "--device")
    try:
        fen, config = load_fen(path)
    except ValueError as err:
        if "without a loadable FEN" in str(err):  # a "fen" checkpoint: load_fen's line says it all
            raise
        # load_checkpoint's line: not a checkpoint, or another kind
        raise ValueError(f"{err} (a bare state dict, e.g. torchreid's .pth: export the model to ONNX first, see "
                         "docs/extract.md)") from None
    fen.to(torch_device)

    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        return fen(torch.from_numpy(x).to(torch_device)).float().cpu().numpy()  # eval mode: [B, D] BNNeck feature

    declared = dict(height=config["height"], width=config["width"], channel_order="rgb", value_range="0-1",
                    mean=IMAGENET_MEAN, std=IMAGENET_STD)  # the test-time transforms it was trained with
    return Extractor(path, "fen", run, declared)


def model_input(model: Extractor, **given) -> ModelInput:
    """The input of ``model``: each field from ``given`` (not None), else what the model declares, else the
    ReID default; ``mean``/``std`` default to ImageNet's in the chosen channel order and value range.

    A ``mean``/``std`` the model declares holds for its declared channel order and value range only: where
    ``given`` changes either and sets no ``mean``/``std`` of its own, the ImageNet defaults of the chosen
    order and range replace them.

    Raises:
        ValueError: a given ``height``/``width`` differs from the model's fixed input shape.
    """
    given = {k: v for k, v in given.items() if v is not None}
    for key in sorted(model.fixed & given.keys()):
        if given[key] != model.declared[key]:
            raise ValueError(f"{model.source}'s input shape fixes the {key} at {model.declared[key]}, not "
                             f"{given[key]}; drop --{key}, or export the model at that size")
    declared = dict(model.declared)
    if any(key in given and given[key] != declared.get(key) for key in ("channel_order", "value_range")) \
            and not {"mean", "std"} & given.keys():
        declared.pop("mean", None)  # stated for another order or range: the chosen one's defaults follow
        declared.pop("std", None)
    fields = {**declared, **given}
    mean, std = imagenet(fields.get("channel_order", "rgb"), fields.get("value_range", "0-1"))
    return ModelInput(**{"mean": mean, "std": std, **fields})


def _image_input(inputs: list[tuple[str, list]], source: Path) -> str:
    """The name of the one image input ``[batch, 3, H, W]`` among ``(name, shape)`` pairs, or a one-line ValueError."""
    if len(inputs) != 1 or len(inputs[0][1]) != 4 or isinstance(inputs[0][1][1], int) and inputs[0][1][1] != 3:
        shown = ", ".join(f"{n} [{', '.join(str(s) for s in shape)}]" for n, shape in inputs)
        raise ValueError(f"{source} takes {shown}, not one image batch [batch, 3, H, W]; export the model with a "
                         "single NCHW image input")
    return inputs[0][0]


def channel_numbers(text: str) -> tuple[float, ...]:
    """Three comma-separated numbers (a mean or std per channel, ``"0.485,0.456,0.406"``), or a one-line
    ``ValueError``."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise ValueError(f"{text!r} is not three comma-separated numbers; e.g. 0.485,0.456,0.406")
    return values
