import pytest
import torch

from reidgraph.data import load_dataset
from reidgraph.engine.train_fen import FENTrainConfig, train_fen
from reidgraph.engine.train_joint import JointTrainConfig, train_joint
from reidgraph.graph import GraphSettings
from reidgraph.models import FEN
from reidgraph.nn import FFGNN

SETTINGS = GraphSettings(K=8, k=3, tau=3)


def test_joint_training_updates_both_networks(tiny_market, tmp_path):
    train = load_dataset("market1501", tiny_market).train
    fen = train_fen(train, FENTrainConfig(arch="resnet18", height=32, width=16, epochs=1, P=4, K=2, num_workers=0),
                    progress=False)
    ffgnn = FFGNN(fen.dim)
    before_fen = [p.detach().clone() for p in fen.parameters()]
    before_gnn = [p.detach().clone() for p in ffgnn.parameters()]
    config = JointTrainConfig(epochs=1, lr=1e-3, max_graphs_per_epoch=2)
    fen, ffgnn = train_joint(fen, ffgnn, train, SETTINGS, config, height=32, width=16,
                             checkpoint=tmp_path / "joint.pt", progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before_fen, fen.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_gnn, ffgnn.parameters()))
    assert (tmp_path / "joint.pt").is_file()


def test_fen_without_matching_classifier_is_refused(tiny_market):
    train = load_dataset("market1501", tiny_market).train
    with pytest.raises(ValueError, match="classifier has 3 classes but the training set has 6 identities"):
        train_joint(FEN("resnet18", num_classes=3), FFGNN(512), train, SETTINGS, height=32, width=16,
                    progress=False)
