"""The registry: every name gives the same ranking as calling the method itself, and bad input one line."""
from dataclasses import replace

import pytest
import torch

from reidgraph.data import synthetic_features
from reidgraph.engine import recipe, train_ffgnn
from reidgraph.graph import GraphSettings
from reidgraph.nn import TrainingFreeFusion, ffgnn_rerank, fused_features
from reidgraph.ranking import CosineRanking, Ranking
from reidgraph.rerank import (average_query_expansion, ca_jaccard, ecn, gnn_rerank, k_reciprocal, method_names,
                              needs_cameras, parameters, parts, rerank)

SMALL = {"K": 12, "k": 4, "tau": 4}


@pytest.fixture(scope="module")
def data():
    test = synthetic_features(8, 6, 3, 16, seed=1, first_pid=100)
    query, gallery = test.query_gallery()
    return query, gallery


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    settings, config = recipe()
    path = tmp_path_factory.mktemp("model") / "m.pt"
    train_ffgnn(synthetic_features(10, 6, 3, 16, seed=0), replace(settings, **SMALL), replace(config, epochs=1),
                checkpoint=path, progress=False)
    return path


def run(name, data, **kw):
    query, gallery = data
    return rerank(name, query.feats, gallery.feats, query_camids=query.camids, gallery_camids=gallery.camids, **kw)


def test_peers_by_name_equal_the_functions(data):
    query, gallery = data
    q, g, qc, gc = query.feats, gallery.feats, query.camids, gallery.camids
    expected = {"cosine": CosineRanking(q, g), "k-reciprocal": k_reciprocal(q, g, k1=5, k2=3),
                "ca-jaccard": ca_jaccard(q, g, qc, gc), "ecn": ecn(q, g, k=5, t=2, q=3),
                "aqe": average_query_expansion(q, g), "gnn-rerank": gnn_rerank(q, g, k1=5, k2=3)}
    params = {"k-reciprocal": {"k1": 5, "k2": 3}, "ecn": {"k": 5, "t": 2, "q": 3}, "gnn-rerank": {"k1": 5, "k2": 3}}
    for name, want in expected.items():
        got = run(name, data, params=params.get(name))
        assert isinstance(got, Ranking) and got.shape == (len(query), len(gallery))
        assert torch.equal(got.dense(), want.dense()), name


def test_fusers_by_name_equal_ffgnn_rerank(data, model):
    query, gallery = data
    q, g, qc, gc = query.feats, gallery.feats, query.camids, gallery.camids
    from reidgraph.model_file import load_ffgnn
    net, settings = load_ffgnn(model)
    cases = {"ffgnn": (net, settings, {}),
             "fusion": (TrainingFreeFusion(), replace(recipe()[0], **SMALL), SMALL),
             "fusion-paper": (TrainingFreeFusion(0.5, 2), GraphSettings(**SMALL, lam=0.2),
                              {**SMALL, "lam": 0.2, "alpha": 0.5, "steps": 2})}
    for name, (fuser, graphs, params) in cases.items():
        want = ffgnn_rerank(fuser, q, g, graphs, query_camids=qc, gallery_camids=gc)
        got = run(name, data, params=params, model=model if name == "ffgnn" else None)
        assert torch.equal(got.index, want.index) and torch.allclose(got.distance, want.distance), name


def test_composition_runs_the_peer_on_fused_features(data):
    query, gallery = data
    q, g, qc, gc = query.feats, gallery.feats, query.camids, gallery.camids
    graphs = replace(recipe()[0], **SMALL)
    fuser = TrainingFreeFusion()
    fq = fused_features(fuser, q, g, graphs, anchor_camids=qc, candidate_camids=gc)
    fg = fused_features(fuser, g, g, graphs, exclude=torch.arange(len(g)), anchor_camids=gc, candidate_camids=gc)
    got = run("fusion+ecn", data, params={"fusion.K": 12, "fusion.k": 4, "tau": 4, "ecn.k": 5, "t": 2, "q": 3})
    assert torch.allclose(got.dense(), ecn(fq, fg, k=5, t=2, q=3).dense(), atol=1e-6)


def test_names_parts_parameters_and_cameras():
    assert set(method_names()) >= {"cosine", "ffgnn", "fusion", "fusion-paper", "k-reciprocal", "ca-jaccard", "ecn",
                                   "aqe", "gnn-rerank"}
    assert parts("ffgnn+ecn") == ("ffgnn", "ecn") and parts("cosine") == (None, None)
    assert parameters("k-reciprocal")["k1"] == 20 and "ecn.k" in parameters("fusion+ecn")
    assert parameters("fusion")["same_camera_weight"] == 0.0 and parameters("fusion-paper")["lam"] == 0.7
    assert needs_cameras("ca-jaccard") and needs_cameras("fusion") and needs_cameras("fusion-paper+ca-jaccard")
    assert not needs_cameras("fusion-paper") and not needs_cameras("ecn")
    assert needs_cameras("fusion-paper", {"same_camera_weight": 0.5})
    assert not needs_cameras("fusion", {"same_camera_weight": 1.0})


