"""Approximate kNN (reidgraph/graph/ann.py): recall, exactness limits, save/load checks, errors."""
import json

import pytest
import torch

faiss = pytest.importorskip("faiss", reason="faiss is not installed: `pip install faiss-cpu` to test the ANN indexes")

from reidgraph.graph import AnnIndex, HNSWSettings, IVFSettings, knn  # noqa: E402
from reidgraph.graph.ann import _MAGIC  # noqa: E402


def clustered(n, dim=32, ids=40, seed=0, latent=8):
    """Identity clusters in an 8-d subspace of ``dim`` (ReID features have a low intrinsic dimension;
    isotropic clusters in 32-d would make every within-cluster neighbor nearly equidistant)."""
    shared, g = torch.Generator().manual_seed(0), torch.Generator().manual_seed(seed)
    centres, lift = torch.randn(ids, latent, generator=shared), torch.randn(latent, dim, generator=shared)
    z = centres[torch.randint(ids, (n,), generator=g)] + 0.5 * torch.randn(n, latent, generator=g)
    return z @ lift + 0.05 * torch.randn(n, dim, generator=g)


@pytest.fixture(scope="module")
def data():
    return clustered(3000, seed=0), clustered(100, seed=1)


def exact_up_to_rounding(found, exact):
    """The same neighbors as exact search: equal similarities rank by rank (near-ties may swap order)."""
    return torch.allclose(found[0], exact[0], atol=1e-5) and recall(found[1], exact[1]) > 0.99


def recall(found, exact):
    return sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, exact)) / exact.numel()


@pytest.mark.parametrize("kind,settings", [("ivf", {"nprobe": 16}), ("hnsw", None)])
def test_recall_against_exact_on_clustered_data(data, kind, settings):
    gallery, query = data
    exact = knn(query, gallery, 20, backend="torch")[1]
    sims, idx = knn(query, gallery, 20, backend=kind, ann=settings)  # ivf: 16 of 76 cells
    assert sims.shape == idx.shape == (100, 20) and sims.dtype == torch.float32 and idx.dtype == torch.int64
    assert recall(idx, exact) > 0.99
    assert bool((sims[:, :-1] >= sims[:, 1:]).all())  # best first
    # the similarities of the items found are exact cosines
    cos = torch.nn.functional.normalize(query, dim=1)[:, None].mul(
        torch.nn.functional.normalize(gallery, dim=1)[idx]).sum(-1)
    assert torch.allclose(sims, cos, atol=1e-5)


def test_ivf_with_every_cell_probed_is_exact(data):
    gallery, query = data
    found = knn(query, gallery, 20, backend="ivf", ann={"nlist": 16, "nprobe": 16})
    assert exact_up_to_rounding(found, knn(query, gallery, 20, backend="torch"))


def test_small_gallery_default_is_exact(data):
    # under ~2,500 items the default nprobe reaches nlist: nothing is approximated
    gallery, query = data[0][:1000], data[1]
    index = AnnIndex.build(gallery, "ivf")
    assert index.nprobe(20) == index.settings.nlist
    assert exact_up_to_rounding(index.search(query, 20), knn(query, gallery, 20, backend="torch"))


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_exclude(data, kind):
    gallery = data[0]
    own = torch.arange(0, 3000, 30)
    _, idx = knn(gallery[own], gallery, 10, backend=kind, exclude=own)
    assert not bool((idx == own[:, None]).any())
    assert recall(idx, knn(gallery[own], gallery, 10, backend="torch", exclude=own)[1]) > 0.97
    _, idx = knn(gallery[:200], gallery[:200], 5, backend=kind, exclude="self")
    assert not bool((idx == torch.arange(200)[:, None]).any())
    exact = AnnIndex.build(gallery, "ivf", IVFSettings(nlist=8, nprobe=8)).search(gallery[own], 10, exclude=own)
    assert exact_up_to_rounding(exact, knn(gallery[own], gallery, 10, backend="torch", exclude=own))


