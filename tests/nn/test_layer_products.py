"""The precomputed-products FFGNN (``output="l2"``) and the anchor-only last layer, against plain loops and the
direct path."""
import math

import pytest
import torch
import torch.nn.functional as F

import reidgraph.nn.fusion as fusion
from reidgraph.graph import GraphSettings
from reidgraph.nn import FFGNN, TrainingFreeFusion, ffgnn_rerank, fused_features
from reidgraph.nn.layer_products import fuse_l2, layer_tables

SMALL = GraphSettings(K=12, k=4, tau=5)


def loop_l2_ffgnn(model, x, s):
    """Paper eq. (11), one scalar at a time, with each layer's output L2-normalised (``output="l2"``):
    x~_i = (1 - a) x_i + a sum_j s_ij (x_j W), for one graph x [n, D], s [n, n]."""
    h = x.tolist()
    n, D = len(h), len(h[0])
    for conv in model.convs:
        W = conv.lin.weight.tolist()  # lin(x) = x W^T: (x W^T)_d = sum_e x_e W[d][e]
        xw = [[sum(h[j][e] * W[d][e] for e in range(D)) for d in range(D)] for j in range(n)]
        u = [[(1 - conv.alpha) * h[i][d] + conv.alpha * sum(s[i][j] * xw[j][d] for j in range(n)) for d in range(D)]
             for i in range(n)]
        h = [[v / max(math.sqrt(sum(w * w for w in row)), 1e-12) for v in row] for row in u]
    return torch.tensor(h, dtype=torch.float64)


def graphs(B=3, n=9, D=5, N=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(N, D, generator=g, dtype=torch.float64), dim=1)
    nodes = torch.stack([torch.randperm(N, generator=g)[:n] for _ in range(B)])
    x = images[nodes]
    s = GraphSettings(K=n - 1, k=3, tau=4).adjacency(x)
    return images, nodes, x, s


def gathered(model, images, nodes):
    return [t[nodes].reshape(nodes.shape[0], -1, images.shape[1]) for t in layer_tables(model.convs, images)]


@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_equals_the_plain_loop_layer(layers):
    torch.manual_seed(layers)
    model = FFGNN(5, num_layers=layers, alpha=0.3, output="l2").double().eval()
    images, nodes, x, s = graphs(seed=layers)
    out = fuse_l2(x, s, gathered(model, images, nodes), model.alpha)
    anchors = fuse_l2(x, s, gathered(model, images, nodes)[:-1], model.alpha, last=model.convs[-1].lin)
    for b in range(len(x)):
        expected = loop_l2_ffgnn(model, x[b], s[b].tolist())
        assert torch.allclose(out[b], expected, atol=1e-12)
        assert torch.allclose(anchors[b], expected[0], atol=1e-12)


def test_tables_hold_each_subset_of_the_layers_in_layer_order():
    torch.manual_seed(0)
    model = FFGNN(4, num_layers=3, output="l2").double()
    x = torch.randn(6, 4, dtype=torch.float64)
    W = [conv.lin.weight.T for conv in model.convs]
    tables = layer_tables(model.convs, x)
    assert [t.shape for t in tables] == [(6, 1, 4), (6, 2, 4), (6, 4, 4)]
    assert torch.allclose(tables[2][:, 0b11], x @ W[0] @ W[1] @ W[2])  # slot t = layers 1 and 2, then layer 3
    assert torch.allclose(tables[2][:, 0b10], x @ W[1] @ W[2])
    assert torch.allclose(tables[1][:, 0b1], x @ W[0] @ W[1])


@pytest.mark.parametrize("output", ["l2", "batchnorm"])
def test_anchor_only_is_node_0_of_the_whole_output(output):
    torch.manual_seed(1)
    model = FFGNN(5, output=output).double()
    if output == "batchnorm":
        for norm in model.norms:
            norm.running_mean.normal_(0, 0.2)
            norm.running_var.uniform_(0.5, 2)
    model.eval()
    _, _, x, s = graphs()
    assert torch.allclose(model.forward_dense(x, s, anchor_only=True), model.forward_dense(x, s)[:, 0], atol=1e-12)
    fusion_free = TrainingFreeFusion(0.3, 3)
    assert torch.allclose(fusion_free.forward_dense(x, s, anchor_only=True), fusion_free.forward_dense(x, s)[:, 0],
                          atol=1e-12)


def direct(monkeypatch):
    monkeypatch.setattr(fusion, "_products_pay", lambda *args, **kwargs: False)


