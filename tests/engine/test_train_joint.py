import json

import pytest
import torch

from reidgraph.data import load_dataset
from reidgraph.engine.train_fen import FENTrainConfig, train_fen
from reidgraph.engine import recipe
from reidgraph.engine.train_joint import JointTrainConfig, train_joint
from reidgraph.graph import GraphSettings
from reidgraph.models import FEN
from reidgraph.nn import FFGNN

SETTINGS = GraphSettings(K=8, k=3, tau=3)


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_joint_training_updates_both_networks(tiny_market, tmp_path, preset):
    """Stage 3 scores the fused features with stage 2's losses: the paper's include softmax on its classifier."""
    train = load_dataset("market1501", tiny_market).train
    fen_config = FENTrainConfig(arch="resnet18", height=32, width=16, epochs=1, P=4, images_per_id=2, num_workers=0)
    fen = train_fen(train, fen_config, progress=False)
    graph_config = recipe(preset)[1]
    ffgnn = FFGNN(fen.dim, output=graph_config.output, init=graph_config.init)
    classifier = torch.nn.Linear(fen.dim, 6) if preset == "paper" else None
    watched = [ffgnn] + ([classifier] if classifier else [])
    before_fen = [p.detach().clone() for p in fen.parameters()]
    before = [[p.detach().clone() for p in m.parameters()] for m in watched]
    config = JointTrainConfig(epochs=1, lr=1e-3, max_graphs_per_epoch=2)
    fen, ffgnn = train_joint(fen, ffgnn, train, SETTINGS, config, height=32, width=16, graph_config=graph_config,
                             graph_classifier=classifier, checkpoint=tmp_path / "joint.pt",
                             log_path=tmp_path / "log.jsonl", progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before_fen, fen.parameters()))
    for module, old in zip(watched, before):
        assert any(not torch.equal(a, b) for a, b in zip(old, module.parameters()))
    logged = set(json.loads((tmp_path / "log.jsonl").read_text())) - {"stage", "epoch", "lr"}
    assert logged == {"softmax", "triplet", *(f"graph_{name}" for name in graph_config.losses)}
    assert (tmp_path / "joint.pt").is_file()


def test_paper_stage_3_needs_the_stage_2_classifier(tiny_market):
    train = load_dataset("market1501", tiny_market).train
    with pytest.raises(ValueError, match="pass stage 2's classifier"):
        train_joint(FEN("resnet18", num_classes=6), FFGNN(512), train, SETTINGS, height=32, width=16,
                    graph_config=recipe("paper")[1], progress=False)


def test_fen_without_matching_classifier_is_refused(tiny_market):
    train = load_dataset("market1501", tiny_market).train
    with pytest.raises(ValueError, match="classifier has 3 classes but the training set has 6 identities"):
        train_joint(FEN("resnet18", num_classes=3), FFGNN(512), train, SETTINGS, height=32, width=16,
                    progress=False)
