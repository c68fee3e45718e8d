"""Choosing the pipeline on held-out train identities (train-gnn), and the label-free rule (rerank, evaluate)."""
import json

import pytest
import torch

from reidgraph.cli import main
from reidgraph.data import synthetic_features
from reidgraph.engine.selection import MIN_IDS, candidates
from reidgraph.model_file import load_pipeline
from reidgraph.evaluation import evaluate_order
from reidgraph.features import FeatureSet
from reidgraph.rerank import rerank
from reidgraph.rerank.registry import LABEL_FREE

SMALL = ["--K", "20", "--k", "5", "--tau", "5", "--epochs", "1", "--quiet"]


def biased(path, first_pid=1, num_ids=60):
    """Features whose camera offsets dwarf the identities: only de-biased pipelines can match across cameras."""
    synthetic_features(num_ids, 8, 3, 16, camera_bias=4.0, seed=0, first_pid=first_pid).save(path)
    return path


def error_line(capsys, command):
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"reidgraph {command}: error: ") and "\n" not in err
    return err


def test_candidates_cover_every_part_once():
    raw, debiased = candidates(False), candidates(True)
    assert len(set(raw)) == len(raw) and len(set(debiased)) == len(debiased) and not set(raw) & set(debiased)
    assert {"cosine", "k-reciprocal", "ecn", "ca-jaccard", "gcr", "fusion", "fusion-paper", "ffgnn",
            "ffgnn+ecn"} <= set(raw)
    assert {"debias", "gcrv", "debias+gcr+ca-jaccard", "debias+ffgnn", "debias+ffgnn+k-reciprocal",
            "debias+gcr+ffgnn", "debias+gcr+ffgnn+ecn"} <= set(debiased)
    assert LABEL_FREE[True] in debiased  # the label-free rule is among the pipelines scored


def test_selection_picks_the_pipeline_built_to_win_and_the_model_file_keeps_it(tmp_path, capsys):
    train, test = biased(tmp_path / "train.npz"), biased(tmp_path / "test.npz", first_pid=500, num_ids=20)
    model = tmp_path / "m.pt"
    assert main(["train-gnn", "--features", str(train), "--out", str(model), *SMALL]) == 0
    out = capsys.readouterr().out
    stored = load_pipeline(model)
    assert stored.method in out and f"* {stored.method} " in out
    # Camera offsets dwarf identities: every raw pipeline loses to the best de-biased one.
    scored = [r for r in stored.rows if r["mAP"] is not None]
    # Training-free pipelines raw and de-biased; one FFGNN, trained on de-biased features (there are cameras).
    assert [r["method"] for r in stored.rows] == candidates(False, learned=False) + candidates(True)
    winner = next(r for r in scored if r["method"] == stored.method)
    assert winner["debias"] and winner["mAP"] == max(r["mAP"] for r in scored)
    assert max(r["mAP"] for r in scored if not r["debias"]) < winner["mAP"]
    assert stored.held_out == {"ids": 12, "query": 36, "gallery": 60}
    assert not (tmp_path / "m.pt.selection").exists()
    # The table is the held-out part's: one row recomputed by hand.
    rest, held = FeatureSet.load(train).hold_out_ids(0.2, seed=0)
    q, g = held.query_gallery()
    row = next(r for r in stored.rows if r["method"] == "debias+k-reciprocal")
    m = evaluate_order(rerank("debias+k-reciprocal", q.feats, g.feats, query_camids=q.camids,
                              gallery_camids=g.camids).order_chunks(), q.pids, g.pids, q.camids, g.camids)
    assert row["mAP"] == pytest.approx(m.mAP)
    # evaluate --model without --method runs the stored pipeline: the same figures as naming it.
    runs = []
    for extra in ([], ["--method", stored.method]):
        assert main(["evaluate", "--features", str(test), "--model", str(model), "--json", "--quiet", *extra]) == 0
        runs.append(json.loads(capsys.readouterr().out))
    assert runs[0] == runs[1] and runs[0]["method"] == stored.method
    assert main(["describe", str(model)]) == 0
    described = capsys.readouterr().out
    assert f"stored pipeline: {stored.method}" in described and "de-biased" in described


