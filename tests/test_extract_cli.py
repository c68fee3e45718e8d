"""`reidgraph extract --model`: FEN checkpoints, ONNX files and their input flags on tiny generated images; bad input."""
import sys
from dataclasses import asdict

import numpy as np
import pytest
import torch
from helpers import onnx_of, transcription
from PIL import Image
from torch import nn

from reidgraph.checkpoint import save_checkpoint
from reidgraph.cli import main
from reidgraph.data.datasets import load_dataset
from reidgraph.engine.extract import extract_features
from reidgraph.engine.train_fen import FENTrainConfig
from reidgraph.features import FeatureSet
from reidgraph.models import FEN

pytest.importorskip("onnxruntime")


class Flatten(nn.Module):
    """The model's input itself as the feature: ``[B, 3, H, W] -> [B, 3 H W]``."""

    def forward(self, x):
        return x.flatten(1)


def extract(root, model, out, *flags, dataset="market1501"):
    return main(["extract", "--dataset", dataset, "--root", str(root), "--model", str(model), "--out", str(out),
                 "--quiet", *flags])


@pytest.fixture(scope="module")
def fen_checkpoint(tmp_path_factory):
    """A resnet18 FEN at 64x32 (BatchNorm statistics moved off their init), saved as `reidgraph train` does."""
    torch.manual_seed(0)
    fen = FEN("resnet18", num_classes=4)
    with torch.no_grad():
        fen.train()(torch.rand(8, 3, 64, 32))
    config = FENTrainConfig(arch="resnet18", height=64, width=32, epochs=1)
    path = tmp_path_factory.mktemp("run") / "fen.pt"
    save_checkpoint({"kind": "fen", "epoch": 1, "config": {**asdict(config), "fen": fen.config(), "classes": [0, 1, 2, 3]},
                     "data": None, "log": [], "modules": {"fen": fen.state_dict()}}, path)
    return path, fen.eval()


def test_fen_checkpoint_and_its_onnx_export_give_the_training_features(tiny_market, fen_checkpoint, tmp_path, capsys):
    pytest.importorskip("onnx")
    path, fen = fen_checkpoint
    assert extract(tiny_market, path, tmp_path / "fen.npz") == 0
    assert "(fen; input 64x32 RGB 0-1, mean 0.485,0.456,0.406, std 0.229,0.224,0.225)" in capsys.readouterr().out
    ours = FeatureSet.load(tmp_path / "fen.npz")
    data = load_dataset("market1501", tiny_market)
    expected = [extract_features(fen, records, 64, 32, num_workers=0, progress=False)
                for records in (data.train, data.query, data.gallery)]
    assert ours.paths == sum((e.paths for e in expected), [])
    assert ours.split == ["train"] * len(data.train) + ["query"] * len(data.query) + ["gallery"] * len(data.gallery)
    assert torch.equal(ours.pids, torch.cat([e.pids for e in expected]))
    torch.testing.assert_close(ours.feats, torch.cat([e.feats for e in expected]), rtol=0, atol=1e-5)

    assert main(["export", "--checkpoint", str(path), "--out", str(tmp_path / "fen.onnx")]) == 0
    assert extract(tiny_market, tmp_path / "fen.onnx", tmp_path / "onnx.npz", "--batch-size", "7") == 0
    assert "(onnx; input 64x32 RGB 0-1, mean 0.485,0.456,0.406" in capsys.readouterr().out  # from its metadata
    exported = FeatureSet.load(tmp_path / "onnx.npz")
    assert exported.paths == ours.paths
    torch.testing.assert_close(exported.feats, ours.feats, rtol=0, atol=1e-4)


def transcription_of(path, **settings):
    """What the flags say the model receives (:func:`helpers.transcription` of the image at ``path``, 32x16),
    flattened as :class:`Flatten` returns it."""
    return transcription(Image.open(path), 32, 16, **settings).reshape(-1)


