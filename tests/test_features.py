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


def one_line(info) -> str:
    assert "\n" not in str(info.value)
    return str(info.value)


def test_label_free_sets():
    feats = torch.randn(4, 3)
    fs = FeatureSet(feats, split=["query", "gallery", "query", "gallery"])
    sub = fs.subset([0, 2])
    assert sub.pids is None and sub.camids is None and sub.split == ["query", "query"]
    q, g = fs.query_gallery()
    assert len(q) == len(g) == 2 and q.pids is None and g.camids is None
    cams = FeatureSet(feats, camids=[0, 1, 0, 1])  # cameras without identities
    assert cams.subset(torch.tensor([True, False, True, False])).camids.tolist() == [0, 0]
    with pytest.raises(ValueError, match="no split and no pids.*pass query and gallery as separate files") as info:
        cams.query_gallery()
    one_line(info)
    with pytest.raises(ValueError, match="no split and no pids or camids"):
        FeatureSet(feats).query_gallery()
    with pytest.raises(ValueError, match="has no split; cannot select 'query'"):
        FeatureSet(feats).part("query")
    with pytest.raises(ValueError, match="pids must hold integers"):
        FeatureSet(feats, pids=list("abcd"))


def test_require_labels():
    feats = torch.randn(4, 3)
    labelled = FeatureSet(feats, [1, 1, 2, 2], [0, 1, 0, 1])
    assert labelled.require_labels("evaluation") is labelled
    with pytest.raises(ValueError) as info:
        FeatureSet(feats, camids=[0, 1, 0, 1]).require_labels("evaluation", "feats.npy")
    assert one_line(info) == "feats.npy has no pids (identity labels); evaluation needs them: add a pids field"
    with pytest.raises(ValueError, match=r"^this feature set has no camids \(camera ids\); training needs them"):
        FeatureSet(feats, [1, 1, 2, 2]).require_labels("training")
    with pytest.raises(ValueError, match="no pids.*holding out identities"):
        FeatureSet(feats, camids=[0, 1, 0, 1]).hold_out_ids(0.5)
    rest, held = FeatureSet(feats, [1, 1, 2, 2]).hold_out_ids(0.5)
    assert rest.camids is None and held.camids is None and len(rest) == len(held) == 2


def test_label_free_save_and_load(tmp_path):
    FeatureSet(torch.randn(3, 2), camids=[0, 1, 1], paths=list("abc")).save(tmp_path / "f.npz")
    back = FeatureSet.load(tmp_path / "f.npz", labels=False)
    assert back.pids is None and back.camids.tolist() == [0, 1, 1] and back.paths == list("abc")
    with pytest.raises(ValueError, match="f.npz: lacks pids;") as info:
        FeatureSet.load(tmp_path / "f.npz")
    one_line(info)


def test_empty_split_is_named(tmp_path):
    fs = FeatureSet(torch.randn(4, 16), [1, 1, 2, 2], [0, 1, 0, 1], split=["train", "train", "gallery", "gallery"])
    fs.save(tmp_path / "f.npz")
    back = FeatureSet.load(tmp_path / "f.npz")
    with pytest.raises(ValueError, match=r"no rows of split 'query' \(their splits: 'gallery', 'train'\)") as info:
        back.query_gallery()
    one_line(info)
    assert len(back.part("train")) == 2


def test_save_writes_the_path_given_whole(tmp_path):
    features = FeatureSet(torch.randn(5, 3), torch.arange(5), torch.zeros(5, dtype=torch.long))
    features.save(tmp_path / "feats.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feats.bin"]
    assert torch.allclose(FeatureSet.load(tmp_path / "feats.bin", format="npz").feats, features.feats)
