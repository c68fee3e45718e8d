import json
import math
from dataclasses import replace

import pytest
import torch

from reidgraph.data import synthetic_features
from reidgraph.engine import ABLATIONS, recipe, train_ffgnn
from reidgraph.model_file import load_ffgnn
from reidgraph.engine.train_gnn import graph_losses
from reidgraph.features import FeatureSet
from reidgraph.graph import GraphSettings
from reidgraph.nn import FFGNN

SMALL = dict(K=20, k=5, tau=5)


def small(preset="default", ablation=None, **changes):
    settings, config = recipe(preset, ablation)
    return replace(settings, **SMALL), replace(config, **changes)


def test_default_recipe_lowers_its_loss_and_is_seeded(tmp_path):
    train = synthetic_features(30, 6, 3, 16, seed=0)
    settings, config = small(epochs=3, lr=1e-3)
    model = train_ffgnn(train, settings, config, log_path=tmp_path / "log.jsonl", progress=False)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert set(records[0]) == {"stage", "epoch", "list", "lr"}
    assert records[-1]["list"] < records[0]["list"]
    again = train_ffgnn(train, settings, config, progress=False)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert not model.training


def test_paper_preset_is_the_papers_recipe():
    """Paper §4.2: Adam at 3e-4, ÷10 every 5 epochs (reached: 10 epochs), K=150, k=20, tau=20, lambda=0.7,
    alpha=0.3; paper §3.3 "Training Stage": one graph of K+1 nodes per mini-batch, N/5 anchors; eqs. (13)-(15)."""
    settings, config = recipe("paper")
    assert settings == GraphSettings(K=150, k=20, lam=0.7, tau=20, edges="joint", mask=True, same_camera_weight=1.0)
    assert (config.lr, config.lr_step, config.graphs_per_batch, config.anchor_fraction) == (3e-4, 5, 1, 0.2)
    assert config.epochs > config.lr_step  # the ÷10 step is actually reached
    assert (config.num_layers, config.alpha, config.output, config.init) == (3, 0.3, "batchnorm", "random")
    assert config.losses == ("softmax", "triplet", "verification")
    assert (config.label_smoothing, config.verification, config.graphs) == (0.0, "sum", "knn")


def test_paper_losses_against_hand_computation():
    torch.manual_seed(0)
    z = torch.randn(1, 4, 3, dtype=torch.float64)
    y = torch.tensor([[0, 0, 1, 2]])
    classifier = torch.nn.Linear(3, 3).double()
    parts = graph_losses(z, y, torch.zeros_like(y), classifier, recipe("paper")[1])
    f, labels = z[0], y[0].tolist()
    logits = classifier(f).detach()
    nll = sum(-math.log(math.exp(logits[i, labels[i]]) / sum(math.exp(v) for v in logits[i])) for i in range(4)) / 4
    cos = lambda i, j: (f[i] @ f[j] / (f[i].norm() * f[j].norm())).item()  # noqa: E731
    summed = sum((float(labels[i] == labels[j]) - cos(i, j)) ** 2 for i in range(4) for j in range(4))
    dist = lambda i, j: (f[i] - f[j]).norm().item()  # noqa: E731
    triplet = max(0.0, 0.3 + dist(0, 1) - min(dist(0, 2), dist(0, 3)))
    triplet = (triplet + max(0.0, 0.3 + dist(1, 0) - min(dist(1, 2), dist(1, 3)))) / 2  # ids 1, 2: no positive
    assert parts["softmax"].item() == pytest.approx(nll, rel=1e-9)  # no label smoothing
    assert parts["verification"].item() == pytest.approx(summed, rel=1e-9)  # summed over pairs (eq. 15)
    assert parts["triplet"].item() == pytest.approx(triplet, rel=1e-9)


def test_paper_schedule_reaches_the_step(tmp_path):
    train = synthetic_features(20, 4, 2, 8, seed=0)
    settings, config = small("paper", epochs=6)
    train_ffgnn(train, settings, config, log_path=tmp_path / "log.jsonl", progress=False)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    # The lr logged after epoch e is the one epoch e + 1 uses: epochs 1-5 at 3e-4, epoch 6 at 3e-5.
    assert lrs[:4] == pytest.approx([3e-4] * 4) and lrs[4:] == pytest.approx([3e-5] * 2)


@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_each_ablation_changes_what_it_names_and_trains(ablation):
    base_settings, base_config = recipe("paper")
    settings, config = recipe("paper", ablation)
    changed = {k for k, v in base_settings.as_dict().items() if settings.as_dict()[k] != v}
    changed |= {k for k in ("graphs", "losses") if getattr(config, k) != getattr(base_config, k)}
    assert changed == {"ori_w_mask": {"edges"}, "jnt_wo_mask": {"mask"}, "rdm": {"graphs"}, "sft": {"losses"},
                       "sft+tri": {"losses"}}[ablation]
    assert config.ablation == ablation
    train = synthetic_features(20, 4, 2, 8, seed=0)
    model = train_ffgnn(train, replace(settings, **SMALL), replace(config, epochs=1), progress=False)
    assert isinstance(model, FFGNN)


