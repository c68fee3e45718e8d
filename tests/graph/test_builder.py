import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from reidgraph.graph import (GraphSettings, NeighborhoodGraph, build_graphs, knn, neighborhood_adjacency,
                             normalize_adjacency)

SMALL = GraphSettings(K=12, k=4, tau=5)


@pytest.fixture
def feats():
    torch.manual_seed(0)
    return torch.randn(10, 8), torch.randn(40, 8)


def test_graph_holds_anchor_and_its_top_K(feats):
    q, g = feats
    graphs = build_graphs(q, g, SMALL)
    _, idx = knn(q, g, 12)
    for i, data in enumerate(graphs):
        assert data.anchor_id.tolist() == [i] and data.n_id[1:].tolist() == idx[i].tolist()
        assert torch.allclose(data.x, F.normalize(torch.cat([q[i:i + 1], g[idx[i]]]), dim=1))


def test_node_ids_index_one_table(feats):
    """n_id: rows of the candidates when anchors are drawn from them, else of [candidates; anchors]."""
    q, g = feats
    qp, gp = torch.arange(10) + 100, torch.arange(40) // 4
    qc, gc = torch.arange(10) % 3, torch.arange(40) % 3
    settings = GraphSettings(K=12, k=4, tau=5, same_camera_weight=0.5)
    own = torch.tensor([3, 0, 39, 17])
    # name: (anchors, their labels, their cameras, exclude, the one table of features, labels, cameras)
    cases = {"separate": (q, qp, qc, None, torch.cat([g, q]), torch.cat([gp, qp]), torch.cat([gc, qc])),
             "drawn from the candidates": (g[own], gp[own], gc[own], own, g, gp, gc)}
    for name, (anchors, labels, cams, exclude, table, table_pids, table_cams) in cases.items():
        graphs = build_graphs(anchors, g, settings, exclude=exclude, anchor_labels=labels,
                              candidate_labels=gp, anchor_camids=cams, candidate_camids=gc)
        for i, data in enumerate(graphs):
            assert data.n_id[0].item() == (40 + i if exclude is None else own[i].item()), name
            assert data.anchor_id.tolist() == [i], name
            assert torch.allclose(data.x, F.normalize(table, dim=1)[data.n_id]), name
            assert torch.equal(data.y, table_pids[data.n_id]) and torch.equal(data.camids, table_cams[data.n_id])
        batch = Batch.from_data_list(graphs)
        assert torch.allclose(batch.x, F.normalize(table, dim=1)[batch.n_id]), name  # batching keeps the space
        assert batch.anchor_id.tolist() == list(range(len(anchors))), name


def test_edges_are_the_surviving_normalised_weights(feats):
    q, g = feats
    data = build_graphs(q, g, SMALL)[3]
    S = normalize_adjacency(neighborhood_adjacency(data.x, k=4, tau=5))
    assert not torch.allclose(S, S.T)  # so the check below sees the direction of each edge
    dense = torch.zeros(13, 13)
    src, dst = data.edge_index
    dense[dst, src] = data.edge_weight  # edge j -> i carries s_ij
    assert torch.allclose(dense, S)
    assert (data.edge_weight > 0).all()
    assert set(zip(*data.edge_index.tolist())) >= {(i, i) for i in range(13)}  # self-loops survive


def test_batched_build_equals_one_by_one(feats):
    q, g = feats
    together = build_graphs(q, g, SMALL, batch_size=64)
    for i in range(len(q)):
        alone = build_graphs(q[i:i + 1], g, SMALL, batch_size=1)[0]
        for key in ("x", "edge_index", "edge_weight"):
            assert torch.allclose(together[i][key].float(), alone[key].float(), atol=1e-6)


