import math

import numpy as np
import pytest
import torch

from reidgraph.evaluation import evaluate_rank
from reidgraph.rerank.kreciprocal import _reciprocal, k_reciprocal, k_reciprocal_dense


def clustered(num_ids, per_id, dim, noise, seed, dtype=torch.float64):
    """Identity centres on the unit sphere plus Gaussian noise; returns (features, pids)."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(num_ids, dim, generator=gen, dtype=dtype), dim=1)
    pids = torch.arange(num_ids).repeat_interleave(per_id)
    pids = pids[torch.randperm(pids.numel(), generator=gen)]
    return centres[pids] + noise * torch.randn(pids.numel(), dim, generator=gen, dtype=dtype), pids


def angles(*theta):
    t = torch.tensor(theta, dtype=torch.float64)
    return torch.stack([t.cos(), t.sin()], dim=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k1, k2, lam", [(6, 3, 0.3), (20, 6, 0.3), (1, 1, 0.5), (5, 5, 0.05), (74, 1, 1.0)])
def test_sparse_matches_dense_reference(seed, k1, k2, lam):
    x, _ = clustered(num_ids=10, per_id=8, dim=8, noise=0.35, seed=seed)
    query, gallery = x[:15], x[15:75]
    expected = k_reciprocal_dense(query, gallery, k1, k2, lam)
    got = k_reciprocal(query, gallery, k1, k2, lam, chunk_size=4).dense()
    assert got.shape == (15, 60)
    assert torch.allclose(got, expected, atol=1e-12)
    assert torch.equal(got.argsort(dim=1, stable=True), expected.argsort(dim=1, stable=True))


def test_defaults_float32_and_numpy_input():
    x, _ = clustered(num_ids=12, per_id=10, dim=16, noise=0.3, seed=3, dtype=torch.float32)
    expected = k_reciprocal_dense(x[:20], x[20:])
    got = k_reciprocal(x[:20].numpy(), x[20:].numpy()).dense()
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=1e-5)


def test_reciprocal_set_by_hand():
    # N(p, 2) of four items, each its own first neighbour; item 3 is nobody's neighbour.
    nbrs = torch.tensor([[0, 1, 2], [1, 0, 2], [2, 1, 0], [3, 2, 1]])
    assert _reciprocal(nbrs).tolist() == [[True, True, True], [True, True, True],
                                          [True, True, True], [True, False, False]]


def test_two_mutual_pairs_by_hand():
    # Items at angles 0 (query), 0.1, 3.0, 3.1: with k1 = k2 = 1 the k-reciprocal sets are
    # {0, 1} and {2, 3}. Row 0 weighs itself 1 and item 1 exp(-d), row 1 the mirror image, so
    # after normalising m = 2 exp(-d) / (1 + exp(-d)); items 2 and 3 share nothing with the query.
    x = angles(0.0, 0.1, 3.0, 3.1)
    d = 2 - 2 * math.cos(0.1)
    m = 2 * math.exp(-d) / (1 + math.exp(-d))
    jaccard = 1 - m / (2 - m)
    for lam in (0.0, 0.25):
        got = k_reciprocal(x[:1], x[1:], k1=1, k2=1, lam=lam).dense()
        expected = torch.tensor([[(1 - lam) * jaccard + lam * d, 1 - lam, 1 - lam]], dtype=torch.float64)
        expected[0, 1:] += lam * (2 - 2 * torch.cos(torch.tensor([3.0, 3.1], dtype=torch.float64)))
        assert torch.allclose(got, expected, atol=1e-12)
        assert torch.allclose(got, k_reciprocal_dense(x[:1], x[1:], k1=1, k2=1, lam=lam), atol=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 15, 1000])
def test_chunks_equal_dense(chunk_size):
    x, _ = clustered(num_ids=10, per_id=8, dim=8, noise=0.35, seed=4)
    result = k_reciprocal(x[:15], x[15:], k1=6, k2=3)
    chunks = list(result.distance_chunks(chunk_size))
    assert [c.shape[0] for c in chunks] == [min(chunk_size, 15 - s) for s in range(0, 15, chunk_size)]
    assert torch.allclose(torch.cat(chunks), result.dense(), atol=1e-12)
    assert result.shape == (15, 65)


@pytest.mark.parametrize("kwargs, message", [
    (dict(k1=0), "k1=0"),
    (dict(k2=0), "k2=0"),
    (dict(k1=5, k2=6), "k2=6"),
    (dict(lam=1.5), "lam=1.5"),
    (dict(lam=-0.1), "lam=-0.1"),
    (dict(k1=20), "k1=20 is outside \\[1, 19\\]"),
    (dict(chunk_size=0), "chunk_size=0"),
])
def test_bad_parameters_raise(kwargs, message):
    x = torch.randn(20, 4)
    args = dict(k1=4, k2=2) | kwargs
    with pytest.raises(ValueError, match=message):
        k_reciprocal(x[:5], x[5:], **args)
    if "chunk_size" not in kwargs:
        with pytest.raises(ValueError, match=message):
            k_reciprocal_dense(x[:5], x[5:], **args)


@pytest.mark.parametrize("fn", [k_reciprocal, k_reciprocal_dense])
def test_bad_features_raise(fn):
    x = torch.randn(20, 4)
    nan = x.clone()
    nan[7, 1] = float("nan")
    with pytest.raises(ValueError, match="gallery: 1 feature vector.*NaN"):
        fn(x[:5], nan[5:], k1=4, k2=2)
    with pytest.raises(ValueError, match="query has 3-d features but gallery has 4-d"):
        fn(x[:5, :3], x[5:], k1=4, k2=2)


def test_improves_map_on_clustered_data():
    x, pids = clustered(num_ids=40, per_id=6, dim=32, noise=0.22, seed=5, dtype=torch.float32)
    camids = torch.arange(pids.numel()) % 3
    first = torch.zeros(pids.numel(), dtype=torch.bool)
    first[np.unique(pids.numpy(), return_index=True)[1]] = True
    query, gallery = x[first], x[~first]
    q_ids, g_ids, q_cams, g_cams = pids[first], pids[~first], camids[first], camids[~first]
    q, g = torch.nn.functional.normalize(query, dim=1), torch.nn.functional.normalize(gallery, dim=1)
    _, plain = evaluate_rank(2 - 2 * q @ g.T, q_ids, g_ids, q_cams, g_cams)
    _, reranked = evaluate_rank(k_reciprocal(query, gallery).dense(), q_ids, g_ids, q_cams, g_cams)
    assert reranked > plain + 0.02, (plain, reranked)
