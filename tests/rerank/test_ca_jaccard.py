import pytest
import torch
from shared_data import shared_features_path

from reidgraph.evaluation import evaluate_order, evaluate_rank
from reidgraph.rerank import CAJaccard, ca_jaccard, ca_jaccard_dense, k_reciprocal, k_reciprocal_dense


def random_items(n=75, num_cams=4, seed=0):
    """``n`` float64 features in 8-d and camera ids in ``range(num_cams)``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=gen, dtype=torch.float64), torch.randint(0, num_cams, (n,), generator=gen)


def both(x, cams, Q=15, **params):
    """(sparse, dense reference) results for the first ``Q`` items as queries."""
    args = (x[:Q], x[Q:], cams[:Q], cams[Q:])
    return ca_jaccard(*args, chunk_size=7, **params).dense(), ca_jaccard_dense(*args, **params)


def orders(d):
    """Rankings with distances equal to 1e-9 counted as ties: a Jaccard distance is a ratio of sums, and
    the sparse and dense paths add the same terms in different orders, so exact ties can differ by an ulp."""
    return (d / 1e-9).round().argsort(dim=1, stable=True)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("cameras", ["four", "singleton", "one", "own", "two_big"])
@pytest.mark.parametrize("params", [dict(), dict(k1_intra=2, k1_inter=4, k2_intra=2, k2_inter=1),
                                    dict(k1_intra=1, k1_inter=1, k2_intra=1, k2_inter=0),
                                    dict(k1_intra=4, k1_inter=12, k2_intra=2, k2_inter=4, lam=0.0),
                                    dict(k1_intra=30, k1_inter=74, k2_intra=31, k2_inter=75, lam=0.1),
                                    dict(k1_intra=8, k1_inter=10, k2_intra=9, k2_inter=2, lam=1.0)])
def test_sparse_matches_dense_reference(seed, cameras, params):
    x, cams = random_items(seed=seed)
    if cameras == "singleton":  # item 3 (a query) and item 40 (gallery) alone on their cameras
        cams[3], cams[40] = 7, 8
    elif cameras == "one":
        cams[:] = 2
    elif cameras == "own":
        cams = torch.arange(75) * 3
    elif cameras == "two_big":
        cams = torch.arange(75) % 2
    got, expected = both(x, cams, **params)
    assert got.shape == (15, 60)
    assert torch.allclose(got, expected, atol=1e-10)
    assert torch.equal(orders(got), orders(expected))


def test_float32_numpy_input_and_chunks():
    x, cams = random_items(n=60, num_cams=3, seed=2)
    x32 = x.float()
    expected = ca_jaccard_dense(x32[:12], x32[12:], cams[:12], cams[12:])
    result = ca_jaccard(x32[:12].numpy(), x32[12:].numpy(), cams[:12].numpy(), cams[12:].tolist())
    assert isinstance(result, CAJaccard) and result.shape == (12, 48)
    got = result.dense()
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=1e-5)
    chunks = list(result.distance_chunks(5))
    assert [c.shape[0] for c in chunks] == [5, 5, 2]
    assert torch.allclose(torch.cat(chunks), got, atol=1e-6)


@pytest.mark.parametrize("k1, k2", [(5, 3), (3, 3), (2, 1), (1, 1)])
def test_one_camera_is_k_reciprocal_without_the_inter_part(k1, k2):
    # All items on one camera: the inter-camera lists are empty, so R_c(p) = R(p, k1_intra) and
    # CLQE averages the k2_intra nearest items (p first), i.e. k-reciprocal re-ranking with
    # k1 = k1_intra, k2 = k2_intra. Its expansion adds R(q, round(k1/2)) only when more than 2/3
    # of that set (at most 3 items for k1 <= 5) already lies in R(p), so for k1 <= 5 it adds nothing.
    # CA-Jaccard keeps d = 2 - 2 cos, so the comparison is with k-reciprocal's variant="unscaled".
    x, _ = random_items(seed=3)
    cams = torch.full((75,), 4)
    got = ca_jaccard(x[:15], x[15:], cams[:15], cams[15:], k1_intra=k1, k2_intra=k2, k2_inter=7).dense()
    assert torch.allclose(got, k_reciprocal(x[:15], x[15:], k1=k1, k2=k2, variant="unscaled").dense(), atol=1e-12)
    assert torch.allclose(got, k_reciprocal_dense(x[:15], x[15:], k1=k1, k2=k2, variant="unscaled"), atol=1e-12)


@pytest.mark.parametrize("k1_inter, k2_inter", [(4, 2), (2, 0), (1, 1)])
def test_own_cameras_is_k_reciprocal_one_deeper(k1_inter, k2_inter):
    # Every item on its own camera: L_intra(p) = [p] and L_inter(p) = the global list without p, whose
    # k1_inter + 1 first items plus p are N(p, k1_inter + 1). So R_c(p) = R(p, k1_inter + 1) and CLQE
    # averages p and its k2_inter nearest: k-reciprocal with k1 = k1_inter + 1 <= 5 (no expansion, as
    # above) and k2 = k2_inter + 1, whatever k1_intra and k2_intra.
    x, _ = random_items(seed=4)
    cams = torch.arange(75)
    got = ca_jaccard(x[:15], x[15:], cams[:15], cams[15:], k1_intra=6, k1_inter=k1_inter, k2_intra=5,
                     k2_inter=k2_inter, lam=0.2).dense()
    expected = k_reciprocal_dense(x[:15], x[15:], k1=k1_inter + 1, k2=k2_inter + 1, lam=0.2, variant="unscaled")
    assert torch.allclose(got, expected, atol=1e-12)


def test_camera_aware_sets_by_hand():
    # Angles (camera): 0: 0.0 (0), 1: 0.1 (1), 2: 0.15 (0), 3: 1.2 (1), 4: 1.3 (0); item 0 is the query.
    # k1_intra = 1: intra lists [p, nearest same-camera item]: 0 [0, 2], 2 [2, 0], 4 [4, 2], 1 [1, 3],
    # 3 [3, 1], so R_intra = {0, 2}, {0, 2}, {4}, {1, 3}, {1, 3} (4 is not in 2's list).
    # k1_inter = 1: inter lists of 2 other-camera items: 0 [1, 3], 2 [1, 3], 4 [3, 1], 1 [2, 0], 3 [4, 2],
    # so R_inter(0) = {1}, R_inter(1) = {0, 2}, R_inter(2) = {1, 3}, R_inter(3) = {2, 4}, R_inter(4) = {3}.
    # k2_intra = 1, k2_inter = 0: no query expansion.
    theta = torch.tensor([0.0, 0.1, 0.15, 1.2, 1.3], dtype=torch.float64)
    x = torch.stack([theta.cos(), theta.sin()], dim=1)
    cams = torch.tensor([0, 1, 0, 1, 0])
    R_c = [[0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3], [1, 2, 3, 4], [3, 4]]
    d = 2 - 2 * torch.cos(theta[:, None] - theta[None])
    V = torch.zeros(5, 5, dtype=torch.float64)
    for p, members in enumerate(R_c):
        V[p, members] = torch.softmax(-d[p, members], dim=0)
    m = torch.minimum(V[0], V[1:]).sum(dim=1)
    for lam in (0.0, 0.3):
        expected = (1 - lam) * (1 - m / (2 - m)) + lam * d[0, 1:]
        got = ca_jaccard(x[:1], x[1:], cams[:1], cams[1:], k1_intra=1, k1_inter=1, k2_intra=1, k2_inter=0,
                         lam=lam).dense()
        assert torch.allclose(got, expected[None], atol=1e-12)
    assert float(got[0, 3]) == pytest.approx(0.7 + 0.3 * float(d[0, 4]))  # 4 shares nothing with 0


def test_permuting_gallery_permutes_columns_and_camera_names_do_not_matter():
    x, cams = random_items(seed=5)
    query, gallery, q_cams, g_cams = x[:15], x[15:], cams[:15], cams[15:]
    base = ca_jaccard(query, gallery, q_cams, g_cams, k1_intra=3, k1_inter=8).dense()
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    shuffled = ca_jaccard(query, gallery[perm], q_cams, g_cams[perm], k1_intra=3, k1_inter=8).dense()
    assert torch.allclose(shuffled, base[:, perm], atol=1e-12)
    renamed = ca_jaccard(query, gallery, 100 - 7 * q_cams, 100 - 7 * g_cams, k1_intra=3, k1_inter=8).dense()
    assert torch.allclose(renamed, base, atol=1e-12)


def test_improves_map_where_cameras_shift_features():
    # 30 identities x 3 cameras x 3 images; each camera adds its own offset to the features, so plain
    # distances favour same-camera items, which CA-Jaccard is built to correct.
    gen = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(30, 16, generator=gen, dtype=torch.float64), dim=1)
    shift = 0.6 * torch.nn.functional.normalize(torch.randn(3, 16, generator=gen, dtype=torch.float64), dim=1)
    pids = torch.arange(30).repeat_interleave(9)
    cams = torch.arange(3).repeat_interleave(3).repeat(30)
    x = centres[pids] + shift[cams] + 0.22 * torch.randn(270, 16, generator=gen, dtype=torch.float64)
    first = torch.arange(270) % 9 == 0
    labels = (pids[first], pids[~first], cams[first], cams[~first])
    q, g = torch.nn.functional.normalize(x[first], dim=1), torch.nn.functional.normalize(x[~first], dim=1)
    _, plain = evaluate_rank(2 - 2 * q @ g.T, *labels)
    _, kr = evaluate_rank(k_reciprocal(x[first], x[~first], k1=10, k2=3).dense(), *labels)
    _, caj = evaluate_rank(ca_jaccard(x[first], x[~first], cams[first], cams[~first]).dense(), *labels)
    assert caj > plain + 0.1 and caj > kr + 0.05, (plain, kr, caj)


@pytest.mark.parametrize("fn", [ca_jaccard, ca_jaccard_dense])
@pytest.mark.parametrize("change, message", [
    (dict(gallery=torch.full((15, 4), float("nan"))), "gallery: 15 feature vector.*NaN"),
    (dict(query=torch.randn(5, 3)), "query has 3-d features but gallery has 4-d"),
    (dict(query_camids=None), "query_camids is missing; pass one integer camera id per query vector"),
    (dict(gallery_camids=None), "gallery_camids is missing"),
    (dict(gallery_camids=torch.zeros(14, dtype=torch.long)), "gallery_camids has shape \\(14,\\) but gallery has 15"),
    (dict(query_camids=torch.zeros(1, 5, dtype=torch.long)), "query_camids has shape \\(1, 5\\)"),
    (dict(query_camids=torch.zeros(5)), "query_camids must hold integers"),
    (dict(k1_intra=0), "k1_intra=0 is outside \\[1, 19\\]"),
    (dict(k1_inter=20), "k1_inter=20 is outside \\[1, 19\\]"),
    (dict(k1_intra=2, k2_intra=4), "k2_intra=4 is outside \\[1, 3\\]"),
    (dict(k2_intra=0), "k2_intra=0"),
    (dict(k1_inter=3, k2_inter=5), "k2_inter=5 is outside \\[0, 4\\]"),
    (dict(k2_inter=-1), "k2_inter=-1"),
    (dict(k1_inter=2.5), "k1_inter=2.5 must be an integer"),
    (dict(lam=1.5), "lam=1.5 is outside \\[0, 1\\]"),
    (dict(lam=-0.1), "lam=-0.1"),
])
def test_bad_input_raises(fn, change, message):
    gen = torch.Generator().manual_seed(0)
    args = dict(query=torch.randn(5, 4, generator=gen), gallery=torch.randn(15, 4, generator=gen),
                query_camids=torch.zeros(5, dtype=torch.long), gallery_camids=torch.arange(15) % 3,
                k1_intra=3, k1_inter=6) | change
    with pytest.raises(ValueError, match=message) as err:
        fn(**args)
    assert "\n" not in str(err.value)


def test_bad_chunk_size_raises():
    x, cams = random_items(n=20)
    args = (x[:5], x[5:], cams[:5], cams[5:])
    with pytest.raises(ValueError, match="chunk_size=0"):
        ca_jaccard(*args, k1_intra=3, k1_inter=6, chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size=0"):
        next(ca_jaccard(*args, k1_intra=3, k1_inter=6).distance_chunks(0))


@pytest.mark.slow
def test_improves_over_fen_on_real_features():
    val = shared_features_path("osnet_x0_25_msmt17", "val")
    from reidgraph.features import FeatureSet

    query, gallery = FeatureSet.load(val).query_gallery()
    q, g = torch.nn.functional.normalize(query.feats, dim=1), torch.nn.functional.normalize(gallery.feats, dim=1)
    labels = (query.pids, gallery.pids, query.camids, gallery.camids)
    fen = evaluate_order(orders(2 - 2 * q @ g.T), *labels)
    result = ca_jaccard(query.feats, gallery.feats, query.camids, gallery.camids)
    caj = evaluate_order((orders(chunk) for chunk in result.distance_chunks(64)), *labels)
    assert caj.mAP > fen.mAP + 0.01, (fen.mAP, caj.mAP)
    assert caj.cmc[0] >= fen.cmc[0], (fen.cmc[0], caj.cmc[0])
