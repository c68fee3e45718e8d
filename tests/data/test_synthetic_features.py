import torch

from reidgraph.data import synthetic_features


def test_synthetic_is_deterministic_and_shares_cameras():
    a = synthetic_features(20, 5, 3, 16, seed=4)
    b = synthetic_features(20, 5, 3, 16, seed=4)
    c = synthetic_features(20, 5, 3, 16, seed=4, first_pid=100)
    assert torch.equal(a.feats, b.feats) and not torch.equal(a.feats, c.feats)
    assert a.pids.min().item() == 1 and c.pids.min().item() == 100
    for pid in a.pids.unique():
        assert a.camids[a.pids == pid].unique().numel() >= 2  # a cross-camera match exists
