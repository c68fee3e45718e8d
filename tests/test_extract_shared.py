"""`reidgraph extract` with the shared pretrained models reproduces the shared features (slow: real images)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shared_data import shared_path, shared_root

from reidgraph.cli import main
from reidgraph.features import FeatureSet

pytestmark = pytest.mark.slow

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "extract_agreement.py"


def cosines(extracted: FeatureSet, feature_set: str) -> np.ndarray:
    """Per-row cosine to ``SHARED/features/<feature_set>``, matched by ``<split>/<file>`` (the shared files write
    ``labeled/<split>/<file>``, extract the absolute path)."""
    rows = {}
    for split in ("train", "val"):
        ref = np.load(shared_path("features", feature_set, f"cuhk03_labeled_{split}.npz", what="real features"))
        rows |= {"/".join(Path(p).parts[-2:]): f for p, f in zip(ref["paths"], ref["feats"])}
    theirs = np.stack([rows["/".join(Path(p).parts[-2:])] for p in extracted.paths])
    ours = extracted.feats.numpy()
    return (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)


def test_the_openvino_ir_reproduces_the_shared_features(tmp_path, capsys):
    pytest.importorskip("openvino")
    model = shared_path("models", "person-reidentification-retail-0277.xml", what="shared models")
    root = shared_path("datasets", "cuhk03-labeled", what="real images")
    assert main(["extract", "--dataset", "folder", "--root", str(root), "--model", str(model),
                 "--out", str(tmp_path / "omz.npz"), "--quiet"]) == 0
    assert "(openvino; input 256x128 BGR 0-255, mean 0,0,0, std 1,1,1)" in capsys.readouterr().out  # from the IR
    extracted = FeatureSet.load(tmp_path / "omz.npz")
    assert len(extracted) == 8177 and extracted.feats.shape[1] == 256
    assert cosines(extracted, "omz_0277").min() >= 0.999


def test_osnet_through_the_torchreid_recipe_reproduces_the_shared_features(tmp_path):
    pytest.importorskip("torchreid", reason="torchreid is not installed (pip install torchreid; see the benchmark)")
    shared_path("models", "osnet_x0_25_msmt17.pth", what="shared models")
    done = subprocess.run([sys.executable, str(BENCHMARK), "--shared", str(shared_root()), "--models",
                           "osnet_x0_25_msmt17", "--runs", "1", "--out", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "r.json").read_text())["models"]["osnet_x0_25_msmt17"]
    assert result["images"] == 8177 and result["dim"] == 512 and result["cosine_min"] >= 0.999, result
