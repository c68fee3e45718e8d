"""`reidgraph index` and `reidgraph rerank --index`: an approximate kNN index built once, searched by rerank."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reidgraph.cli import main
from reidgraph.graph import AnnIndex
from reidgraph.rerank import rerank

pytest.importorskip("faiss")


@pytest.fixture
def files(tmp_path):
    """A 2,000-image label-free gallery and 30 queries, with no cluster structure for an index to exploit."""
    g = torch.Generator().manual_seed(0)
    gallery, query = torch.randn(2000, 16, generator=g), torch.randn(30, 16, generator=g)
    camids = torch.arange(2000) % 3
    np.savez(tmp_path / "g.npz", feats=gallery.numpy(), camids=camids.numpy())
    np.savez(tmp_path / "q.npz", feats=query.numpy(), camids=(torch.arange(30) % 3).numpy())
    return tmp_path, query, gallery


def run(*args):
    return main([*map(str, args), "--quiet"])


def test_cosine_ranks_what_a_lossy_index_finds_by_exact_cosine(files, capsys):
    tmp_path, query, gallery = files
    # One cell of 8 (about 250 items, more than the 150 cosine searches) scanned: the index misses true
    # neighbors, so its lists differ from exact search.
    assert run("index", "--gallery", tmp_path / "g.npz", "--nlist", 8, "--nprobe", 1, "--out", tmp_path / "g.ann") == 0
    assert "AnnIndex(ivf, 2000 x 16" in capsys.readouterr().out
    assert run("rerank", "--query", tmp_path / "q.npz", "--gallery", tmp_path / "g.npz", "--method", "cosine",
               "--index", tmp_path / "g.ann", "--top", 20, "--out", tmp_path / "r.npz") == 0
    found = AnnIndex.load(tmp_path / "g.ann").search(query, 150)[1]
    q, g = F.normalize(query, dim=1), F.normalize(gallery, dim=1)
    with np.load(tmp_path / "r.npz") as data:
        index, distance = data["index"], data["distance"]
    exact = rerank("cosine", query, gallery).top(20)[0].numpy()
    assert (index != exact).any()  # the index is lossy
    for i in range(len(query)):
        expected = sorted(found[i].tolist(), key=lambda j: 1 - float(q[i] @ g[j]))[:20]
        assert set(index[i]) <= set(found[i].tolist())
        assert np.allclose(distance[i], [1 - float(q[i] @ g[j]) for j in expected], atol=1e-6)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_fusion_with_an_exact_index_equals_exact_search(files, kind):
    tmp_path, query, gallery = files
    setting = ["--nprobe", 32, "--nlist", 32] if kind == "ivf" else ["--ef-search", 2000]
    assert run("index", "--gallery", tmp_path / "g.npz", "--kind", kind, *setting, "--out", tmp_path / "g.ann") == 0
    graph = ["--param", "K=30", "--param", "k=8", "--param", "tau=8"]
    for out, extra in (("a.npz", ["--index", tmp_path / "g.ann"]), ("b.npz", [])):
        assert run("rerank", "--query", tmp_path / "q.npz", "--gallery", tmp_path / "g.npz", "--method",
                   "fusion-paper", *graph, *extra, "--top", 30, "--out", tmp_path / out) == 0
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert np.array_equal(a["index"], b["index"]) and np.allclose(a["distance"], b["distance"], atol=1e-6)


def test_fusion_searches_its_K_from_the_index(files):
    tmp_path, query, gallery = files
    index = AnnIndex.build(gallery, "ivf", {"nlist": 32, "nprobe": 2})
    params = {"K": 30, "k": 8, "tau": 8}
    ours = rerank("fusion-paper", query, gallery, params=params, index=index)
    from reidgraph.nn import TrainingFreeFusion, ffgnn_rerank
    from reidgraph.graph import GraphSettings
    expected = ffgnn_rerank(TrainingFreeFusion(0.3, 3), query, gallery, GraphSettings(K=30, k=8, tau=8),
                            neighbors=index.search(query, 30)[1])
    assert torch.equal(ours.index, expected.index)
    assert set(ours.index[0].tolist()) == set(index.search(query[:1], 30)[1][0].tolist())


@pytest.mark.parametrize("args, message", [
    (["rerank", "--method", "ecn", "--index", "{d}/g.ann"], "method 'ecn' compares every image with every other"),
    (["rerank", "--method", "cosine", "--index", "{d}/none.ann"], "none.ann not found; build an index"),
    (["rerank", "--method", "cosine", "--index", "{d}/narrow.ann"], "was built over 2000 gallery items of 8-d"),
    (["index", "--kind", "hnsw", "--nlist", "8"], "--nlist is a setting of ivf indexes, not hnsw"),
    (["index", "--nprobe", "0"], "nprobe"),
])
def test_bad_index_input_is_one_line(files, capsys, args, message):
    tmp_path, _, gallery = files
    AnnIndex.build(gallery, "ivf").save(tmp_path / "g.ann")
    AnnIndex.build(gallery[:, :8], "ivf").save(tmp_path / "narrow.ann")
    args = [a.format(d=tmp_path) for a in args]
    io = ["--query", tmp_path / "q.npz", "--gallery", tmp_path / "g.npz"] if args[0] == "rerank" else \
        ["--gallery", tmp_path / "g.npz"]
    assert run(*args, *io, "--out", tmp_path / "out.npz") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"reidgraph {args[0]}: error: ") and message in err and "\n" not in err
