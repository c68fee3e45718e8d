import json

import torch

from reidgraph.data import synthetic_features
from reidgraph.engine import GNNTrainConfig, train_ffgnn
from reidgraph.graph import GraphSettings


def test_training_lowers_the_loss_and_is_seeded(tmp_path):
    train = synthetic_features(30, 6, 3, 16, seed=0)
    settings = GraphSettings(K=20, k=5, tau=5)
    config = GNNTrainConfig(epochs=4, graphs_per_batch=2, lr=1e-3, lr_step=10)
    model = train_ffgnn(train, settings, config, log_path=tmp_path / "log.jsonl", progress=False)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    first, last = records[0], records[-1]
    assert last["softmax"] + last["triplet"] < first["softmax"] + first["triplet"]
    again = train_ffgnn(train, settings, config, progress=False)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert not model.training


def test_random_graph_ablation_trains_on_other_graphs():
    train = synthetic_features(30, 6, 3, 16, seed=0)
    settings = GraphSettings(K=20, k=5, tau=5)
    knn_model = train_ffgnn(train, settings, GNNTrainConfig(epochs=1), progress=False)
    rdm_model = train_ffgnn(train, settings, GNNTrainConfig(epochs=1, graphs="random"), progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(knn_model.state_dict().values(), rdm_model.state_dict().values()))
