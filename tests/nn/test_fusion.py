"""Test-time re-ranking (paper §3.3 "Testing Stage") against a graph-by-graph reference."""
import re
import pytest
import torch
import torch.nn.functional as F

from reidgraph.graph import GraphSettings, build_graphs, knn
from reidgraph.nn import FFGNN, ffgnn_rerank, fused_features
from reidgraph.ranking import ranked_orders

SMALL = GraphSettings(K=10, k=4, tau=5)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    q, g = torch.randn(9, 8), torch.randn(50, 8)
    model = FFGNN(8)
    model.train()
    model(torch.randn(64, 8), torch.empty(2, 0, dtype=torch.long))  # move BN running stats off their init
    return model, q, g


def test_matches_per_graph_reference(setup):
    model, q, g = setup
    result = ffgnn_rerank(model, q, g, SMALL)
    assert model.training  # restored
    model.eval()
    for i, data in enumerate(build_graphs(q, g, SMALL)):
        z = F.normalize(model(data.x, data.edge_index, data.edge_weight), dim=1)
        dist = 1 - z[1:] @ z[0]
        order = sorted(range(10), key=lambda j: dist[j].item())
        assert result.index[i].tolist() == data.n_id[1:][order].tolist()
        assert torch.allclose(result.distance[i], dist[order], atol=1e-5)


def test_fused_features_are_each_anchors_node_in_its_own_graph(setup):
    model, q, g = setup
    own = torch.arange(9)
    fused = fused_features(model, g[:9], g, SMALL, exclude=own, batch_size=4)
    assert model.training  # restored
    model.eval()
    for i, data in enumerate(build_graphs(g[:9], g, SMALL, exclude=own)):
        assert i not in data.n_id[1:].tolist()  # not its own neighbor
        z = F.normalize(model(data.x, data.edge_index, data.edge_weight), dim=1)
        assert torch.allclose(fused[i], z[0], atol=1e-5)
    assert torch.allclose(fused_features(model, q, g, SMALL, batch_size=1),
                          fused_features(model, q, g, SMALL, batch_size=5), atol=1e-6)


def test_head_is_the_knn_set_and_batching_does_not_matter(setup):
    model, q, g = setup
    one = ffgnn_rerank(model, q, g, SMALL, batch_size=1)
    many = ffgnn_rerank(model, q, g, SMALL, batch_size=4)
    assert torch.equal(one.index, many.index)
    _, idx = knn(q, g, 10)
    assert torch.equal(one.index.sort(1).values, idx.sort(1).values)


def test_full_orders_put_head_first_then_fen_order(setup):
    model, q, g = setup
    result = ffgnn_rerank(model, q, g, SMALL)
    orders = torch.cat(list(result.order_chunks(chunk_size=4)))
    assert orders.shape == (9, 50)
    assert torch.equal(orders[:, :10], result.index)
    fen = torch.cat(list(ranked_orders(q, g)))
    for i in range(9):
        head = set(result.index[i].tolist())
        assert orders[i, 10:].tolist() == [j for j in fen[i].tolist() if j not in head]
        assert sorted(orders[i].tolist()) == list(range(50))


def test_bad_input(setup):
    model, q, g = setup
    with pytest.raises(ValueError, match="the maximum is K=50"):
        ffgnn_rerank(model, q, g, GraphSettings(K=51))
    with pytest.raises(ValueError, match="query has 8-d features but gallery has 7-d"):
        ffgnn_rerank(model, q, g[:, :7], SMALL)


def test_camera_aware_rerank_matches_per_graph_reference(setup):
    model, q, g = setup
    settings = GraphSettings(K=10, k=4, tau=5, same_camera_weight=0.0)
    qc, gc = torch.arange(9) % 2, torch.arange(50) % 3
    result = ffgnn_rerank(model, q, g, settings, query_camids=qc, gallery_camids=gc)
    model.eval()
    for i, data in enumerate(build_graphs(q, g, settings, anchor_camids=qc, candidate_camids=gc)):
        z = F.normalize(model(data.x, data.edge_index, data.edge_weight), dim=1)
        dist = 1 - z[1:] @ z[0]
        assert result.index[i].tolist() == data.n_id[1:][dist.argsort(stable=True)].tolist()
    with pytest.raises(ValueError, match="pass query_camids and gallery_camids"):
        ffgnn_rerank(model, q, g, settings)


def test_model_width_must_match_the_features(setup):
    _, q, g = setup
    wide = FFGNN(16)
    for call in (lambda: ffgnn_rerank(wide, q, g, SMALL), lambda: fused_features(wide, q, g, SMALL)):
        with pytest.raises(ValueError, match="model expects 16-d features but the features are 8-d") as err:
            call()
        assert "\n" not in str(err.value)
    assert wide.training  # the check runs before the model is switched to eval mode


def test_no_batch_output_outlives_its_batch(setup, monkeypatch):
    """Results are written into buffers allocated once, so no batch's ``[b, K+1, D]`` output stays alive."""
    import weakref

    import reidgraph.nn.fusion as fusion

    model, q, g = setup
    outputs, alive, batches = [], [], fusion.fused_graphs

    def tracked(*args, **kwargs):
        for rows, z in batches(*args, **kwargs):
            alive.append(sum(ref() is not None for ref in outputs))
            outputs.append(weakref.ref(z))
            yield rows, z

    monkeypatch.setattr(fusion, "fused_graphs", tracked)
    ffgnn_rerank(model, q, g, SMALL, batch_size=2)
    fused_features(model, q, g, SMALL, batch_size=2)
    # At most the caller's loop variable still holds the previous batch.
    assert len(alive) == 10 and max(alive) <= 1


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_queries():
    """Peak RSS of zero-shot fusion over a 20,000 gallery: 3,000 queries within 100 MiB of 500 (was +450-750)."""
    import subprocess
    import sys

    script = """
import resource, sys, torch
from reidgraph.rerank import rerank
g = torch.Generator().manual_seed(0)
centers = torch.randn(2000, 256, generator=g)
def feats(n): return centers[torch.randint(0, 2000, (n,), generator=g)] + 1.5 * torch.randn(n, 256, generator=g)
query, gallery = feats(int(sys.argv[1])), feats(20000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rerank("fusion-paper", query, gallery)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    growth = [float(subprocess.run([sys.executable, "-c", script, str(n)], check=True, capture_output=True,
                                   text=True).stdout) for n in (500, 3000)]
    assert growth[1] - growth[0] < 100, growth


def test_given_neighbors_equal_exact_search_and_bad_ones_are_one_line():
    from reidgraph.graph import GraphSettings, knn
    from reidgraph.nn import TrainingFreeFusion, ffgnn_rerank
    g = torch.Generator().manual_seed(3)
    query, gallery = torch.randn(5, 8, generator=g), torch.randn(40, 8, generator=g)
    settings = GraphSettings(K=10, k=4, tau=4)
    net = TrainingFreeFusion(0.3, 3)
    wide = knn(query, gallery, 15, backend="torch")[1]  # more columns than K: the first K are used
    given = ffgnn_rerank(net, query, gallery, settings, neighbors=wide)
    exact = ffgnn_rerank(net, query, gallery, settings, backend="torch")
    assert torch.equal(given.index, exact.index) and torch.allclose(given.distance, exact.distance)
    for bad, message in [(wide[:, :9], "at least 10 neighbors"), (wide[:4], "5 queries"),
                         (wide.float(), "integer table"), (wide + 40, "outside the gallery's [0, 40)")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            ffgnn_rerank(net, query, gallery, settings, neighbors=bad)
