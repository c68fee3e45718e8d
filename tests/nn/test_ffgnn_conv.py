"""FFGNNConv (eqs. 11-12) against a per-edge loop, across adjacency formats."""
import pytest
import torch

from reidgraph.graph import GraphSettings, NeighborhoodGraph, build_graphs, normalize_adjacency
from reidgraph.nn import FFGNN, FFGNNConv
from torch_geometric.data import Batch, Data
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import dense_to_sparse, to_torch_csr_tensor

SMALL = GraphSettings(K=15, k=4, tau=5)


def ref_conv(x, edge_index, edge_weight, W, alpha):
    """x~_i = (1 - a) x_i + a * sum over edges j->i of s_ij * (W x_j), one edge at a time."""
    out = [(1 - alpha) * x[i].clone() for i in range(x.shape[0])]
    msgs = [torch.zeros(x.shape[1], dtype=x.dtype) for _ in range(x.shape[0])]
    for e in range(edge_index.shape[1]):
        j, i = edge_index[0, e].item(), edge_index[1, e].item()
        msgs[i] += edge_weight[e] * (W @ x[j])
    return torch.stack([o + alpha * m for o, m in zip(out, msgs)])


@pytest.fixture
def graph():
    torch.manual_seed(0)
    g = torch.randn(60, 6, dtype=torch.float64)
    return build_graphs(g[:1], g, SMALL, exclude=torch.tensor([0]))[0]


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_matches_edge_loop(graph, alpha):
    conv = FFGNNConv(6, alpha=alpha).double()
    out = conv(graph.x, graph.edge_index, graph.edge_weight)
    ref = ref_conv(graph.x, graph.edge_index, graph.edge_weight, conv.lin.weight.detach(), alpha)
    assert torch.allclose(out, ref, atol=1e-12)


def test_sparse_inputs_give_the_same_output(graph):
    conv = FFGNNConv(6).double()
    out = conv(graph.x, graph.edge_index, graph.edge_weight)
    n = graph.num_nodes
    # adj_t holds s_ij in row i: target i, source j.
    adj_t = torch.sparse_coo_tensor(graph.edge_index.flip(0), graph.edge_weight, (n, n))
    assert torch.allclose(conv(graph.x, adj_t), out, atol=1e-12)
    assert torch.allclose(conv(graph.x, adj_t.to_sparse_csr()), out, atol=1e-12)


def test_sparse_tensor_input(graph):
    torch_sparse = pytest.importorskip("torch_sparse", reason="torch-sparse is not installed (extra 'sparse')")
    conv = FFGNNConv(6).double()
    n = graph.num_nodes
    adj_t = torch_sparse.SparseTensor(row=graph.edge_index[1], col=graph.edge_index[0],
                                      value=graph.edge_weight, sparse_sizes=(n, n))
    assert torch.allclose(conv(graph.x, adj_t), conv(graph.x, graph.edge_index, graph.edge_weight), atol=1e-12)


def test_gradients_flow_to_W(graph):
    conv = FFGNNConv(6).double()
    conv(graph.x, graph.edge_index, graph.edge_weight).pow(2).sum().backward()
    assert conv.lin.weight.grad is not None and conv.lin.weight.grad.abs().sum() > 0
    assert conv.lin.bias is None


def test_permuting_non_anchor_nodes_permutes_outputs(graph):
    perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(graph.num_nodes - 1)])
    permuted = NeighborhoodGraph(SMALL)(Data(x=graph.x[perm]))
    conv = FFGNNConv(6).double()
    model = FFGNN(6).double().eval()
    for f in (conv, model):
        out = f(graph.x, graph.edge_index, graph.edge_weight)
        assert torch.allclose(f(permuted.x, permuted.edge_index, permuted.edge_weight), out[perm], atol=1e-10)


def test_ffgnn_is_conv_bn_relu_three_times(graph):
    model = FFGNN(6, num_layers=3, alpha=0.3).double()
    model.train()
    out = model(graph.x, graph.edge_index, graph.edge_weight)
    h = graph.x
    for conv in model.convs:
        h = conv(h, graph.edge_index, graph.edge_weight)
        h = ((h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5)).relu()  # fresh BN: weight 1, bias 0
    assert torch.allclose(out, h, atol=1e-8)
    assert len(model.convs) == 3 and all(c.alpha == 0.3 for c in model.convs)


def test_batched_graphs_equal_one_by_one():
    torch.manual_seed(1)
    g = torch.randn(80, 6)
    graphs = build_graphs(g[:5], g, SMALL, exclude=torch.arange(5))
    model = FFGNN(6).eval()
    batch = Batch.from_data_list(graphs)
    out = model(batch.x, batch.edge_index, batch.edge_weight)
    for i, data in enumerate(graphs):
        assert torch.allclose(out[batch.ptr[i]:batch.ptr[i + 1]], model(data.x, data.edge_index, data.edge_weight),
                              atol=1e-5)


def test_reset_parameters_changes_W():
    conv = FFGNNConv(4)
    before = conv.lin.weight.clone()
    conv.reset_parameters()
    assert not torch.equal(before, conv.lin.weight)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match=r"alpha=.* is outside \[0, 1\]"):
        FFGNNConv(4, alpha=alpha)


def test_wrong_channels():
    with pytest.raises(ValueError, match="x has 5 channels but this FFGNNConv expects 4"):
        FFGNNConv(4)(torch.randn(3, 5), torch.tensor([[0, 1], [1, 2]]))


