import numpy as np
import pytest
import torch

from reidgraph.features import FeatureSet


def test_round_trip(tmp_path):
    fs = FeatureSet(torch.randn(4, 3), [1, 1, 2, 2], [0, 1, 0, 1], paths=list("abcd"),
                    split=["query", "gallery", "query", "gallery"])
    fs.save(tmp_path / "f.npz")
    back = FeatureSet.load(tmp_path / "f.npz")
    assert torch.equal(back.feats, fs.feats) and back.paths == fs.paths and back.split == fs.split
    q, g = back.query_gallery()
    assert q.paths == ["a", "c"] and g.paths == ["b", "d"]


def test_cuhk03_np_rule_without_split():
    fs = FeatureSet(torch.randn(6, 2), [5, 5, 5, 7, 7, 5], [0, 0, 1, 1, 1, 1])
    q, g = fs.query_gallery()
    assert q.pids.tolist() == [5, 5, 7] and q.camids.tolist() == [0, 1, 1]
    assert len(g) == 3


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FeatureSet.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "nopids.npz", feats=np.zeros((2, 3), np.float32), camids=np.zeros(2))
    with pytest.raises(ValueError, match="lacks pids"):
        FeatureSet.load(tmp_path / "nopids.npz")
    np.savez(tmp_path / "short.npz", feats=np.zeros((2, 3), np.float32), pids=np.zeros(3, int), camids=np.zeros(2, int))
    with pytest.raises(ValueError, match=r"short.npz: pids has shape \(3,\) but feats has 2"):
        FeatureSet.load(tmp_path / "short.npz")


def test_hold_out_ids_splits_by_identity():
    import pytest
    import torch

    from reidgraph.features import FeatureSet
    fs = FeatureSet(torch.randn(40, 4), torch.arange(40) // 4, torch.arange(40) % 2, split=["train"] * 40)
    rest, held = fs.hold_out_ids(0.2, seed=1)
    assert len(rest) + len(held) == 40 and held.pids.unique().numel() == 2
    assert not set(rest.pids.tolist()) & set(held.pids.tolist())
    assert rest.split is None and held.split is None
    q, g = held.query_gallery()  # the CUHK03-NP rule inside the held-out identities
    assert len(q) == 4 and len(g) == 4
    assert torch.equal(fs.hold_out_ids(0.2, seed=1)[1].pids, held.pids)
    with pytest.raises(ValueError, match="fraction=1"):
        fs.hold_out_ids(1)
