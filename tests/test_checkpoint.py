import json
from dataclasses import replace

import pytest
import torch

from reidgraph.data import synthetic_features
from reidgraph.checkpoint import load_checkpoint, save_checkpoint, stage_config
from reidgraph.engine import GNNTrainConfig, train_ffgnn
from reidgraph.engine import loop
from reidgraph.features import FeatureSet
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
    # The log gets the checkpoint's epoch 1 too (its run had no log), so log and checkpoint agree.
    assert [json.loads(line)["epoch"] for line in (tmp_path / "b.jsonl").read_text().splitlines()] == [1, 2, 3]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_resuming_with_other_settings_is_refused(tmp_path):
    train = synthetic_features(25, 6, 3, 16, seed=0)
    train_ffgnn(train, SETTINGS, GNNTrainConfig(epochs=1), checkpoint=tmp_path / "c.pt", progress=False)
    with pytest.raises(ValueError, match=r"other settings \(lr\)"):
        train_ffgnn(train, SETTINGS, GNNTrainConfig(epochs=2, lr=1e-2), checkpoint=tmp_path / "c.pt", progress=False)


def test_graph_settings_changed_are_named(tmp_path):
    train = synthetic_features(25, 6, 3, 16, seed=0)
    train_ffgnn(train, SETTINGS, GNNTrainConfig(epochs=1), checkpoint=tmp_path / "c.pt", progress=False)
    with pytest.raises(ValueError, match=r"other settings \(graph.k\)"):
        train_ffgnn(train, replace(SETTINGS, k=5), GNNTrainConfig(epochs=2), checkpoint=tmp_path / "c.pt",
                    progress=False)


def test_settings_are_saved_nested_in_every_stage(tmp_path):
    train = synthetic_features(25, 6, 3, 16, seed=0)
    config = GNNTrainConfig(epochs=1)
    train_ffgnn(train, SETTINGS, config, checkpoint=tmp_path / "c.pt", progress=False)
    saved = torch.load(tmp_path / "c.pt", weights_only=True)["config"]
    assert saved == stage_config(config, graph=SETTINGS, channels=16, debias=None)
    assert saved["graph"] == SETTINGS.as_dict() and saved["lr"] == config.lr and saved["epochs"] == 1


def log_epochs(path):
    return [(r["stage"], r["epoch"]) for r in map(json.loads, path.read_text().splitlines())]


def test_resuming_on_other_features_is_refused(tmp_path):
    train = synthetic_features(25, 6, 3, 16, seed=0)
    train_ffgnn(train, SETTINGS, GNNTrainConfig(epochs=1), checkpoint=tmp_path / "c.pt", progress=False)
    fewer_ids = synthetic_features(20, 6, 3, 16, seed=0)  # another classifier size for the paper's softmax
    same_shape = FeatureSet(train.feats + 0.01, train.pids, train.camids)
    for other in (fewer_ids, same_shape):
        with pytest.raises(ValueError, match=r"c.pt was trained on other features \(.*\); pass --restart") as info:
            train_ffgnn(other, SETTINGS, GNNTrainConfig(epochs=2), checkpoint=tmp_path / "c.pt", progress=False)
        assert "\n" not in str(info.value)
    paper = GNNTrainConfig(epochs=1, losses=("softmax",), label_smoothing=0.0)
    train_ffgnn(train, SETTINGS, paper, checkpoint=tmp_path / "p.pt", progress=False)
    with pytest.raises(ValueError, match="other features"):  # not a state_dict size mismatch
        train_ffgnn(fewer_ids, SETTINGS, replace(paper, epochs=2), checkpoint=tmp_path / "p.pt", progress=False)
    # The same data resumes; resume=False starts afresh on other data.
    train_ffgnn(train, SETTINGS, GNNTrainConfig(epochs=2), checkpoint=tmp_path / "c.pt", progress=False)
    train_ffgnn(same_shape, SETTINGS, GNNTrainConfig(epochs=1), checkpoint=tmp_path / "c.pt", resume=False,
                progress=False)
    assert load_checkpoint(tmp_path / "c.pt", "ffgnn")["epoch"] == 1


def test_log_and_checkpoint_agree_after_a_kill(tmp_path, monkeypatch):
    train = synthetic_features(25, 6, 3, 16, seed=0)
    ckpt, log = tmp_path / "k.pt", tmp_path / "k.jsonl"
    log.write_text(json.dumps({"stage": "fen", "epoch": 1, "lr": 0.1}) + "\n")  # another stage's line stays
    append = loop.append_log

    def killed_after_epoch_2(path, record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt  # the kill: checkpoint of epoch 2 renamed, its log line not written
        append(path, record)

    monkeypatch.setattr(loop, "append_log", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_ffgnn(train, SETTINGS, GNNTrainConfig(epochs=3), checkpoint=ckpt, log_path=log, progress=False)
    assert load_checkpoint(ckpt, "ffgnn")["epoch"] == 2 and log_epochs(log) == [("fen", 1), ("ffgnn", 1)]
    monkeypatch.setattr(loop, "append_log", append)
    train_ffgnn(train, SETTINGS, GNNTrainConfig(epochs=3), checkpoint=ckpt, log_path=log, progress=False)
    assert log_epochs(log) == [("fen", 1), ("ffgnn", 1), ("ffgnn", 2), ("ffgnn", 3)]
    saved = load_checkpoint(ckpt, "ffgnn")["log"]
    assert [json.loads(line) for line in log.read_text().splitlines()][1:] == saved
    # Resuming a finished run changes nothing; a restart drops the previous run's records of this stage.
    train_ffgnn(train, SETTINGS, GNNTrainConfig(epochs=3), checkpoint=ckpt, log_path=log, progress=False)
    assert len(log_epochs(log)) == 4
    train_ffgnn(train, SETTINGS, GNNTrainConfig(epochs=1), checkpoint=ckpt, log_path=log, resume=False,
                progress=False)
    assert log_epochs(log) == [("fen", 1), ("ffgnn", 1)]


def test_a_line_cut_short_by_a_kill_is_dropped(tmp_path):
    log = tmp_path / "l.jsonl"
    log.write_text(json.dumps({"stage": "ffgnn", "epoch": 1}) + '\n{"stage": "ffg')
    loop.reconcile_log(log, "ffgnn", [{"stage": "ffgnn", "epoch": 1}, {"stage": "ffgnn", "epoch": 2}])
    assert log_epochs(log) == [("ffgnn", 1), ("ffgnn", 2)]
