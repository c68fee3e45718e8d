import pytest
import torch

from reidgraph.graph import knn
from reidgraph.graph.optional import faiss_available, keops_available, keops_runs


def brute_force(q, g, k):
    """Every pair's cosine, one at a time, then a full sort."""
    out = []
    for qi in q:
        sims = [float(qi @ gj / (qi.norm() * gj.norm())) for gj in g]
        out.append(sorted(range(len(g)), key=lambda j: -sims[j])[:k])
    return torch.tensor(out)


def test_torch_backend_matches_brute_force_and_chunks_agree():
    g = torch.randn(60, 7, dtype=torch.float64)
    q = torch.randn(13, 7, dtype=torch.float64)
    sim, idx = knn(q, g, 9, backend="torch")
    assert idx.tolist() == brute_force(q, g, 9).tolist()
    assert torch.allclose(sim, torch.nn.functional.cosine_similarity(q[:, None], g[idx], dim=-1))
    for chunk in (1, 4, 100):
        assert torch.equal(knn(q, g, 9, backend="torch", chunk_size=chunk)[1], idx)


def test_exclude_self_and_exclude_index():
    g = torch.randn(30, 5)
    _, idx = knn(g, g, 4, exclude="self", backend="torch")
    assert not (idx == torch.arange(30)[:, None]).any()
    assert idx.tolist() == [row[1:5] for row in brute_force(g, g, 5).tolist()]
    anchors = torch.tensor([3, 7, -1])
    _, idx2 = knn(g[[3, 7, 0]], g, 4, exclude=anchors, backend="torch")
    assert idx2[0].tolist() == idx[3].tolist() and idx2[1].tolist() == idx[7].tolist()
    assert idx2[2, 0].item() == 0  # nothing excluded for the third query: it finds itself


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_keops_matches_torch(device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if not keops_available():
        pytest.skip("pykeops is not installed")
    if not keops_runs(device):
        pytest.skip(f"KeOps fails its self-test on {device} (see keops_runs)")
    g = torch.randn(200, 16, device=device)
    q = torch.randn(20, 16, device=device)
    s_t, i_t = knn(q, g, 10, backend="torch")
    s_k, i_k = knn(q, g, 10, backend="keops")
    assert torch.equal(i_t, i_k)
    assert torch.allclose(s_t, s_k, atol=1e-5)
    own = torch.arange(20, device=device)
    _, i_self = knn(g[:20], g, 10, exclude=own, backend="keops")
    assert torch.equal(i_self, knn(g[:20], g, 10, exclude=own, backend="torch")[1])


def exact_topk(q, g, k, exclude=None):
    """Top-k by float64 cosine, the excluded column (if any) left out."""
    sim = torch.nn.functional.normalize(q.double(), dim=1) @ torch.nn.functional.normalize(g.double(), dim=1).T
    if exclude is not None:
        sim[torch.arange(len(q)), exclude] = float("-inf")
    return sim.topk(k, dim=1).indices


@pytest.mark.parametrize("spread", [1.0, 0.05])
def test_screened_knn_is_exact(spread, monkeypatch):
    """A bfloat16 screen + refinement returns the exact top-k, also where the scores are packed so
    tightly (gaps far below bfloat16's resolution) that rows must be redone. float64 features, so
    that the refinement and the reference agree to the last bit of the ranking."""
    from reidgraph.graph import search
    torch.manual_seed(0)
    centre = torch.randn(1, 64, dtype=torch.float64)
    g = centre + spread * torch.randn(2000, 64, dtype=torch.float64)
    q = centre + spread * torch.randn(40, 64, dtype=torch.float64)
    redone = []
    masked = search.mask_excluded
    monkeypatch.setattr(search, "mask_excluded", lambda sim, own: redone.append(sim.shape[0]) or masked(sim, own))
    sim, idx = knn(q, g, 7, backend="torch", screen=True, chunk_size=16)
    assert torch.equal(idx, exact_topk(q, g, 7))
    assert torch.allclose(sim, torch.nn.functional.cosine_similarity(q[:, None], g[idx], dim=-1))
    # the wide spread passes the certificate everywhere (only the screen's own mask runs);
    # the tight one fails it and takes the float32 fallback
    assert (sum(redone) > 40) == (spread < 1)
    own = torch.arange(40)
    _, idx = knn(g[:40], g, 7, backend="torch", screen=True, exclude=own)
    assert torch.equal(idx, exact_topk(g[:40], g, 7, exclude=own))


@pytest.mark.parametrize("spread", [1.0, 0.05])
def test_screened_extremes_are_exact(spread, monkeypatch):
    """The top-k and the row minimum from one bfloat16 screen equal float64 search, on wide scores (certified
    at once) and packed ones (rows redone in full); float64 features, so the refinement is exact."""
    from reidgraph.graph import search
    torch.manual_seed(1)
    centre = torch.randn(1, 64, dtype=torch.float64)
    g = torch.nn.functional.normalize(centre + spread * torch.randn(1500, 64, dtype=torch.float64), dim=1)
    q = g[:50]
    products = []  # rows of each matmul: the screen's, then those of rows redone in full
    monkeypatch.setattr(search.Tensor, "__matmul__", lambda a, b: products.append(a.shape[0]) or torch.matmul(a, b))
    sim, idx, lowest = search.screened_extremes(q, g, 9)
    monkeypatch.undo()
    exact = q @ g.T
    assert torch.equal(idx, exact.topk(9, dim=1).indices)
    assert torch.allclose(sim, exact.topk(9, dim=1).values)
    assert torch.allclose(lowest, exact.min(dim=1).values, rtol=0, atol=1e-12)
    assert products[0] == 50 and (len(products) > 1) == (spread < 1)


def test_screening_rule():
    from reidgraph.graph.search import fast_bfloat16, worth_screening
    big = torch.randn(20000, 512)
    assert not worth_screening(21, torch.randn(20000, 64))            # too few dimensions
    assert not worth_screening(150, torch.randn(20000, 512))          # k too large for the gallery
    assert not worth_screening(21, big.double())                      # float64 stays exact float64
    assert worth_screening(21, big) == fast_bfloat16("cpu")


@pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
def test_faiss_matches_torch():
    g, q = torch.randn(500, 32), torch.randn(30, 32)
    assert torch.equal(knn(q, g, 8, backend="faiss")[1], knn(q, g, 8, backend="torch")[1])
    own = torch.arange(30)
    assert torch.equal(knn(g[:30], g, 8, backend="faiss", exclude=own)[1], exact_topk(g[:30], g, 8, own))


def test_auto_is_torch_on_cpu():
    from reidgraph.graph.search import resolve_backend
    assert resolve_backend("auto", torch.device("cpu")) == "torch"


@pytest.mark.parametrize("args,kwargs,match", [
    ((torch.randn(3, 4), torch.randn(5, 4), 6), {}, r"k=6 is outside \[1, 5\].*5 neighbors"),
    ((torch.randn(5, 4), torch.randn(5, 4), 5), {"exclude": "self"}, r"outside \[1, 4\]"),
    ((torch.randn(3, 4), torch.randn(5, 3), 2), {}, "query has 4-d features but gallery has 3-d"),
    ((torch.randn(0, 4), torch.randn(5, 4), 2), {}, "query: is empty"),
    ((torch.randn(3, 4), torch.randn(0, 4), 2), {}, "gallery: is empty"),
    ((torch.full((3, 4), float("inf")), torch.randn(5, 4), 2), {}, "query: 3 feature vector"),
    ((torch.randn(3, 4), torch.randn(5, 4), 2), {"backend": "annoy"}, "backend='annoy' is unknown"),
    ((torch.randn(3, 4), torch.randn(5, 4), 2), {"exclude": "self"}, "same set"),
])
def test_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        knn(*args, **kwargs)


def test_missing_keops_is_explained(monkeypatch):
    import reidgraph.graph.search as knn_module
    monkeypatch.setattr(knn_module, "keops_available", lambda: False)
    with pytest.raises(ValueError, match="pip install pykeops"):
        knn(torch.randn(3, 4), torch.randn(5, 4), 2, backend="keops")


def test_keops_without_its_cuda_toolchain_is_refused_on_cuda(monkeypatch):
    """pykeops that found no nvrtc would run its CPU kernel on CUDA pointers (a crash): explicit 'keops' on CUDA
    is a one-line error, and 'auto' picks torch without running the self-test."""
    import reidgraph.graph.search as knn_module
    if not keops_available():
        pytest.skip("pykeops is not installed")
    import pykeops.config
    monkeypatch.setattr(pykeops.config, "gpu_available", False)
    monkeypatch.setattr(knn_module, "keops_runs", lambda device_type: pytest.fail("the self-test ran"))
    cuda = torch.device("cuda")
    with pytest.raises(ValueError, match=r"^backend='keops' on CUDA: pykeops found no CUDA compiler \(nvrtc\)"):
        knn_module.resolve_backend("keops", cuda)
    assert knn_module.resolve_backend("auto", cuda) == "torch"
    assert knn_module.resolve_backend("keops", torch.device("cpu")) == "keops"