def test_rows_left_short_are_filled_exactly(data):
    gallery, query = data
    # one probed cell of ~40 items cannot hold 150 neighbors: those rows are searched again exactly
    index = AnnIndex.build(gallery, "ivf", {"nlist": 76, "nprobe": 1})
    s, i = index.search(query, 150)
    assert bool((i >= 0).all()) and all(len(set(row.tolist())) == 150 for row in i)
    assert exact_up_to_rounding((s, i), knn(query, gallery, 150, backend="torch"))


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_prebuilt_index_and_save_load_roundtrip(data, kind, tmp_path):
    gallery, query = data
    index = AnnIndex.build(gallery, kind, progress=False, chunk_size=700)  # several chunks
    before = knn(query, gallery, 30, backend=kind, ann=index)
    assert torch.equal(before[1], index.search(query, 30)[1])
    path = tmp_path / "gallery.ann"
    index.save(path)
    assert path.is_file() and not list(tmp_path.glob(".*.tmp")) and index.path == path
    loaded = AnnIndex.load(path, dim=32, size=3000)
    assert (loaded.kind, loaded.dim, loaded.size, loaded.settings) == (kind, 32, 3000, index.settings)
    after = knn(query, gallery, 30, backend=kind, ann=loaded)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])


def one_line(err):
    return "\n" not in str(err.value)


def test_load_refuses_another_dim_size_or_metric(data, tmp_path):
    gallery, query = data
    path = tmp_path / "g.ann"
    AnnIndex.build(gallery, "ivf").save(path)
    for kwargs, words in [({"dim": 64}, "not 64-d features"), ({"size": 2999}, "not a gallery of 2999")]:
        with pytest.raises(ValueError, match=words) as err:
            AnnIndex.load(path, **kwargs)
        assert str(path) in str(err.value) and "rebuild it" in str(err.value) and one_line(err)
    loaded = AnnIndex.load(path)
    with pytest.raises(ValueError, match=f"{path}.*not a gallery of 2000") as err:
        knn(query, gallery[:2000], 5, backend="ivf", ann=loaded)
    assert one_line(err)
    with pytest.raises(ValueError, match="query has 16-d features"):
        loaded.search(torch.randn(3, 16), 5)

    # metadata naming another metric
    raw = path.read_bytes()
    head, meta, rest = raw.split(b"\n", 2)
    meta = json.loads(meta)
    other = tmp_path / "l2.ann"
    other.write_bytes(head + b"\n" + json.dumps({**meta, "metric": "l2"}).encode() + b"\n" + rest)
    with pytest.raises(ValueError, match=f"{other} was built for metric 'l2'.*cosine") as err:
        AnnIndex.load(other)
    assert one_line(err)
    # a faiss index of another metric behind our metadata
    l2 = faiss.IndexHNSWFlat(32, 8)
    l2.add(gallery[:100].numpy())
    AnnIndex(l2, "hnsw", HNSWSettings(M=8)).save(tmp_path / "l2index.ann")
    with pytest.raises(ValueError, match="metric type 1, not inner product") as err:
        AnnIndex.load(tmp_path / "l2index.ann")
    assert one_line(err)
    # a newer format
    newer = tmp_path / "newer.ann"
    newer.write_bytes(head + b"\n" + json.dumps({**meta, "format": 99}).encode() + b"\n" + rest)
    with pytest.raises(ValueError, match="format 99, newer than this reidgraph reads"):
        AnnIndex.load(newer)


def test_load_refuses_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ann not found"):
        AnnIndex.load(tmp_path / "nope.ann")
    junk = tmp_path / "junk.ann"
    junk.write_bytes(b"not an index\n")
    with pytest.raises(ValueError, match="junk.ann is not a reidgraph ANN index") as err:
        AnnIndex.load(junk)
    assert one_line(err)
    broken = tmp_path / "broken.ann"
    broken.write_bytes(_MAGIC + json.dumps({"format": 1, "kind": "ivf", "metric": "cosine", "dim": 4, "size": 9,
                                            "settings": {}}).encode() + b"\ngarbage")
    with pytest.raises(ValueError, match="broken.ann: its faiss index cannot be read") as err:
        AnnIndex.load(broken)
    assert one_line(err)


