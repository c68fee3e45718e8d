import json

import pytest
import torch

from reidgraph.data import load_dataset
from reidgraph.checkpoint import load_checkpoint
from reidgraph.engine.extract import extract_features
from reidgraph.engine.train_fen import FENTrainConfig, load_fen, train_fen

CONFIG = dict(arch="resnet18", height=32, width=16, P=4, images_per_id=2, num_workers=0, lr=1e-3)


def test_trains_checkpoints_and_resumes(tiny_market, tmp_path):
    train = load_dataset("market1501", tiny_market).train
    fen = train_fen(train, FENTrainConfig(epochs=1, **CONFIG), checkpoint=tmp_path / "fen.pt",
                    log_path=tmp_path / "log.jsonl", progress=False)
    assert fen.classifier.out_features == 6 and not fen.training
    train_fen(train, FENTrainConfig(epochs=2, **CONFIG), checkpoint=tmp_path / "fen.pt",
              log_path=tmp_path / "log.jsonl", progress=False)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]  # the second call resumed after epoch 1
    assert load_checkpoint(tmp_path / "fen.pt", "fen")["epoch"] == 2
    loaded, config = load_fen(tmp_path / "fen.pt")
    assert config["height"] == 32
    images = torch.randn(2, 3, 32, 16)
    assert torch.allclose(loaded(images), train_fen(train, FENTrainConfig(epochs=2, **CONFIG),
                                                    checkpoint=tmp_path / "fen.pt",
                                                    progress=False)(images), atol=1e-5)
    relabelled = [r._replace(camid=r.camid + 1) if i == 0 else r for i, r in enumerate(train)]
    with pytest.raises(ValueError, match=r"fen.pt was trained on other images \(.*\); pass --restart"):
        train_fen(relabelled, FENTrainConfig(epochs=3, **CONFIG), checkpoint=tmp_path / "fen.pt", progress=False)


def test_image_fingerprint_follows_paths_and_labels_not_the_root():
    from reidgraph.data.datasets import ImageRecord
    from reidgraph.engine.loop import records_fingerprint
    here = [ImageRecord(f"/data/a/{i}.jpg", i // 2, i % 2) for i in range(4)]
    moved = [r._replace(path=r.path.replace("/data/a", "/mnt/b")) for r in here]
    assert records_fingerprint(here) == records_fingerprint(moved)
    assert records_fingerprint(here)["sha256"] != records_fingerprint(here[:3])["sha256"]
    assert records_fingerprint(here)["sha256"] != records_fingerprint([here[0]._replace(pid=9)] + here[1:])["sha256"]


def test_extract_features_follow_the_records(tiny_market, tmp_path):
    data = load_dataset("market1501", tiny_market)
    fen = train_fen(data.train, FENTrainConfig(epochs=1, **CONFIG), progress=False)
    feats = extract_features(fen, data.query, 32, 16, split="query", batch_size=4, num_workers=0, progress=False)
    assert feats.feats.shape == (len(data.query), fen.dim)
    assert feats.paths == [r.path for r in data.query] and set(feats.split) == {"query"}
    assert feats.pids.tolist() == [r.pid for r in data.query]
    again = extract_features(fen, data.query, 32, 16, batch_size=7, num_workers=0, progress=False)
    assert torch.allclose(feats.feats, again.feats, atol=1e-5)  # eval mode: batching does not matter


def test_stage2_checkpoint_is_not_a_fen(tiny_market, tmp_path):
    from reidgraph.checkpoint import save_checkpoint
    save_checkpoint({"kind": "ffgnn"}, tmp_path / "g.pt")
    with pytest.raises(ValueError, match="holds a 'ffgnn' checkpoint, not a 'fen' one"):
        load_fen(tmp_path / "g.pt")