def test_random_graph_ablation_trains_on_other_graphs():
    train = synthetic_features(30, 6, 3, 16, seed=0)
    knn_model = train_ffgnn(train, *small("paper", epochs=1), progress=False)
    rdm_model = train_ffgnn(train, *small("paper", "rdm", epochs=1), progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(knn_model.state_dict().values(), rdm_model.state_dict().values()))


def test_model_file_carries_the_recipe(tmp_path):
    train = synthetic_features(20, 4, 2, 8, seed=0)
    settings, config = small(epochs=1)
    train_ffgnn(train, settings, config, checkpoint=tmp_path / "m.pt", progress=False)
    model, loaded = load_ffgnn(tmp_path / "m.pt")
    assert loaded == settings and loaded.camera_aware
    assert (model.output, model.init) == ("l2", "identity")


@pytest.mark.parametrize("args,match", [(("best",), "preset 'best' is unknown"),
                                        (("paper", "dropout"), "ablation 'dropout' is unknown"),
                                        (("default", "sft"), "use it with preset 'paper'")])
def test_bad_recipe(args, match):
    with pytest.raises(ValueError, match=match):
        recipe(*args)


def test_train_sets_the_recipe_cannot_use():
    one_id = FeatureSet(torch.randn(30, 8), torch.zeros(30, dtype=torch.long), torch.arange(30) % 2)
    with pytest.raises(ValueError, match="single identity"):
        train_ffgnn(one_id, *small(epochs=1), progress=False)
    one_cam = FeatureSet(torch.randn(30, 8), torch.arange(30) % 5, torch.zeros(30, dtype=torch.long))
    with pytest.raises(ValueError, match="single camera id.*--preset paper"):
        train_ffgnn(one_cam, *small(epochs=1), progress=False)
    train_ffgnn(one_cam, *small("paper", epochs=1), progress=False)  # the paper's recipe needs no cameras
    with pytest.raises(ValueError, match="losses="):
        train_ffgnn(one_cam, *small("paper", losses=("arcface",)), progress=False)


def test_incomplete_model_files_are_one_line(tmp_path):
    from reidgraph.checkpoint import save_checkpoint

    model = FFGNN(8)
    cases = {"noconfig": {"kind": "ffgnn", "modules": {"model": model.state_dict()}},
             "noweights": {"kind": "ffgnn", "config": {**model.config(), "graph": {}}, "modules": {}},
             "wrongweights": {"kind": "ffgnn", "config": {**model.config(), "graph": {}},
                              "modules": {"model": FFGNN(4).state_dict()}},
             "badgraph": {"kind": "ffgnn", "config": {**model.config(), "graph": {"K": "x"}},
                          "modules": {"model": model.state_dict()}}}
    for name, state in cases.items():
        save_checkpoint(state, tmp_path / f"{name}.pt")
        with pytest.raises(ValueError, match="is not a complete FFGNN model from train-gnn") as err:
            load_ffgnn(tmp_path / f"{name}.pt")
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("field, value", [("lr", float("inf")), ("lr", float("nan")), ("lr", -1.0), ("lr", 0.0),
                                          ("weight_decay", -0.1), ("seed", 2**70), ("margin", float("nan"))])
def test_numbers_that_cannot_train_are_refused(field, value):
    from reidgraph.engine import GNNTrainConfig

    with pytest.raises(ValueError, match=field) as err:
        replace(GNNTrainConfig(), **{field: value}).check()
    assert "\n" not in str(err.value)


def test_a_diverged_model_is_not_saved(tmp_path, monkeypatch):
    from reidgraph.engine import GNNTrainConfig
    from reidgraph.engine import loop

    train = synthetic_features(12, 4, 2, 8, seed=0)
    real = loop.optimise

    def poisoned(optimizer, parts):
        loss = real(optimizer, parts)
        with torch.no_grad():
            optimizer.param_groups[0]["params"][0].fill_(float("nan"))
        return loss

    monkeypatch.setattr(loop, "optimise", poisoned)
    with pytest.raises(ValueError, match="no longer finite .* lower --lr"):
        train_ffgnn(train, GraphSettings(K=8, k=3, tau=3), GNNTrainConfig(epochs=1, graphs_per_batch=4),
                    checkpoint=tmp_path / "m.pt", progress=False)
    assert not (tmp_path / "m.pt").exists()
