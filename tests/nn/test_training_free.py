"""Training-free fusion: x_i <- normalize((1 - alpha) x_i + alpha sum_j s_ij x_j), checked by plain loops."""
import math

import pytest
import torch
import torch.nn.functional as F

from torch_geometric.data import Batch, Data

from reidgraph.graph import GraphSettings, NeighborhoodGraph, build_graphs
from reidgraph.nn import TrainingFreeFusion, ffgnn_rerank

SMALL = GraphSettings(K=10, k=4, tau=5)


def loop_fusion(x, s, alpha, steps):
    """The update written one scalar at a time, for one graph x [n, D], s [n, n]."""
    x, s = x.tolist(), s.tolist()
    n, d = len(x), len(x[0])
    for _ in range(steps):
        new = [[(1 - alpha) * x[i][c] + alpha * sum(s[i][j] * x[j][c] for j in range(n)) for c in range(d)]
               for i in range(n)]
        x = [[v / math.sqrt(sum(u * u for u in row)) for v in row] for row in new]
    return torch.tensor(x, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["fusion", "identity_l2_ffgnn"])
def test_matches_loop_and_sparse_equals_dense(kind):
    """Training-free fusion, and FFGNN(init="identity", output="l2") untrained (training starts there)."""
    from reidgraph.nn import FFGNN

    torch.manual_seed(0)
    data = build_graphs(torch.randn(3, 6, dtype=torch.float64), torch.randn(30, 6, dtype=torch.float64), SMALL)
    fusion = (TrainingFreeFusion(alpha=0.4, steps=2) if kind == "fusion"
              else FFGNN(6, num_layers=2, alpha=0.4, output="l2", init="identity").double())
    for graph in data:
        s = torch.sparse_coo_tensor(graph.edge_index.flip(0), graph.edge_weight, (11, 11)).to_dense()
        expected = loop_fusion(graph.x, s, 0.4, 2)
        assert torch.allclose(fusion(graph.x, graph.edge_index, graph.edge_weight), expected, atol=1e-12)
        assert torch.allclose(fusion.forward_dense(graph.x[None], s[None])[0], expected, atol=1e-12)


def test_batched_equals_one_by_one_and_nodes_permute():
    torch.manual_seed(2)
    g = torch.randn(40, 6, dtype=torch.float64)
    graphs = build_graphs(g[:4], g, SMALL, exclude=torch.arange(4))
    fusion = TrainingFreeFusion(alpha=0.4, steps=3)
    assert not list(fusion.parameters()) and not fusion.state_dict()
    batch = Batch.from_data_list(graphs)
    together = fusion(batch.x, batch.edge_index, batch.edge_weight)
    x = torch.stack([data.x for data in graphs])
    s = SMALL.adjacency(x)
    dense = fusion.forward_dense(x, s)
    assert torch.allclose(fusion.forward_dense(x, s, anchor_only=True), dense[:, 0], atol=1e-12)
    for i, data in enumerate(graphs):
        alone = fusion(data.x, data.edge_index, data.edge_weight)
        assert torch.allclose(together[batch.ptr[i]:batch.ptr[i + 1]], alone, atol=1e-12)
        assert torch.allclose(dense[i], alone, atol=1e-12)
        adj_t = torch.sparse_coo_tensor(data.edge_index.flip(0), data.edge_weight, (11, 11)).to_sparse_csr()
        assert torch.allclose(fusion(data.x, adj_t), alone, atol=1e-12)
        perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(10)])
        permuted = NeighborhoodGraph(SMALL)(Data(x=data.x[perm]))
        assert torch.allclose(fusion(permuted.x, permuted.edge_index, permuted.edge_weight), alone[perm], atol=1e-12)


def test_identity_start_survives_reset():
    from reidgraph.nn import FFGNN

    model = FFGNN(6, init="identity")
    torch.nn.init.zeros_(model.convs[1].lin.weight)
    model.reset_parameters()
    assert all(torch.equal(conv.lin.weight, torch.eye(6)) for conv in model.convs)


def test_alpha_zero_keeps_the_features():
    x = F.normalize(torch.randn(2, 5, 4), dim=-1)
    assert torch.allclose(TrainingFreeFusion(alpha=0.0).forward_dense(x, torch.rand(2, 5, 5)), x)


def test_reranks_like_a_trained_model():
    """ffgnn_rerank with the fusion equals fusing each graph and sorting by cosine distance to node 0."""
    torch.manual_seed(1)
    q, g = torch.randn(6, 8), torch.randn(40, 8)
    fusion = TrainingFreeFusion()
    result = ffgnn_rerank(fusion, q, g, SMALL, batch_size=4)
    for i, data in enumerate(build_graphs(q, g, SMALL)):
        z = fusion(data.x, data.edge_index, data.edge_weight)
        dist = 1 - z[1:] @ z[0]
        assert result.index[i].tolist() == data.n_id[1:][dist.argsort(stable=True)].tolist()


@pytest.mark.parametrize("kwargs,match", [({"alpha": 1.2}, r"alpha=1.2 is outside \[0, 1\]"),
                                          ({"steps": 0}, r"steps=0 is outside")])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainingFreeFusion(**kwargs)


@pytest.mark.parametrize("kwargs,match", [({"output": "relu"}, "output='relu' is unknown"),
                                          ({"init": "zeros"}, "init='zeros' is unknown")])
def test_bad_ffgnn_options(kwargs, match):
    from reidgraph.nn import FFGNN

    with pytest.raises(ValueError, match=match):
        FFGNN(4, **kwargs)
