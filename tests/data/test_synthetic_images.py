import json
import re
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from reidgraph.data import synthetic_images
from reidgraph.data.datasets import MARKET_FOLDERS
from reidgraph.data.synthetic_images import make_synthetic_market

NAME = re.compile(r"^(\d{4})_c(\d)s1_(\d{6})_(\d{2})\.jpg$")
TINY = dict(num_train_ids=4, num_test_ids=3, images_per_id=6, num_cams=3, height=32, width=16)


def _files(root):
    """{split/name: bytes} of every image under ``root``."""
    return {f"{p.parent.name}/{p.name}": p.read_bytes() for p in sorted(root.glob("*/*.jpg"))}


def _labels(root, split):
    """(pid, cam) of each image of ``split``, parsed from its name."""
    return [tuple(int(g) for g in NAME.match(p.name).group(1, 2)) for p in sorted((root / split).iterdir())]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_synthetic_market(tmp_path_factory.mktemp("tiny"), **TINY)


def test_market_layout_and_names(tiny):
    for split in MARKET_FOLDERS.values():
        for p in (tiny / split).iterdir():
            assert NAME.match(p.name), p.name
            assert Image.open(p).size == (16, 32)
    train, query, gallery = (_labels(tiny, s) for s in MARKET_FOLDERS.values())
    assert len(train) == 4 * 6 and {pid for pid, _ in train} == {1, 2, 3, 4}
    assert len(query) + len(gallery) == 3 * 6 and {pid for pid, _ in query + gallery} == {5, 6, 7}
    assert all(1 <= cam <= 3 for _, cam in train + query + gallery)
    assert json.loads((tiny / "synthetic.json").read_text())["complete"] is True


def test_one_query_per_camera_and_a_cross_camera_match(tiny):
    query, gallery = _labels(tiny, "query"), _labels(tiny, "bounding_box_test")
    assert len(query) == len(set(query)) == len(set(query + gallery))  # one query per (pid, cam) seen
    for pid, cam in query:
        assert any(g_pid == pid and g_cam != cam for g_pid, g_cam in gallery)
    cams = defaultdict(set)
    for pid, cam in _labels(tiny, "bounding_box_train") + query:
        cams[pid].add(cam)
    assert all(len(c) >= 2 for c in cams.values())


def test_deterministic_and_seed_dependent(tiny, tmp_path):
    again = make_synthetic_market(tmp_path / "again", **TINY)
    other = make_synthetic_market(tmp_path / "other", **TINY, seed=1)
    assert _files(again) == _files(tiny)
    assert set(_files(other).values()).isdisjoint(_files(tiny).values())


def test_complete_generation_is_not_rewritten(tiny):
    before = {p: p.stat().st_mtime_ns for p in tiny.rglob("*")}
    assert make_synthetic_market(tiny, **TINY) == tiny
    assert {p: p.stat().st_mtime_ns for p in tiny.rglob("*")} == before


def test_interrupted_generation_is_redone(tiny, tmp_path, monkeypatch):
    calls = []

    def crash(*args):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args)

    real = synthetic_images._render
    monkeypatch.setattr(synthetic_images, "_render", crash)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_market(tmp_path, **TINY)
    assert json.loads((tmp_path / "synthetic.json").read_text())["complete"] is False
    monkeypatch.setattr(synthetic_images, "_render", real)
    make_synthetic_market(tmp_path, **TINY)
    assert _files(tmp_path) == _files(tiny)


def test_other_parameters_replace_the_old_images(tmp_path):
    make_synthetic_market(tmp_path, **TINY)
    make_synthetic_market(tmp_path, **{**TINY, "num_train_ids": 2})
    assert len(_labels(tmp_path, "bounding_box_train")) == 2 * 6
    assert json.loads((tmp_path / "synthetic.json").read_text())["num_train_ids"] == 2


def test_a_folder_of_foreign_images_is_left_alone(tmp_path):
    (tmp_path / "query").mkdir()
    (tmp_path / "query" / "0001_c1s1_000151_00.jpg").write_bytes(b"real data")
    with pytest.raises(ValueError, match="synthetic.json"):
        make_synthetic_market(tmp_path, **TINY)
    assert (tmp_path / "query" / "0001_c1s1_000151_00.jpg").read_bytes() == b"real data"


@pytest.mark.parametrize("bad", [dict(num_train_ids=0), dict(num_test_ids=0), dict(images_per_id=3),
                                 dict(num_cams=1), dict(height=15), dict(width=7), dict(num_train_ids=1.5),
                                 dict(num_test_ids=5000, num_train_ids=5000)])
def test_bad_arguments_raise(tmp_path, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        make_synthetic_market(tmp_path, **{**TINY, **bad})
    assert not any(tmp_path.iterdir())


def test_same_identity_looks_more_alike_than_different_identities(tiny):
    paths = sorted(tiny.glob("*/*.jpg"))
    pids = np.array([int(p.name[:4]) for p in paths])
    centres = np.stack([np.asarray(Image.open(p), np.float32)[8:24, 4:12] for p in paths])
    diff = np.abs(centres[:, None] - centres[None]).mean(axis=(2, 3, 4))
    same = (pids[:, None] == pids[None]) & ~np.eye(len(pids), dtype=bool)
    assert diff[same].mean() < 0.9 * diff[pids[:, None] != pids[None]].mean()
