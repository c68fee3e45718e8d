"""FFGNNConv and FFGNN leave Python: TorchScript and torch.compile(fullgraph=True) match eager."""
import pytest
import torch

from reidgraph.graph import normalize_adjacency
from reidgraph.nn import FFGNN, FFGNNConv, TrainingFreeFusion

# torch >= 2.10 deprecates torch.jit.script (FutureWarning); it still works, and these tests keep it working.
no_jit_deprecation = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


@pytest.fixture
def graph():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 8, generator=gen)
    edge_index = torch.randint(0, 12, (2, 40), generator=gen)
    edge_weight = torch.rand(40, generator=gen)
    return x, edge_index, edge_weight


def trained_stats(model, x, edge_index, edge_weight):
    """Eval mode after one training-mode pass, so BatchNorm's running statistics are not their init."""
    model.train()
    with torch.no_grad():
        model(x, edge_index, edge_weight)
    return model.eval()


@no_jit_deprecation
@pytest.mark.parametrize("channels, normalize", [(8, False), (8, True), (None, False), (None, True)])
def test_conv_scripts(graph, channels, normalize):
    x, edge_index, edge_weight = graph
    conv = FFGNNConv(channels, alpha=0.4, normalize=normalize)
    scripted = torch.jit.script(conv)
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), edge_weight, (12, 12)).coalesce()
    with torch.no_grad():
        for args in ((edge_index, edge_weight), (edge_index,), (adj_t,), (adj_t.to_sparse_csr(),)):
            torch.testing.assert_close(scripted(x, *args), conv(x, *args), atol=1e-6, rtol=0)


@no_jit_deprecation
def test_scripted_normalize_is_normalize_adjacency(graph):
    """The scripted layer with normalize=True on A equals the eager one on S = normalize_adjacency(A)."""
    x, edge_index, edge_weight = graph
    conv, plain = FFGNNConv(8, alpha=0.4, normalize=True), FFGNNConv(8, alpha=0.4)
    plain.load_state_dict(conv.state_dict())
    a = torch.sparse_coo_tensor(edge_index.flip(0), edge_weight, (12, 12)).to_dense()  # row i: a_ij, repeats summed
    s = normalize_adjacency(a)
    target, source = s.nonzero(as_tuple=True)
    expected = plain(x, torch.stack([source, target]), s[target, source])
    scripted = torch.jit.script(conv)
    with torch.no_grad():
        for args in ((edge_index, edge_weight), (a.to_sparse(),), (a.to_sparse_csr(),)):
            torch.testing.assert_close(scripted(x, *args), expected, atol=1e-6, rtol=0)


@no_jit_deprecation
def test_training_free_fusion_scripts(graph):
    x, edge_index, edge_weight = graph
    fusion = TrainingFreeFusion(alpha=0.4, steps=2)
    torch.testing.assert_close(torch.jit.script(fusion)(x, edge_index, edge_weight), fusion(x, edge_index, edge_weight),
                               atol=1e-6, rtol=0)


@no_jit_deprecation
@pytest.mark.parametrize("output", ["batchnorm", "l2"])
def test_ffgnn_scripts(graph, output):
    x, edge_index, edge_weight = graph
    model = trained_stats(FFGNN(8, num_layers=2, output=output), *graph)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x, edge_index, edge_weight), model(x, edge_index, edge_weight),
                                   atol=1e-6, rtol=0)
        torch.testing.assert_close(scripted(x, edge_index), model(x, edge_index), atol=1e-6, rtol=0)


def _compiled_matches(model, graph, backend):
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=backend, fullgraph=True)  # fullgraph: a graph break raises
    with torch.no_grad():
        torch.testing.assert_close(compiled(*graph), model(*graph), atol=1e-6, rtol=0)


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_conv_and_ffgnn_compile_without_graph_breaks(graph, backend):
    _compiled_matches(FFGNNConv(8), graph, backend)
    _compiled_matches(FFGNNConv(8, normalize=True), graph, backend)
    _compiled_matches(trained_stats(FFGNN(8, num_layers=2), *graph), graph, backend)


@pytest.mark.slow
def test_ffgnn_compiles_with_inductor(graph):
    # C++ code generation: ~47 s with a cold inductor cache on two CPU cores (~16 s warm), hence slow.
    _compiled_matches(trained_stats(FFGNN(8, num_layers=2), *graph), graph, "inductor")