def test_selection_refuses_too_few_identities_and_a_small_held_out_gallery(tmp_path, capsys):
    synthetic_features(MIN_IDS - 1, 6, 3, 16, seed=0).save(tmp_path / "few.npz")
    assert main(["train-gnn", "--features", str(tmp_path / "few.npz"), "--out", str(tmp_path / "m.pt"), *SMALL]) == 2
    err = error_line(capsys, "train-gnn")
    assert "few.npz holds 9 identities" in err and "--no-select" in err
    synthetic_features(MIN_IDS, 6, 3, 16, seed=0).save(tmp_path / "ten.npz")
    assert main(["train-gnn", "--features", str(tmp_path / "ten.npz"), "--out", str(tmp_path / "m.pt"), *SMALL]) == 2
    assert "held-out gallery holds" in error_line(capsys, "train-gnn")


def test_stored_pipeline_needs_what_it_needs(tmp_path, capsys):
    """A stored camera-aware pipeline on a test file without camera ids, and --method that the model cannot run,
    end in one line."""
    train = biased(tmp_path / "train.npz")
    model = tmp_path / "m.pt"
    assert main(["train-gnn", "--features", str(train), "--out", str(model), *SMALL]) == 0
    test = synthetic_features(20, 6, 3, 16, seed=0, first_pid=500)
    FeatureSet(test.feats[:30]).save(tmp_path / "q.npz")
    FeatureSet(test.feats[30:]).save(tmp_path / "g.npz")
    capsys.readouterr()
    assert main(["rerank", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"),
                 "--model", str(model), "--out", str(tmp_path / "r.npz")]) == 2
    assert "needs the camera id" in error_line(capsys, "rerank")
    assert main(["evaluate", "--features", str(train), "--model", str(model), "--method", "ecn"]) == 2
    assert "takes no model" in error_line(capsys, "evaluate")


@pytest.mark.parametrize("cameras", [True, False])
def test_label_free_rule(tmp_path, capsys, cameras):
    """rerank without --method and --model runs LABEL_FREE[cameras]."""
    data = synthetic_features(20, 6, 3, 16, seed=0)
    camids = (data.camids[:40], data.camids[40:]) if cameras else (None, None)
    FeatureSet(data.feats[:40], camids=camids[0]).save(tmp_path / "q.npz")
    FeatureSet(data.feats[40:], camids=camids[1]).save(tmp_path / "g.npz")
    assert main(["rerank", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"),
                 "--top", "10", "--out", str(tmp_path / "r.npz"), "--quiet"]) == 0
    method = LABEL_FREE[cameras]
    assert capsys.readouterr().out.startswith(f"{method} (the label-free rule, {'with' if cameras else 'without'}")
    expected = rerank(method, data.feats[:40], data.feats[40:], query_camids=camids[0], gallery_camids=camids[1])
    import numpy as np
    assert np.array_equal(np.load(tmp_path / "r.npz")["index"], expected.top(10)[0].numpy())
    assert main(["rerank", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"),
                 "--param", "k1=10", "--out", str(tmp_path / "r.npz")]) == 2
    assert "name the method (--method) too" in error_line(capsys, "rerank")


def test_models_to_train_follow_the_cameras(tmp_path):
    """Both FFGNNs on request (the de-biased one alone by default); a train file on one camera cannot be
    scored under the protocol, and says so in one line."""
    from dataclasses import replace

    from reidgraph.engine import recipe
    from reidgraph.engine.selection import select_pipeline

    train = FeatureSet.load(biased(tmp_path / "train.npz"))
    settings, config = recipe()
    settings, config = replace(settings, K=20, k=5, tau=5), replace(config, epochs=1)
    both = select_pipeline(train, settings, config, workdir=tmp_path / "both", models=(False, True), progress=False)
    assert [r["method"] for r in both.rows] == candidates(False) + candidates(True)
    one_camera = FeatureSet(train.feats, train.pids, torch.zeros_like(train.camids))
    with pytest.raises(ValueError, match="no held-out query has a match on another camera"):
        select_pipeline(one_camera, settings, config, workdir=tmp_path / "x", progress=False)