def test_labels_and_anchor_index(feats):
    _, g = feats
    pids = torch.arange(40) // 4
    anchors = torch.tensor([0, 5, 17])
    graphs = build_graphs(g[anchors], g, SMALL, anchor_labels=pids[anchors], candidate_labels=pids,
                          exclude=anchors)
    for a, data in zip(anchors.tolist(), graphs):
        assert data.n_id[0].item() == a and a not in data.n_id[1:].tolist()
        assert data.y.tolist() == pids[data.n_id].tolist()
        assert torch.equal(data.x, F.normalize(g, dim=1)[data.n_id])


def test_batches_through_pyg_loader(feats):
    q, g = feats
    graphs = build_graphs(q, g, SMALL)
    batch = next(iter(DataLoader(graphs, batch_size=4)))
    assert isinstance(batch, Batch) and batch.num_graphs == 4
    assert batch.ptr.tolist() == [0, 13, 26, 39, 52]
    assert batch.edge_index.max().item() < 52 and batch.edge_index[:, -1].min().item() >= 39
    assert torch.equal(batch.n_id[13:26], graphs[1].n_id)  # global ids are not shifted by batching
    assert batch.anchor_id.tolist() == [0, 1, 2, 3]


def test_bad_input(feats):
    q, g = feats
    with pytest.raises(ValueError, match=r"K=41 is outside .*the maximum is K=40"):
        build_graphs(q, g, GraphSettings(K=41))
    with pytest.raises(ValueError, match=r"tau=14 is outside \[1, 13\]"):
        build_graphs(q, g, GraphSettings(K=12, k=4, tau=14))
    with pytest.raises(ValueError, match="anchor_labels has shape"):
        build_graphs(q, g, SMALL, anchor_labels=torch.arange(9), candidate_labels=torch.arange(40))
    with pytest.raises(ValueError, match="both"):
        build_graphs(q, g, SMALL, anchor_labels=torch.arange(10))
    with pytest.raises(ValueError, match="anchors has 8-d features but candidates has 7-d"):
        build_graphs(q, g[:, :7], SMALL)


def test_given_neighbors_replace_the_knn(feats):
    q, g = feats
    chosen = torch.arange(12).repeat(10, 1) + torch.arange(10)[:, None]
    graphs = build_graphs(q, g, SMALL, neighbors=chosen)
    assert all(data.n_id[1:].tolist() == chosen[i].tolist() for i, data in enumerate(graphs))
    bad = {"10 queries with at least 12 neighbors": chosen[:, :5],
           "integer table": chosen.double() / 3,  # was truncated to index 0 silently
           "outside the gallery": chosen - 1,  # a negative index would wrap round to the last item
           "more than once": torch.cat([chosen[:, :11], chosen[:, :1]], dim=1)}
    for message, neighbors in bad.items():
        with pytest.raises(ValueError, match=message) as err:
            build_graphs(q, g, SMALL, neighbors=neighbors)
        assert "\n" not in str(err.value)


def test_camera_aware_graphs_use_each_nodes_camera(feats):
    q, g = feats
    settings = GraphSettings(K=12, k=4, tau=5, same_camera_weight=0.0)
    qc, gc = torch.arange(10) % 3, torch.arange(40) % 3
    graphs = build_graphs(q, g, settings, anchor_camids=qc, candidate_camids=gc)
    paper = build_graphs(q, g, SMALL)
    for data, plain in zip(graphs, paper):
        assert torch.equal(data.n_id, plain.n_id)  # the same nodes: only the edges change
        cams = torch.cat([gc, qc])[data.n_id]
        assert torch.equal(data.camids, cams)
        s = normalize_adjacency(neighborhood_adjacency(data.x, k=4, tau=5, camids=cams, same_camera_weight=0.0))
        assert torch.allclose(torch.sparse_coo_tensor(data.edge_index.flip(0), data.edge_weight, (13, 13)).to_dense(), s)
    assert any(not torch.equal(a.edge_index, b.edge_index) for a, b in zip(graphs, paper))
    transformed = NeighborhoodGraph(settings)(Data(x=graphs[2].x.clone(), camids=graphs[2].camids))
    assert torch.equal(transformed.edge_index, graphs[2].edge_index)