@pytest.mark.parametrize("flags, expected", [
    ([], {}),
    (["--channel-order", "bgr"], {"bgr": True, "mean": (0.406, 0.456, 0.485), "std": (0.225, 0.224, 0.229)}),
    (["--value-range", "0-255"], {"raw": True, "mean": (123.675, 116.28, 103.53), "std": (58.395, 57.12, 57.375)}),
    (["--channel-order", "bgr", "--value-range", "0-255", "--mean", "0,0,0", "--std", "1,1,1"],
     {"bgr": True, "raw": True, "mean": (0, 0, 0), "std": (1, 1, 1)}),
    (["--mean", "0.1,0.2,0.3", "--std", "2,3,4"], {"mean": (0.1, 0.2, 0.3), "std": (2, 3, 4)}),
])
def test_input_flags_change_the_input_as_written(tiny_market, tmp_path, flags, expected):
    model = onnx_of(Flatten(), tmp_path / "flatten.onnx", (2, 3, 32, 16))
    assert extract(tiny_market, model, tmp_path / "f.npz", *flags, "--batch-size", "5") == 0
    got = FeatureSet.load(tmp_path / "f.npz")
    assert got.feats.shape == (len(got.paths), 3 * 32 * 16)
    want = np.stack([transcription_of(p, **expected) for p in got.paths])
    np.testing.assert_allclose(got.feats.numpy(), want, rtol=0, atol=1e-5)


def test_height_and_width_flags_size_a_free_input(tiny_market, tmp_path):
    model = onnx_of(Flatten(), tmp_path / "free.onnx", (2, 3, 32, 16), dynamic=(0, 2, 3))
    assert extract(tiny_market, model, tmp_path / "f.npz", "--height", "32", "--width", "16") == 0
    got = FeatureSet.load(tmp_path / "f.npz")
    np.testing.assert_allclose(got.feats[:3].numpy(), np.stack([transcription_of(p) for p in got.paths[:3]]),
                               rtol=0, atol=1e-5)


def labelled_folder(tiny_market, root, missing=None):
    """A ``folder`` dataset over the tiny market's images: ``labels.csv`` with absolute paths, plus ``missing``."""
    data = load_dataset("market1501", tiny_market)
    rows = [f"{split},{r.path},{r.pid},{r.camid}" for split in ("train", "query", "gallery")
            for r in getattr(data, split)]
    if missing:
        rows.insert(3, f"train,{missing},1,0")
    root.mkdir()
    (root / "labels.csv").write_text("split,path,pid,camid\n" + "\n".join(rows) + "\n")
    return root


def test_bad_input_is_one_line_naming_the_file_and_exit_2(tiny_market, fen_checkpoint, tmp_path, capsys,
                                                          monkeypatch):
    flatten = onnx_of(Flatten(), tmp_path / "flatten.onnx", (2, 3, 32, 16))
    root = labelled_folder(tiny_market, tmp_path / "listed", missing="train/0099_c1_gone.jpg")
    assert extract(root, flatten, tmp_path / "f.npz", dataset="folder") == 2
    err = capsys.readouterr().err
    assert "labels.csv: skipped 1 train image(s) that are missing" in err and "train/0099_c1_gone.jpg" in err
    assert "put the files under --root" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f.npz").exists()

    (tmp_path / "model.bin").write_bytes(b"\x00\x01\x02")
    cases = [
        (tmp_path / "model.bin", "model.bin is neither an ONNX model, an OpenVINO IR nor a reidgraph FEN checkpoint"),
        (onnx_of(nn.Conv2d(3, 4, 3), tmp_path / "map.onnx", (2, 3, 32, 16)),
         "map.onnx outputs [axis0, 4, 30, 14], not one vector per image ([batch, D])"),
    ]
    for model, message in cases:
        assert extract(tiny_market, model, tmp_path / "f.npz") == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert extract(tiny_market, flatten, tmp_path / "f.npz", "--height", "64") == 2
    assert "input shape fixes the height at 32, not 64" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert extract(tiny_market, flatten, tmp_path / "f.npz") == 2
    assert "pip install 'reidgraph[onnxruntime]'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        extract(tiny_market, flatten, tmp_path / "f.npz", "--mean", "0.5,0.5")
    assert stop.value.code == 2 and "is not three comma-separated numbers" in capsys.readouterr().err
    assert not (tmp_path / "f.npz").exists()