@pytest.mark.parametrize("training", [False, True])
def test_dense_forward_equals_sparse_path(training):
    torch.manual_seed(2)
    g = torch.randn(80, 6, dtype=torch.float64)
    x = torch.stack([data.x for data in build_graphs(g[:4], g, SMALL, exclude=torch.arange(4))])
    s = SMALL.adjacency(x)
    model = FFGNN(6).double().train(training)
    adj_t = to_torch_csr_tensor(*dense_to_sparse(s), size=4 * 16)  # block diagonal, row i holding s_ij
    sparse = model(x.reshape(-1, 6), adj_t).view(4, 16, 6)
    assert torch.allclose(model.forward_dense(x, s), sparse, atol=1e-10)
    xw = model.convs[0].lin(x)
    assert torch.allclose(model.forward_dense(x, s, first_xw=xw), sparse, atol=1e-10)


def edges(a):
    """The edges j -> i of a dense ``a [n, n]`` whose row i holds a_ij, one entry at a time."""
    pairs = [(j, i) for i in range(a.shape[0]) for j in range(a.shape[1]) if a[i, j] != 0]
    index = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).t()
    return index, a[index[1], index[0]]


# Row i holds the weights of the edges j -> i; degrees (row sums) 3, 2, 2; s_ij = a_ij / sqrt(d_i d_j) by hand.
HAND_A = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
HAND_S = torch.tensor([[1 / 3, 2 / 6 ** 0.5, 0.0], [0.0, 1 / 2, 1 / 2], [1 / 6 ** 0.5, 0.0, 1 / 2]],
                      dtype=torch.float64)


def random_adjacency(seed):
    """A non-negative, asymmetric, sparse ``[n, n]`` with a node of no incoming edge (a zero row)."""
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(3, 20, (1,), generator=gen))
    a = torch.rand(n, n, generator=gen, dtype=torch.float64) * (torch.rand(n, n, generator=gen) < 0.4)
    a[int(torch.randint(n, (1,), generator=gen))] = 0
    return a


def normalised_pair(channels, alpha=0.4):
    """``FFGNNConv(normalize=True)`` and the same layer (same W) taking S itself."""
    conv = FFGNNConv(channels, alpha=alpha, normalize=True).double()
    plain = FFGNNConv(channels, alpha=alpha).double()
    plain.load_state_dict(conv.state_dict())
    return conv, plain


def test_normalize_on_a_hand_made_graph():
    assert torch.allclose(normalize_adjacency(HAND_A), HAND_S, atol=1e-15)
    x = torch.randn(3, 4, dtype=torch.float64)
    conv, plain = normalised_pair(4)
    expected = ref_conv(x, *edges(HAND_S), conv.lin.weight.detach(), 0.4)
    assert torch.allclose(plain(x, *edges(HAND_S)), expected, atol=1e-12)
    for adj in (edges(HAND_A), (HAND_A.to_sparse(),), (HAND_A.to_sparse_csr(),)):
        assert torch.allclose(conv(x, *adj), expected, atol=1e-12)
    assert torch.allclose(conv.forward_dense(x[None], HAND_A[None])[0], expected, atol=1e-12)
    assert torch.allclose(conv.forward_dense(x[None], HAND_A[None], anchor_only=True)[0], expected[0], atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_gcn_norm_without_self_loops_is_normalize_adjacency(seed):
    a = random_adjacency(seed)
    n = a.shape[0]
    index, weight = gcn_norm(*edges(a), n, add_self_loops=False)
    s = torch.zeros_like(a)
    s[index[1], index[0]] = weight
    assert torch.allclose(s, normalize_adjacency(a), atol=1e-12)

    x = torch.randn(n, 5, dtype=torch.float64)
    conv, plain = normalised_pair(5)
    expected = ref_conv(x, *edges(normalize_adjacency(a)), conv.lin.weight.detach(), 0.4)
    for adj in (edges(a), (a.to_sparse(),), (a.to_sparse_csr(),)):
        assert torch.allclose(conv(x, *adj), expected, atol=1e-12)
    assert torch.allclose(conv.forward_dense(x[None], a[None])[0], expected, atol=1e-12)
    ones = (a > 0).double()  # no edge_weight: every edge weighs 1
    assert torch.allclose(conv(x, edges(a)[0]), plain(x, *edges(normalize_adjacency(ones))), atol=1e-12)


def test_normalize_permutes_with_the_nodes():
    a = random_adjacency(7)
    n = a.shape[0]
    perm = torch.randperm(n)
    x = torch.randn(n, 5, dtype=torch.float64)
    conv, _ = normalised_pair(5)
    assert torch.allclose(conv(x[perm], *edges(a[perm][:, perm])), conv(x, *edges(a))[perm], atol=1e-12)


def test_without_channels_W_is_the_identity():
    a = random_adjacency(8)
    x = torch.randn(a.shape[0], 5, dtype=torch.float64)
    conv, eye = FFGNNConv(None, alpha=0.4), FFGNNConv(5, alpha=0.4).double()
    torch.nn.init.eye_(eye.lin.weight)
    assert not list(conv.parameters())
    assert torch.allclose(conv(x, *edges(a)), ref_conv(x, *edges(a), torch.eye(5, dtype=torch.float64), 0.4),
                          atol=1e-12)
    assert torch.allclose(conv(x, *edges(a)), eye(x, *edges(a)), atol=1e-12)
    assert torch.allclose(conv.forward_dense(x[None], a[None]), eye.forward_dense(x[None], a[None]), atol=1e-12)
    assert conv(torch.randn(4, 9), torch.tensor([[0, 1], [1, 2]])).shape == (4, 9)  # any width