def test_camera_aware_graphs_need_camera_ids(feats):
    q, g = feats
    settings = GraphSettings(K=12, k=4, tau=5, same_camera_weight=0.2)
    with pytest.raises(ValueError, match="need the camera of every image: pass anchor_camids and candidate_camids"):
        build_graphs(q, g, settings)
    with pytest.raises(ValueError, match="candidate_camids has shape"):
        build_graphs(q, g, settings, anchor_camids=torch.zeros(10, dtype=torch.long),
                     candidate_camids=torch.zeros(39, dtype=torch.long))
    with pytest.raises(ValueError, match=r"same_camera_weight=-0.1 is outside \[0, 1\]"):
        build_graphs(q, g, GraphSettings(K=12, k=4, tau=5, same_camera_weight=-0.1))


@pytest.mark.parametrize("change, name", [({"tau": 0}, "tau"), ({"lam": float("nan")}, "lam"),
                                          ({"same_camera_weight": 2.0}, "same_camera_weight")])
def test_a_bad_setting_is_named_even_when_K_exceeds_the_candidates(change, name):
    from dataclasses import replace

    with pytest.raises(ValueError, match=rf"^{name}="):
        replace(GraphSettings(), **change).check(num_candidates=20)  # the default K=150 exceeds 20 too


def _top_k(anchors, candidates, K, excluded=None):
    """Brute force: each anchor's K most cosine-similar candidates, best first, minus its excluded row."""
    sim = F.normalize(anchors, dim=1) @ F.normalize(candidates, dim=1).T
    order = sim.argsort(dim=1, descending=True).tolist()
    return [[j for j in row if j != (None if excluded is None else excluded[i])][:K] for i, row in enumerate(order)]


def test_exclude_minus_one_means_the_anchor_is_not_a_candidate(feats):
    """exclude as knn reads it: -1 is "none", so that anchor is node G + q, like an anchor without exclude."""
    q, g = feats
    anchors = torch.cat([g[7:8], q[4:5], g[20:21]])
    graphs = build_graphs(anchors, g, SMALL, exclude=torch.tensor([7, -1, 20]))
    expected = _top_k(anchors, g, 12, excluded=[7, None, 20])
    assert [data.n_id[0].item() for data in graphs] == [7, 40 + 1, 20]
    for i, data in enumerate(graphs):
        assert data.n_id[1:].tolist() == expected[i] and data.anchor_id.tolist() == [i]
    assert torch.allclose(graphs[1].x, F.normalize(torch.cat([g, anchors]), dim=1)[graphs[1].n_id])


def test_exclude_self_as_knn_takes_it(feats):
    _, g = feats
    graphs = build_graphs(g, g, SMALL, exclude="self")
    expected = _top_k(g, g, 12, excluded=list(range(40)))
    assert len(graphs) == 40
    for i, data in enumerate(graphs):
        assert data.n_id[0].item() == i and data.n_id[1:].tolist() == expected[i]
        assert torch.allclose(data.x, F.normalize(g, dim=1)[data.n_id])


def test_adjacency_edges_reads_row_i_as_the_edges_into_i():
    from reidgraph.graph.data import adjacency_edges

    s = torch.tensor([[0.5, 0.2, 0.0], [0.0, 0.4, 0.0], [0.3, 0.0, 0.1]])  # s_ij: edge j -> i
    edge_index, edge_weight = adjacency_edges(s)
    assert sorted(zip(*edge_index.tolist(), [round(w, 6) for w in edge_weight.tolist()])) == sorted(
        [(0, 0, 0.5), (1, 0, 0.2), (1, 1, 0.4), (0, 2, 0.3), (2, 2, 0.1)])
    with pytest.raises(ValueError, match="anchors has labels but candidates has none; give both labels, or neither"):
        build_graphs(torch.randn(3, 8), torch.randn(20, 8), SMALL, anchor_labels=torch.arange(3))
