"""open_model: ONNX files, OpenVINO IRs and FEN checkpoints as extractors, equal to the torch model they came from."""
import sys

import numpy as np
import pytest
import torch
from helpers import onnx_of
from torch import nn

from reidgraph.extractors import model_input, open_model

pytest.importorskip("onnxruntime")

SHAPE = (2, 3, 32, 16)


class Tiny(nn.Module):
    """A small ReID-like model: conv, pooling, a linear embedding ``[B, 6]``."""

    def __init__(self, pooled: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.fc, self.pooled = nn.Conv2d(3, 8, 3, stride=2), nn.Linear(8, 6), pooled

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return self.fc(y.mean(dim=(2, 3))) if self.pooled else y  # not pooled: a feature map [B, 8, h, w]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    module = Tiny().eval()
    return module, onnx_of(module, tmp_path_factory.mktemp("onnx") / "tiny.onnx", SHAPE)


def images(n, seed=0):
    return torch.randn(n, *SHAPE[1:], generator=torch.Generator().manual_seed(seed))


def test_onnx_features_equal_the_torch_model(tiny):
    module, path = tiny
    model = open_model(path)
    assert model.kind == "onnx" and model.declared == {"height": 32, "width": 16}
    x = images(5)
    with torch.no_grad():
        expected = module(x).numpy()
    out = model(x.numpy())
    assert out.shape == (5, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_a_fixed_batch_runs_in_chunks_of_it(tiny, tmp_path):
    module, _ = tiny
    fixed = open_model(onnx_of(module, tmp_path / "fixed3.onnx", (3, *SHAPE[1:]), dynamic=()))
    x = images(7, seed=1)
    with torch.no_grad():
        np.testing.assert_allclose(fixed(x.numpy()), module(x).numpy(), rtol=0, atol=1e-5)


def test_the_model_declares_its_size_and_flags_fill_the_rest(tiny):
    model = open_model(tiny[1])
    spec = model_input(model)
    assert (spec.height, spec.width, spec.channel_order, spec.value_range) == (32, 16, "rgb", "0-1")
    spec = model_input(model, channel_order="bgr", value_range="0-255")
    assert spec.mean == (103.53, 116.28, 123.675) and spec.std == (57.375, 57.12, 58.395)
    assert model_input(model, mean=(0, 0, 0), std=(1, 1, 1), height=32).mean == (0, 0, 0)
    with pytest.raises(ValueError, match="input shape fixes the height at 32, not 64; drop --height"):
        model_input(model, height=64)


def test_a_changed_order_or_range_drops_the_declared_normalisation():
    """A FEN or `reidgraph export` file declares the 0-1 RGB ImageNet mean/std; other flags must not keep it."""
    from pathlib import Path

    from reidgraph.extractors import Extractor

    model = Extractor(Path("fen.onnx"), "onnx", lambda x: x, dict(
        height=32, width=16, channel_order="rgb", value_range="0-1", mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225)))
    spec = model_input(model, value_range="0-255")
    assert (spec.channel_order, spec.value_range) == ("rgb", "0-255")
    assert spec.mean == pytest.approx((123.675, 116.28, 103.53)) and spec.std == pytest.approx((58.395, 57.12, 57.375))
    spec = model_input(model, channel_order="bgr")
    assert spec.mean == pytest.approx((0.406, 0.456, 0.485)) and spec.std == pytest.approx((0.225, 0.224, 0.229))
    spec = model_input(model, channel_order="rgb")  # the declared order again: the declared values stay
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    spec = model_input(model, value_range="0-255", mean=(1, 2, 3), std=(4, 5, 6))  # the caller's own win
    assert spec.mean == (1, 2, 3) and spec.std == (4, 5, 6)


def test_a_feature_map_output_is_refused_when_opened_or_when_run(tmp_path):
    with pytest.raises(ValueError, match=r"outputs \[axis0, 8, 15, 7\], not one vector per image"):
        open_model(onnx_of(Tiny(pooled=False), tmp_path / "map.onnx", SHAPE))
    free = open_model(onnx_of(Tiny(pooled=False), tmp_path / "free.onnx", SHAPE, dynamic=(0, 2, 3)))
    with pytest.raises(ValueError, match=r"free.onnx outputs \[2, 8, 15, 7\] for 2 images, not one vector"):
        free(images(2).numpy())


def test_pooled_outputs_with_trailing_ones_count_as_vectors(tmp_path):
    class Pooled(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3), keepdim=True)  # [B, 3, 1, 1]

    out = open_model(onnx_of(Pooled(), tmp_path / "pooled.onnx", SHAPE))(images(4).numpy())
    np.testing.assert_allclose(out, images(4).mean(dim=(2, 3)).numpy(), rtol=0, atol=1e-6)