def test_failed_save_leaves_the_old_file(data, tmp_path, monkeypatch):
    gallery = data[0][:500]
    path = tmp_path / "g.ann"
    AnnIndex.build(gallery, "hnsw").save(path)
    before = path.read_bytes()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", fail)
    with pytest.raises(OSError, match="disk full"):
        AnnIndex.build(gallery[:300], "hnsw").save(path)
    assert path.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("call,match", [
    (lambda g, q: AnnIndex.build(g, "ivf", {"nlist": 16, "nprobe": 17}), r"nprobe=17 is outside \[1, 16\].*nlist=16"),
    (lambda g, q: AnnIndex.build(g, "ivf", {"nlist": 5000}), r"nlist=5000 is outside \[1, 3000\]"),
    (lambda g, q: AnnIndex.build(g, "ivf", {"nlist": 64, "train_size": 10}), r"train_size=10 is outside \[64, 3000\]"),
    (lambda g, q: AnnIndex.build(g, "ivf", {"probes": 3}), "ivf index has no setting 'probes'; it takes: nlist"),
    (lambda g, q: AnnIndex.build(g, "hnsw", HNSWSettings(M=1)), r"M=1 is outside \[2, 1024\]"),
    (lambda g, q: AnnIndex.build(g, "hnsw", IVFSettings()), "must be HNSWSettings or a dict"),
    (lambda g, q: AnnIndex.build(g, "lsh"), "kind='lsh' is unknown; choose one of ivf, hnsw"),
    (lambda g, q: AnnIndex.build(g[:100], "hnsw").search(q, 101), r"k=101 is outside \[1, 100\]"),
    (lambda g, q: AnnIndex.build(g[:100], "hnsw").search(q[:3], 100, exclude=torch.zeros(3)), r"outside \[1, 99\]"),
    (lambda g, q: AnnIndex.build(g[:100], "hnsw").tune(q, 5, target=1.5), r"target=1.5 is outside \(0, 1\]"),
    (lambda g, q: knn(q, g, 5, backend="torch", ann={"nlist": 4}), "ann= applies to backend='ivf' or 'hnsw'"),
    (lambda g, q: knn(q, g, 5, backend="ivf", ann=AnnIndex.build(g, "hnsw")), "pass backend='hnsw' with it"),
    (lambda g, q: knn(q, g, 3001, backend="ivf"), r"k=3001 is outside \[1, 3000\]"),
])
def test_bad_parameters_are_refused(data, call, match):
    with pytest.raises(ValueError, match=match) as err:
        call(*data)
    assert one_line(err)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_tune_reaches_the_target(data, kind):
    gallery, query = data
    index = AnnIndex.build(gallery, kind, {"nlist": 76} if kind == "ivf" else {"M": 8, "ef_construction": 16})
    reached = index.tune(query, 50, target=0.995)
    assert reached >= 0.995
    setting = index.settings.nprobe if kind == "ivf" else index.settings.ef_search
    assert setting is not None
    exact = knn(query, gallery, 50, backend="torch")[1]
    assert recall(index.search(query, 50)[1], exact) >= 0.99


def test_missing_faiss_is_explained(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    for call in (lambda: AnnIndex.build(torch.randn(50, 4), "hnsw"),
                 lambda: knn(torch.randn(3, 4), torch.randn(50, 4), 2, backend="ivf"),
                 lambda: knn(torch.randn(3, 4), torch.randn(50, 4), 2, backend="faiss")):
        with pytest.raises(ValueError, match=r"needs faiss, which is not installed; run `pip install faiss-cpu`"):
            call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_come_back_on_their_device(data):
    gallery, query = (x.cuda() for x in data)
    s, i = knn(query, gallery, 10, backend="hnsw")
    assert s.is_cuda and i.is_cuda


def test_an_index_over_another_gallery_of_the_same_shape_is_refused(data, tmp_path):
    gallery, _ = data
    AnnIndex.build(gallery, "hnsw").save(tmp_path / "g.ann")
    loaded = AnnIndex.load(tmp_path / "g.ann")
    assert loaded.check(gallery) is loaded
    other = gallery.flip(0)  # the same items in another order: another gallery to an index of positions
    with pytest.raises(ValueError, match="built over other gallery features of the same size"):
        loaded.check(other)


def test_ids_a_damaged_index_returns_are_refused(data, monkeypatch):
    gallery, query = data
    index = AnnIndex.build(gallery, "hnsw")
    raw = AnnIndex._raw

    for damage in (lambda idx: idx.__setitem__((0, 1), idx[0, 0]), lambda idx: idx.__setitem__((2, 3), 10**6)):
        def damaged(self, x, n, params, damage=damage):
            sim, idx = raw(self, x, n, params)
            damage(idx)
            return sim, idx

        monkeypatch.setattr(AnnIndex, "_raw", damaged)
        with pytest.raises(ValueError, match="damaged or not what reidgraph wrote") as err:
            index.search(query, 10)
        assert "\n" not in str(err.value)
