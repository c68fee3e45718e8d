"""The one resolver: what a plan holds, and every entry point (Python, CLI, benchmarks, sharded) goes through it."""
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from reidgraph.data import synthetic_features
from reidgraph.debias import Debias
from reidgraph.engine import recipe, train_ffgnn
from reidgraph.model_file import Selection, store_pipeline
from reidgraph.rerank import ecn, plan, rerank, resolve
from reidgraph.rerank.registry import LABEL_FREE

SMALL = {"K": 12, "k": 4, "tau": 4}


@pytest.fixture(scope="module")
def data():
    return synthetic_features(8, 6, 3, 16, seed=1, first_pid=100).query_gallery()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    settings, config = recipe()
    path = tmp_path_factory.mktemp("model") / "m.pt"
    train_ffgnn(synthetic_features(10, 6, 3, 16, seed=0), replace(settings, **SMALL), replace(config, epochs=1),
                debias=Debias(min_images=1), checkpoint=path, progress=False)
    return path


def cams(data):
    query, gallery = data
    return {"query_camids": query.camids, "gallery_camids": gallery.camids}


def test_a_composition_resolves_into_its_stages_parts_and_parameters(data):
    got = resolve("debias+gcr+fusion+ecn", {"gcr.k1": "5", "fusion.K": 12, "fusion.k": 4, "fusion.tau": 4, "ecn.k": "6"},
                  **cams(data))
    assert (got.fuser, got.peer, got.propagate, got.debias) == ("fusion", "ecn", True, Debias())
    assert got.own["gcr"] == {"k1": 5} and got.own["ecn"] == {"k": 6}  # text read as the defaults' types
    assert got.own["fusion"] == {"K": 12, "k": 4, "tau": 4} and got.settings.K == 12 and not got.sharded
    assert got.chosen is None and resolve("fusion", SMALL, **cams(data)).sharded
    assert resolve("k-reciprocal").sharded and not resolve("ecn").sharded


def test_no_name_takes_the_stored_pipeline_or_the_label_free_rule(data, model, tmp_path):
    assert resolve(**cams(data)).method == LABEL_FREE[True] and resolve().method == LABEL_FREE[False]
    assert "label-free rule, with camera ids" in resolve(**cams(data)).chosen
    got = resolve(None, None, model, **cams(data))
    assert got.method == "ffgnn" and got.debias == Debias(min_images=1) and "stores no pipeline" in got.chosen
    stored = tmp_path / "stored.pt"
    stored.write_bytes(Path(model).read_bytes())
    store_pipeline(stored, Selection("gcrv", True, [], {}))
    got = resolve(None, None, stored, **cams(data))
    assert got.method == "gcrv" and got.model is None  # a training-free winner runs without the model
    with pytest.raises(ValueError, match=r"name the method \(--method\) too"):
        resolve(None, {"k1": 10})


@pytest.mark.parametrize("method, params, message", [
    ("nope", {}, "unknown method 'nope'"),
    ("ecn", {"k1": 3}, "has no parameter 'k1'"),
    ("ecn", {"k": "three"}, "parameter k=three: expected int"),
    ("ca-jaccard", {}, "needs the camera id of every query and gallery image"),
])
def test_bad_plans_are_one_line(method, params, message):
    with pytest.raises(ValueError, match=message) as err:
        resolve(method, params)
    assert "\n" not in str(err.value)


def spy(monkeypatch, module):
    """Record every call of ``module.resolve``."""
    calls = []
    real = plan.resolve

    def recorded(*args, **kwargs):
        calls.append(args[0] if args else kwargs.get("method"))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "resolve", recorded)
    return calls


def test_the_python_api_resolves(data, monkeypatch):
    query, gallery = data
    calls = spy(monkeypatch, plan)
    got = rerank("ecn", query.feats, gallery.feats)
    assert calls == ["ecn"]
    assert torch.equal(got.dense(), ecn(query.feats, gallery.feats).dense())


def test_the_command_line_resolves(data, tmp_path, monkeypatch, capsys):
    import reidgraph.cli as cli

    query, gallery = data
    query.save(tmp_path / "q.npz")
    gallery.save(tmp_path / "g.npz")
    calls = spy(monkeypatch, cli)
    assert cli.main(["rerank", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"), "--method",
                     "aqe", "--param", "n=3", "--out", str(tmp_path / "r.npz"), "--quiet"]) == 0
    synthetic_features(8, 6, 3, 16, seed=1).save(tmp_path / "test.npz")
    assert cli.main(["evaluate", "--features", str(tmp_path / "test.npz"), "--method", "ecn", "--json",
                     "--quiet"]) == 0
    assert calls == ["aqe", "ecn"]
    capsys.readouterr()


def test_the_benchmarks_resolve(data, tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        import run as benchmark
    finally:
        sys.path.pop(0)
    synthetic_features(8, 6, 3, 16, seed=1).save(tmp_path / "test.npz")
    calls = spy(monkeypatch, plan)
    row = benchmark.run_method("GCRV", str(tmp_path / "test.npz"), {}, {})
    assert calls == ["gcrv"] and row["registry_method"] == "gcrv"


def test_evaluate_routes_graph_options_to_the_pipeline_a_model_stores(model, tmp_path, capsys):
    """With --model and no --method, graph options go to the stored pipeline's fuser, as with --method."""
    from reidgraph.cli import main

    stored = tmp_path / "fusion.pt"
    stored.write_bytes(Path(model).read_bytes())
    store_pipeline(stored, Selection("fusion", True, [], {}))
    synthetic_features(8, 6, 3, 16, seed=1).save(tmp_path / "test.npz")
    graph = ["--K", "12", "--k", "4", "--tau", "4", "--json", "--quiet"]
    scores = []
    for choice in (["--model", str(stored)], ["--method", "fusion"]):
        assert main(["evaluate", "--features", str(tmp_path / "test.npz"), *choice, *graph]) == 0
        scores.append(json.loads(capsys.readouterr().out))
    assert scores[0] == scores[1] and scores[0]["method"] == "fusion"


def test_a_model_that_de_biases_neither_searches_an_index_nor_shards(data, model):
    got = resolve("ffgnn", None, model, **cams(data))
    assert got.debias is not None and not got.per_query and not got.sharded
    with pytest.raises(ValueError, match="de-biases with the whole gallery and cannot use a gallery index"):
        got.check_index()
    assert resolve("fusion", SMALL, **cams(data)).per_query