def test_files_of_no_known_kind_are_refused(tmp_path):
    (tmp_path / "notes.onnx").write_text("not a model")
    with pytest.raises(ValueError, match="notes.onnx is neither an ONNX model, an OpenVINO IR nor a reidgraph FEN"):
        open_model(tmp_path / "notes.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(ValueError, match="broken.onnx is not an ONNX model onnxruntime can load"):
        open_model(tmp_path / "broken.onnx")
    torch.save(Tiny().state_dict(), tmp_path / "osnet.pth")  # a bare state dict, as torchreid's model zoo ships
    with pytest.raises(ValueError, match="export the model to ONNX first"):
        open_model(tmp_path / "osnet.pth")
    with pytest.raises(FileNotFoundError, match="model .*absent.onnx does not exist"):
        open_model(tmp_path / "absent.onnx")


def test_a_missing_runtime_names_its_extra(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ValueError, match=r"needs the onnxruntime package: pip install 'reidgraph\[onnxruntime\]'"):
        open_model(tiny[1])
    monkeypatch.setitem(sys.modules, "openvino", None)
    (tmp_path / "m.xml").write_text('<?xml version="1.0"?>\n<net name="m" version="11"></net>\n')
    with pytest.raises(ValueError, match=r"m.xml is an OpenVINO IR; .* pip install 'reidgraph\[openvino\]'"):
        open_model(tmp_path / "m.xml")


def test_devices_the_runtimes_lack_are_refused(tiny, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ValueError, match="this onnxruntime has no CUDA provider"):
            open_model(tiny[1], "cuda")
    with pytest.raises(ValueError, match="runs ONNX models on cpu or cuda"):
        open_model(tiny[1], "tpu")


def test_openvino_ir_equals_the_onnx_model_and_reads_omz_conventions(tiny, tmp_path):
    ov = pytest.importorskip("openvino")
    module, path = tiny
    ir = ov.convert_model(str(path))
    ov.save_model(ir, str(tmp_path / "tiny.xml"), compress_to_fp16=False)  # the default halves weights
    model = open_model(tmp_path / "tiny.xml")
    assert model.kind == "openvino" and model.declared == {"height": 32, "width": 16}
    x = images(3)
    with torch.no_grad():
        np.testing.assert_allclose(model(x.numpy()), module(x).numpy(), rtol=0, atol=1e-5)
    # What Model Optimizer records when it builds the normalisation into an IR, as in Open Model Zoo's models.
    ir.set_rt_info("True", ["conversion_parameters", "reverse_input_channels"])
    ir.set_rt_info("images[123.675,116.28,103.53]", ["conversion_parameters", "mean_values"])
    ov.save_model(ir, str(tmp_path / "omz.xml"))
    spec = model_input(open_model(tmp_path / "omz.xml"))
    assert (spec.channel_order, spec.value_range, spec.mean, spec.std) == ("bgr", "0-255", (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="OpenVINO models run on the CPU here"):
        open_model(tmp_path / "tiny.xml", "cuda")
    (tmp_path / "tiny.bin").unlink()
    with pytest.raises(ValueError, match="tiny.xml is not an OpenVINO IR that OpenVINO can read"):
        open_model(tmp_path / "tiny.xml")