@pytest.mark.parametrize("name, kw, match", [
    ("nope", {}, "unknown method 'nope'; choose one of cosine, ffgnn"),
    ("ecn+ffgnn", {}, r"FUSER\+PEER with FUSER in"),
    ("ecn", {"params": {"k1": 3}}, "has no parameter 'k1'; it takes: k, t, q"),
    ("fusion+k-reciprocal", {"params": {"lam": 0.3}}, "taken by several parts"),
    ("ffgnn", {}, "needs a trained model"),
    ("ecn", {"model": "m.pt"}, "takes no model"),
    ("ffgnn", {"params": {"K": 3}}, "takes its graph settings from the model"),
])
def test_bad_names_and_parameters_are_one_line(data, name, kw, match):
    with pytest.raises(ValueError, match=match) as err:
        run(name, data, **kw)
    assert "\n" not in str(err.value)


def test_camera_methods_without_camera_ids_say_so(data, model):
    query, gallery = data
    for name, kw in [("ca-jaccard", {}), ("fusion", {}), ("ffgnn", {"model": model})]:
        with pytest.raises(ValueError, match="camera id") as err:
            rerank(name, query.feats, gallery.feats, **kw)
        assert "\n" not in str(err.value)
    assert rerank("fusion-paper", query.feats, gallery.feats, params=SMALL).shape == (len(query), len(gallery))


def test_wrong_width_model_is_refused(data, model):
    query, gallery = data
    with pytest.raises(ValueError, match="expects 16-d features but these are 8-d"):
        rerank("ffgnn", query.feats[:, :8], gallery.feats[:, :8], query_camids=query.camids,
               gallery_camids=gallery.camids, model=model)


def test_propagation_stage_runs_the_rest_on_gcr_features(data, model):
    """``gcr+M`` is M on the query and gallery features GCR propagates together (after de-biasing with
    ``debias+``); the FFGNN then fuses each query's neighborhood in that space."""
    from reidgraph.debias import debias
    from reidgraph.model_file import load_ffgnn
    from reidgraph.rerank import gcr
    from reidgraph.rerank import resolve
    from reidgraph.rerank.registry import stages

    query, gallery = data
    q, g, qc, gc = query.feats, gallery.feats, query.camids, gallery.camids
    dq, dg = debias(q, g, qc, gc, min_images=1)
    spread = gcr(dq, dg, qc, gc, k1=5)
    got = run("debias+gcr+ecn", data, params={"debias.min_images": 1, "gcr.k1": 5, "k": 5, "t": 2, "q": 3})
    assert torch.allclose(got.dense(), ecn(spread.query, spread.gallery, k=5, t=2, q=3).dense(), atol=1e-6)
    net, settings = load_ffgnn(model)
    want = ffgnn_rerank(net, *(gcr(q, g, qc, gc).query, gcr(q, g, qc, gc).gallery), settings, query_camids=qc,
                        gallery_camids=gc)
    got = run("gcr+ffgnn", data, model=model)
    assert torch.equal(got.index, want.index) and torch.allclose(got.distance, want.distance)
    assert stages("debias+gcr+ffgnn+ecn") == ("debias", "gcr") and stages("gcr") == () and stages("debias+gcr") == (
        "debias",)
    assert parts("gcr+ffgnn+ecn") == ("ffgnn", "ecn") and parts("debias+gcr") == (None, "gcr")
    assert "gcr.k1" in parameters("gcr+ecn") and needs_cameras("gcr+ecn") and not resolve("gcr+ffgnn", model=model, query_camids=qc, gallery_camids=gc).sharded
    for name in ("gcr+", "gcr+gcr", "gcr+ffgnn+gcr", "gcr+gcrv", "gcr+cosine"):
        with pytest.raises(ValueError, match="propagates with GCR twice or before nothing") as err:
            run(name, data)
        assert "\n" not in str(err.value)


def test_cache_fuses_once_and_changes_nothing(data, model, monkeypatch):
    from reidgraph.rerank import plan

    calls = []
    fused = plan.fused_pair
    monkeypatch.setattr(plan, "fused_pair", lambda *a: calls.append(1) or fused(*a))
    cache = {}
    names = ["ffgnn+ecn", "ffgnn+k-reciprocal", "gcr+ffgnn+ecn", "gcr+ffgnn+ecn", "ffgnn+ecn",
             "gcr+ffgnn+k-reciprocal"]
    for name in names:
        got = run(name, data, model=model, cache=cache)
        assert torch.equal(got.dense(), run(name, data, model=model).dense()), name
    assert len(calls) == 2 + len(names)  # once with and once without propagation for the cached calls, and
    # once for every call without a cache
    calls.clear()
    run("fusion+ecn", data, params={"fusion.K": 12, "fusion.k": 4, "tau": 4}, cache=cache)
    run("fusion+ecn", data, params={"fusion.K": 10, "fusion.k": 4, "tau": 4}, cache=cache)
    assert len(calls) == 2  # other fuser parameters, other features
