import pytest
import torch
from rerank_data import clustered
import torch.nn.functional as F

from reidgraph.evaluation import evaluate_rank
from reidgraph.rerank.query_expansion import average_query_expansion


def reference(query, gallery, n, alpha, expand_gallery):
    """Loop-by-loop AQE / alpha-QE."""
    query, gallery = F.normalize(query, dim=1), F.normalize(gallery, dim=1)

    def expand(x, own_index):
        sims = gallery @ x
        if own_index is not None:
            sims[own_index] = float("-inf")
        total = x.clone()
        for j in sims.argsort(descending=True)[:n]:
            total += (1.0 if alpha is None else max(float(sims[j]), 0.0) ** alpha) * gallery[j]
        return total / total.norm()

    qs = torch.stack([expand(x, None) for x in query])
    gs = torch.stack([expand(x, i) for i, x in enumerate(gallery)]) if expand_gallery else gallery
    return 1 - qs @ gs.T


@pytest.mark.parametrize("n,alpha,expand_gallery", [(1, None, False), (5, None, False), (3, 3.0, False),
                                                    (3, None, True), (4, 0.5, True)])
def test_matches_reference(n, alpha, expand_gallery):
    query, gallery = clustered()[:2]
    result = average_query_expansion(query, gallery, n, alpha, expand_gallery=expand_gallery)
    assert torch.allclose(result.dense(), reference(query, gallery, n, alpha, expand_gallery))


def test_aqe_is_the_mean_direction():
    query, gallery = (F.normalize(x, dim=1) for x in clustered()[:2])
    idx = (query @ gallery.T).topk(2, dim=1).indices
    mean = F.normalize((query + gallery[idx].sum(1)) / 3, dim=1)
    assert torch.allclose(average_query_expansion(query, gallery, 2).dense(), 1 - mean @ gallery.T)


def test_chunk_size_does_not_change_result():
    query, gallery = clustered()[:2]
    result = average_query_expansion(query, gallery, 3, expand_gallery=True)
    assert torch.allclose(result.dense(chunk_size=4), result.dense())


@pytest.mark.parametrize("alpha", [None, 3.0])
def test_does_not_hurt_map(alpha):
    query, gallery, q_pids, g_pids, q_cams, g_cams = clustered()
    base = evaluate_rank(1 - query @ gallery.T, q_pids, g_pids, q_cams, g_cams)[1]
    result = average_query_expansion(query, gallery, 2, alpha, expand_gallery=True)
    assert evaluate_rank(result.dense(), q_pids, g_pids, q_cams, g_cams)[1] >= base


@pytest.mark.parametrize("params", [dict(n=0), dict(n=61), dict(n=60, expand_gallery=True), dict(alpha=-1.0),
                                    dict(alpha="3"), dict(n=True)])
def test_bad_parameters_raise(params):
    query, gallery = clustered()[:2]
    with pytest.raises(ValueError):
        average_query_expansion(query, gallery, **params)
