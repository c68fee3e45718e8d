"""k-reciprocal re-ranking: each variant against the public code it names (the numpy transcriptions in
benchmarks/kreciprocal_public.py), the sparse path against the dense one, hand-worked cases and bad input."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reidgraph.evaluation import evaluate_rank
from reidgraph.rerank.kreciprocal import VARIANTS, k_reciprocal, k_reciprocal_dense, reciprocal_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import kreciprocal_public as public  # noqa: E402


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


def re_ranking_of(distance):
    """The public ``re_ranking`` fed ``distance`` of the L2-normalised features."""
    def run(q, g, k1, k2, lam):
        q, g = (f / np.linalg.norm(f, axis=1, keepdims=True) for f in (q, g))
        return public.re_ranking(distance(q, g), distance(q, q), distance(g, g), k1, k2, lam)
    return run


# Each variant and the public code it claims to match (see the kreciprocal module docstring).
PUBLIC = {"torchreid's engine, squared Euclidean": ("torchreid", re_ranking_of(public.INPUTS["squared_euclidean"])),
          "torchreid's engine, cosine": ("torchreid", re_ranking_of(public.INPUTS["cosine"])),
          "Zhong et al.'s feature script": ("zhong", re_ranking_of(public.INPUTS["euclidean"])),
          "fast-reid's evaluator": ("fastreid", public.fastreid_rerank)}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k1, k2, lam", [(20, 6, 0.3), (6, 1, 0.5), (10, 3, 0.8), (1, 1, 0.3), (2, 2, 0.1)])
@pytest.mark.parametrize("code", list(PUBLIC))
def test_each_variant_ranks_as_the_public_code_it_names(seed, k1, k2, lam, code):
    # k1 = 6 checks fast-reid's expansion depth: its lists hold k1 items, yet it expands by round(6 / 2) = 3.
    variant, run = PUBLIC[code]
    x, _ = clustered(num_ids=6, per_id=7, dim=8, noise=0.35, seed=seed)
    query, gallery = x[:12], x[12:]
    expected = torch.from_numpy(run(query.numpy(), gallery.numpy(), k1, k2, lam))
    for got in (k_reciprocal(query, gallery, k1, k2, lam, chunk_size=5, variant=variant).dense(),
                k_reciprocal_dense(query, gallery, k1, k2, lam, variant=variant)):
        assert got.shape == (12, 30)
        assert torch.allclose(got, expected, atol=1e-9, rtol=0)
        assert torch.equal(got.argsort(dim=1, stable=True), expected.argsort(dim=1, stable=True))
    if variant == "torchreid":  # the default
        assert torch.equal(k_reciprocal(query, gallery, k1, k2, lam).dense(), k_reciprocal(
            query, gallery, k1, k2, lam, variant=variant).dense())


def test_fast_reid_ranks_as_no_other_variant():
    """fast-reid's evaluator is not torchreid's re_ranking: no other variant gives its ranking."""
    x, _ = clustered(num_ids=6, per_id=7, dim=8, noise=0.35, seed=0)
    query, gallery = x[:12], x[12:]
    expected = public.fastreid_rerank(query.numpy(), gallery.numpy()).argsort(axis=1, kind="stable")
    for variant in set(VARIANTS) - {"fastreid"}:
        got = k_reciprocal(query, gallery, variant=variant).dense().argsort(dim=1, stable=True).numpy()
        assert not np.array_equal(got, expected), variant


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k1, k2, lam", [(6, 3, 0.3), (20, 6, 0.3), (1, 1, 0.5), (5, 5, 0.05), (74, 1, 1.0)])
def test_sparse_matches_dense_reference(seed, k1, k2, lam, variant):
    x, _ = clustered(num_ids=10, per_id=8, dim=8, noise=0.35, seed=seed)
    query, gallery = x[:15], x[15:75]
    expected = k_reciprocal_dense(query, gallery, k1, k2, lam, variant=variant)
    got = k_reciprocal(query, gallery, k1, k2, lam, chunk_size=4, variant=variant).dense()
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
    # N(p, 2) of four items, each its own first neighbor; item 3 is nobody's neighbor.
    nbrs = torch.tensor([[0, 1, 2], [1, 0, 2], [2, 1, 0], [3, 2, 1]])
    assert reciprocal_mask(nbrs).tolist() == [[True, True, True], [True, True, True],
                                          [True, True, True], [True, False, False]]


@pytest.mark.parametrize("variant", ["zhong", "unscaled"])
def test_two_mutual_pairs_by_hand(variant):
    # Items at angles 0 (query), 0.1, 3.0, 3.1: with k1 = k2 = 1 the k-reciprocal sets are {0, 1} and
    # {2, 3}; items 2 and 3 share nothing with the query. Unscaled, row 0 weighs itself 1 and item 1
    # a = exp(-d), row 1 the mirror image, so after normalising m = 2 a / (1 + a). With variant="zhong" each
    # row divides d by its own farthest distance: item 3 (angle 3.1) for row 0, again item 3 (angle 3.0
    # away) for row 1, so a_0 = exp(-d / s_0) > a_1 = exp(-d / s_1), and of the two shared entries
    # min(1 / (1 + a_0), a_1 / (1 + a_1)) + min(a_0 / (1 + a_0), 1 / (1 + a_1)) = a_1 / (1 + a_1) + a_0 / (1 + a_0).
    x = angles(0.0, 0.1, 3.0, 3.1)
    d = 2 - 2 * math.cos(0.1)
    s_0, s_1 = (2 - 2 * math.cos(3.1), 2 - 2 * math.cos(3.0)) if variant == "zhong" else (1.0, 1.0)
    a_0, a_1 = math.exp(-d / s_0), math.exp(-d / s_1)
    m = a_0 / (1 + a_0) + a_1 / (1 + a_1)
    jaccard = 1 - m / (2 - m)
    for lam in (0.0, 0.25):
        got = k_reciprocal(x[:1], x[1:], k1=1, k2=1, lam=lam, variant=variant).dense()
        expected = torch.tensor([[(1 - lam) * jaccard + lam * d / s_0, 1 - lam, 1 - lam]], dtype=torch.float64)
        expected[0, 1:] += lam * (2 - 2 * torch.cos(torch.tensor([3.0, 3.1], dtype=torch.float64))) / s_0
        assert torch.allclose(got, expected, atol=1e-12)
        assert torch.allclose(got, k_reciprocal_dense(x[:1], x[1:], k1=1, k2=1, lam=lam, variant=variant), atol=1e-12)


def test_identical_items_are_not_divided_by_zero():
    # Every item the same unit vector: every distance, hence every row maximum, is exactly 0, so s_p = 1.
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64).repeat(8, 1)
    for fn in (lambda *a, **k: k_reciprocal(*a, **k).dense(), k_reciprocal_dense):
        got = fn(x[:3], x[3:], k1=3, k2=2, lam=0.3)
        assert torch.isfinite(got).all()
        assert torch.equal(got, fn(x[:3], x[3:], k1=3, k2=2, lam=0.3, variant="unscaled"))


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
    (dict(variant="row"), "^variant='row' is not one of 'torchreid', 'zhong', 'fastreid', 'unscaled'$"),
    (dict(variant=None), "^variant=None is not one of 'torchreid', 'zhong', 'fastreid', 'unscaled'$"),
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


def test_screened_neighbors_give_the_same_ranking(monkeypatch):
    """The bfloat16-screened neighbor pass (used on large float32 inputs) gives the same re-ranked order and,
    up to float32 rounding, the same distances as the plain float32 pass."""
    from reidgraph.rerank import kreciprocal
    x, _ = clustered(num_ids=40, per_id=15, dim=256, noise=0.5, seed=3, dtype=torch.float32)
    query, gallery = x[:100], x[100:]
    results = {}
    for screen in (False, True):
        monkeypatch.setattr(kreciprocal, "worth_screening", lambda k, x, screen=screen: screen)
        results[screen] = k_reciprocal(query, gallery).dense()
    assert torch.allclose(results[True], results[False], atol=1e-5)
    assert torch.equal(results[True].argsort(dim=1, stable=True)[:, :10], results[False].argsort(dim=1, stable=True)[:, :10])


def test_given_neighbors_from_row_blocks_equal_the_one_pass():
    """The all-vs-all pass computed in two row blocks (as two processes do) and given to k_reciprocal gives the
    one-pass result; tables of the wrong shape are refused in one line."""
    from reidgraph.rerank._common import joint_features
    from reidgraph.rerank.kreciprocal import neighbor_pass
    x, _ = clustered(num_ids=8, per_id=6, dim=8, noise=0.35, seed=4)
    query, gallery = x[:10], x[10:]
    joined, _, N = joint_features(query, gallery)
    blocks = [neighbor_pass(joined, 8, rows) for rows in (slice(0, 20), slice(20, N))]
    given = tuple(torch.cat(parts) for parts in zip(*blocks))
    assert torch.equal(k_reciprocal(query, gallery, k1=7, neighbors=given).dense(),
                       k_reciprocal(query, gallery, k1=7).dense())
    with pytest.raises(ValueError, match=r"^neighbors must be \(\[48, 8\], \[48\]\) for 48 items and k1=7"):
        k_reciprocal(query, gallery, k1=7, neighbors=(given[0][:, :5], given[1]))
