import json

import pytest
import torch

from reidgraph.data import synthetic_features
from reidgraph.engine import GNNTrainConfig, load_checkpoint, save_checkpoint, train_ffgnn
from reidgraph.graph import GraphSettings

SETTINGS = GraphSettings(K=15, k=4, tau=4)


def test_save_is_atomic_and_kind_is_checked(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"kind": "fen", "x": torch.ones(2)}, path)
    assert list(tmp_path.iterdir()) == [path]
    assert torch.equal(load_checkpoint(path, "fen")["x"], torch.ones(2))
    with pytest.raises(ValueError, match="holds a 'fen' checkpoint, not a 'ffgnn' one"):
        load_checkpoint(path, "ffgnn")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="junk.pt is not a readable reidgraph checkpoint"):
        load_checkpoint(tmp_path / "junk.pt", "fen")
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        load_checkpoint(tmp_path / "missing.pt", "fen")


def test_interrupted_training_resumes_to_the_same_model(tmp_path):
    train = synthetic_features(25, 6, 3, 16, seed=0)
    config = GNNTrainConfig(epochs=3, graphs_per_batch=2, lr=1e-3)
    straight = train_ffgnn(train, SETTINGS, config, checkpoint=tmp_path / "a.pt", progress=False)
    # "Interrupt" after one epoch, then run the full three against the same checkpoint.
    train_ffgnn(train, SETTINGS, GNNTrainConfig(epochs=1, graphs_per_batch=2, lr=1e-3),
                checkpoint=tmp_path / "b.pt", progress=False)
    assert load_checkpoint(tmp_path / "b.pt", "ffgnn")["epoch"] == 1
    resumed = train_ffgnn(train, SETTINGS, config, checkpoint=tmp_path / "b.pt", log_path=tmp_path / "b.jsonl",
                          progress=False)
    assert load_checkpoint(tmp_path / "b.pt", "ffgnn")["epoch"] == 3
    assert [json.loads(line)["epoch"] for line in (tmp_path / "b.jsonl").read_text().splitlines()] == [2, 3]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_resuming_with_other_settings_is_refused(tmp_path):
    train = synthetic_features(25, 6, 3, 16, seed=0)
    train_ffgnn(train, SETTINGS, GNNTrainConfig(epochs=1), checkpoint=tmp_path / "c.pt", progress=False)
    with pytest.raises(ValueError, match=r"other settings \(train.lr\)"):
        train_ffgnn(train, SETTINGS, GNNTrainConfig(epochs=2, lr=1e-2), checkpoint=tmp_path / "c.pt", progress=False)
