"""export_onnx: a `reidgraph train` FEN checkpoint -> ONNX, run under onnxruntime, equal to PyTorch."""
import sys
from dataclasses import asdict

import numpy as np
import pytest
import torch

from reidgraph.checkpoint import save_checkpoint
from reidgraph.engine.train_fen import FENTrainConfig
from reidgraph.export import export_onnx
from reidgraph.models import FEN

HEIGHT, WIDTH = 64, 32


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A randomly initialised resnet18 FEN, saved with the keys run_epochs writes for `reidgraph train`."""
    torch.manual_seed(0)
    fen = FEN("resnet18", num_classes=4)
    with torch.no_grad():  # move the BatchNorm statistics, the BNNeck's included, off their init
        fen.train()(torch.rand(8, 3, HEIGHT, WIDTH))
    config = FENTrainConfig(arch="resnet18", height=HEIGHT, width=WIDTH, epochs=1)
    path = tmp_path_factory.mktemp("run") / "fen.pt"
    save_checkpoint({"kind": "fen", "epoch": 1, "config": {**asdict(config), "fen": fen.config(), "classes": [0, 1, 2, 3]},
                     "data": None, "log": [], "modules": {"fen": fen.state_dict()}}, path)
    return path, fen.eval()


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    pytest.importorskip("onnx")
    out = tmp_path_factory.mktemp("onnx") / "sub" / "fen.onnx"
    return export_onnx(checkpoint[0], out)


def test_onnxruntime_features_match_pytorch(checkpoint, exported):
    ort = pytest.importorskip("onnxruntime")
    _, fen = checkpoint
    assert exported.is_file() and exported.name == "fen.onnx"
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    (images_in,), (features_out,) = session.get_inputs(), session.get_outputs()
    assert images_in.name == "images" and images_in.shape[1:] == [3, HEIGHT, WIDTH]
    assert isinstance(images_in.shape[0], str) and features_out.shape[1] == fen.dim  # dynamic batch axis
    gen = torch.Generator().manual_seed(1)
    for batch in (1, 5):
        images = torch.randn(batch, 3, HEIGHT, WIDTH, generator=gen)
        (onnx_feats,) = session.run(None, {"images": images.numpy()})
        with torch.no_grad():
            torch_feats = fen(images).numpy()
        assert onnx_feats.shape == (batch, fen.dim)
        assert np.abs(onnx_feats - torch_feats).max() < 1e-4


def test_metadata_records_the_input_it_expects(exported):
    onnx = pytest.importorskip("onnx")
    meta = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    assert meta["reidgraph.arch"] == "resnet18" and meta["reidgraph.dim"] == "512"
    assert (meta["reidgraph.height"], meta["reidgraph.width"]) == (str(HEIGHT), str(WIDTH))
    assert meta["reidgraph.mean"] == "0.485,0.456,0.406"


def test_image_size_can_be_overridden(checkpoint, tmp_path):
    onnx = pytest.importorskip("onnx")
    path = export_onnx(checkpoint[0], tmp_path / "small.onnx", height=32, width=16)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [3, 32, 16] and dims[0].dim_param


def test_bad_checkpoints_give_one_line_value_errors(tmp_path):
    pytest.importorskip("onnx")
    save_checkpoint({"kind": "ffgnn"}, tmp_path / "ffgnn.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    save_checkpoint({"kind": "fen", "config": {}}, tmp_path / "empty.pt")
    cases = {"nowhere.pt": "does not exist", "ffgnn.pt": "not a 'fen' one", "junk.pt": "not a readable",
             "empty.pt": "without a loadable FEN"}
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message) as err:
            export_onnx(tmp_path / name, tmp_path / "out.onnx")
        assert "\n" not in str(err.value)
    assert not (tmp_path / "out.onnx").exists()


def test_missing_onnx_says_what_to_install(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'reidgraph\[export\]'"):
        export_onnx(checkpoint[0], tmp_path / "fen.onnx")


def test_the_export_command_writes_the_model_and_names_a_bad_checkpoint(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    pytest.importorskip("onnx")
    from reidgraph.cli import main
    out = tmp_path / "cli.onnx"
    assert main(["export", "--checkpoint", str(path), "--out", str(out)]) == 0
    assert out.is_file() and f"exported to {out}" in capsys.readouterr().out
    assert main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reidgraph export: error: ") and "none.pt" in err and "\n" not in err


def test_an_opset_the_exporter_cannot_write_is_refused(checkpoint, tmp_path):
    pytest.importorskip("onnx")
    from reidgraph.export import opsets

    low, high = opsets()
    assert low <= 17 <= high
    with pytest.raises(ValueError, match=rf"opset={high + 1} is outside \[{low}, {high}\] \(the installed"):
        export_onnx(checkpoint[0], tmp_path / "fen.onnx", opset=high + 1)