@pytest.fixture
def features():
    g = torch.Generator().manual_seed(2)
    centres = torch.randn(8, 16, generator=g)
    q = centres[torch.arange(10) % 8] + 0.5 * torch.randn(10, 16, generator=g)
    gallery = centres[torch.arange(60) % 8] + 0.5 * torch.randn(60, 16, generator=g)
    return q, gallery


def l2_model():
    torch.manual_seed(3)
    model = FFGNN(16, output="l2", init="identity")
    for conv in model.convs:
        conv.lin.weight.data.add_(0.1 * torch.randn(16, 16))
    return model.eval()


def test_rerank_and_fused_features_equal_the_direct_path(features, monkeypatch):
    """Float32, both ways through the public calls: the same lists, distances and fused features to rounding."""
    q, g = features
    model = l2_model()
    own = torch.arange(len(g))
    monkeypatch.setattr(fusion, "_products_pay", lambda *args, **kwargs: True)
    fast = ffgnn_rerank(model, q, g, SMALL, batch_size=3)
    fast_fused = fused_features(model, g, g, SMALL, exclude=own, batch_size=4)
    fast_query = fused_features(model, q, g, SMALL, batch_size=4)
    direct(monkeypatch)
    slow = ffgnn_rerank(model, q, g, SMALL, batch_size=3)
    assert torch.equal(fast.index, slow.index)
    assert torch.allclose(fast.distance, slow.distance, atol=1e-6)
    assert torch.allclose(fast_fused, fused_features(model, g, g, SMALL, exclude=own, batch_size=4), atol=1e-6)
    assert torch.allclose(fast_query, fused_features(model, q, g, SMALL, batch_size=4), atol=1e-6)


def test_same_tensor_as_anchors_and_candidates_equals_a_copy(features, monkeypatch):
    q, g = features
    model = l2_model()
    own = torch.arange(len(g))
    monkeypatch.setattr(fusion, "_products_pay", lambda *args, **kwargs: True)
    shared = fused_features(model, g, g, SMALL, exclude=own)
    assert torch.allclose(shared, fused_features(model, g, g.clone(), SMALL, exclude=own), atol=1e-6)


def test_the_products_pay_for_many_graphs_not_for_few():
    model = FFGNN(2048, output="l2")
    assert fusion._products_pay(model, 19281, 3368, 151, 2048)  # Market size
    assert fusion._products_pay(model, 19281, 19281, 151, 2048, anchor_only=True)  # ffgnn+PEER at Market size
    assert not fusion._products_pay(model, 1500, 10, 151, 2048)  # ten queries: the tables would cost more
    assert not fusion._products_pay(FFGNN(8), 19281, 3368, 151, 2048)  # batchnorm: the ReLU does not commute
    assert not fusion._products_pay(TrainingFreeFusion(), 19281, 3368, 151, 2048)
    # MSMT17 size: 7 tables of 93,820 x 2048 float32 take 5.4 GB, beyond a budget of 4 GB: the direct path runs.
    assert fusion._products_pay(model, 93820, 11659, 151, 2048, budget=6 * 10**9)
    assert not fusion._products_pay(model, 93820, 11659, 151, 2048, budget=4 * 10**9)
    assert fusion.free_memory(torch.device("cpu")) > 0
    sample = "MemTotal:       16318480 kB\nMemFree:         1203644 kB\nMemAvailable:    9876543 kB\n"
    assert fusion.free_memory(torch.device("cpu"), sample) == 10_113_580_032  # 9,876,543 KiB in bytes
    assert fusion.free_memory(torch.device("cpu"), "MemTotal:       16318480 kB\n") == 2**62  # a host that does not say


def test_tables_that_do_not_fit_take_the_direct_path(monkeypatch):
    """With too little free memory for the tables, ffgnn_rerank ranks as ever, by the direct path."""
    calls = []
    real = fusion.layer_tables
    monkeypatch.setattr(fusion, "layer_tables", lambda *a: calls.append(1) or real(*a))
    model = FFGNN(256, output="l2", init="random").eval()
    q, g = torch.randn(300, 256), torch.randn(200, 256)
    settings = GraphSettings(K=20, k=5, tau=5)
    roomy = ffgnn_rerank(model, q, g, settings)
    assert calls  # the products pay at this size and fit
    calls.clear()
    monkeypatch.setattr(fusion, "free_memory", lambda device: 1000)
    tight = ffgnn_rerank(model, q, g, settings)
    assert not calls and torch.equal(tight.index, roomy.index)
    assert torch.allclose(tight.distance, roomy.distance, atol=1e-6)
