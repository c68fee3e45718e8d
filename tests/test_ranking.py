"""Ranking: top-k, full orders and distances agree, for plain cosine and FFGNN-style heads."""
import pytest
import torch
import torch.nn.functional as F

from reidgraph.ranking import CosineRanking, HeadRanking, Ranking, ranked_orders, smallest


@pytest.mark.parametrize("seed", range(20))
def test_smallest_is_the_head_of_a_stable_sort_even_with_many_ties(seed):
    g = torch.Generator().manual_seed(seed)
    n, G = 7, int(torch.randint(3, 40, (1,), generator=g))
    dist = torch.randint(0, 4, (n, G), generator=g).float()  # few values: ties everywhere, across the k-th place
    k = int(torch.randint(1, G + 1, (1,), generator=g))
    index, value = smallest(dist, k)
    expected = dist.argsort(dim=1, stable=True)[:, :k]
    assert torch.equal(index, expected)
    assert torch.equal(value, dist.gather(1, expected))


class Table(Ranking):
    """A ranking given by an explicit [Q, G] table."""

    def __init__(self, table):
        self.table = table

    @property
    def shape(self):
        return tuple(self.table.shape)

    def distance_chunks(self, chunk_size=1024):
        for start in range(0, self.table.shape[0], chunk_size):
            yield self.table[start:start + chunk_size].clone()


def test_top_orders_and_dense_agree_across_chunk_sizes():
    table = torch.randint(0, 5, (11, 9)).float()
    ranking = Table(table)
    for chunk in (1, 4, 11):
        index, distance = ranking.top(4, chunk_size=chunk)
        orders = torch.cat(list(ranking.order_chunks(chunk)))
        assert torch.equal(index, orders[:, :4]) and torch.equal(distance, table.gather(1, index))
        assert torch.equal(ranking.dense(chunk), table)
    assert index.dtype == torch.int64 and distance.dtype == torch.float32


def test_top_refuses_more_than_the_gallery():
    with pytest.raises(ValueError, match="gallery holds 9 items"):
        Table(torch.zeros(2, 9)).top(10)
    with pytest.raises(ValueError, match="top"):
        Table(torch.zeros(2, 9)).top(0)


def test_cosine_ranking_is_one_minus_cosine_and_ranked_orders():
    q, g = torch.randn(6, 5), torch.randn(30, 5)
    ranking = CosineRanking(q, g)
    expected = 1 - F.normalize(q, dim=1) @ F.normalize(g, dim=1).T
    assert torch.allclose(ranking.dense(), expected, atol=1e-6)
    orders = torch.cat(list(ranking.order_chunks(4)))
    assert torch.equal(orders, torch.cat(list(ranked_orders(q, g))))
    index, distance = ranking.top(7)
    assert torch.equal(index, orders[:, :7]) and bool((distance[:, 1:] >= distance[:, :-1]).all())


def test_head_ranking_puts_the_head_first_and_distances_follow_the_order():
    torch.manual_seed(0)
    q, g = torch.randn(5, 4), torch.randn(20, 4)
    head = torch.stack([torch.randperm(20)[:6] for _ in range(5)])
    head_distance = torch.rand(5, 6).sort(dim=1).values * 2
    ranking = HeadRanking(q, g, head, head_distance)
    orders = torch.cat(list(ranking.order_chunks(2)))
    dense = ranking.dense(3)
    assert torch.equal(orders[:, :6], head)
    assert torch.equal(dense.gather(1, head), head_distance)
    cos = 1 - F.normalize(q, dim=1) @ F.normalize(g, dim=1).T
    for i in range(5):
        rest = [j for j in range(20) if j not in head[i].tolist()]
        assert torch.allclose(dense[i, rest], 2 + cos[i, rest], atol=1e-6)  # after every head item
    assert torch.equal(dense.argsort(dim=1, stable=True), orders)  # one distance, one order
    for k in (3, 6, 15):
        index, distance = ranking.top(k, chunk_size=2)
        assert torch.equal(index, orders[:, :k]) and torch.allclose(distance, dense.gather(1, index))


@pytest.mark.parametrize("method", ["cosine", "fusion-paper", "k-reciprocal", "ecn", "aqe", "gnn-rerank",
                                    "ca-jaccard"])
def test_evaluate_scores_the_order_of_every_method(method):
    """``Ranking.evaluate`` (counted, no sort) equals scoring the method's full orders."""
    from reidgraph.evaluation import evaluate_order
    from reidgraph.rerank import rerank

    g = torch.Generator().manual_seed(3)
    centres = torch.randn(8, 16, generator=g)
    pids = torch.arange(60) % 8
    feats = centres[pids] + 0.8 * torch.randn(60, 16, generator=g)
    cams = torch.randint(0, 3, (60,), generator=g)
    q, gal = slice(0, 15), slice(15, 60)
    ranking = rerank(method, feats[q], feats[gal], query_camids=cams[q], gallery_camids=cams[gal],
                     params={"K": 10, "k": 4, "tau": 5} if method == "fusion-paper" else None)
    labels = pids[q], pids[gal], cams[q], cams[gal]
    counted, sorted_ = ranking.evaluate(*labels), evaluate_order(ranking.order_chunks(), *labels)
    assert counted.mAP == pytest.approx(sorted_.mAP, abs=1e-12)
    assert counted.mINP == pytest.approx(sorted_.mINP, abs=1e-12)
    assert (counted.cmc == sorted_.cmc).all()
