import pytest
import torch
from rerank_data import clustered

from reidgraph.evaluation import evaluate_rank
from reidgraph.rerank.ecn import ecn, ecn_dense


@pytest.mark.parametrize("k,t,q", [(5, 2, 3), (25, 3, 8), (1, 1, 2)])
def test_matches_dense_reference(k, t, q):
    query, gallery = clustered()[:2]
    assert torch.allclose(ecn(query, gallery, k, t, q).dense(), ecn_dense(query, gallery, k, t, q), atol=1e-10)


def test_rows_overlapping_every_list_are_min_max_normalised():
    # Tiny N with long lists: every row of R is positive, so its minimum matters.
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(8, 4, generator=gen, dtype=torch.float64)
    assert torch.allclose(ecn(feats[:3], feats[3:], 8, 3, 4).dense(), ecn_dense(feats[:3], feats[3:], 8, 3, 4))


def test_chunk_size_does_not_change_result():
    query, gallery = clustered()[:2]
    result = ecn(query, gallery, 5, 2, 3)
    assert torch.allclose(result.dense(chunk_size=4), result.dense())
    assert [c.shape[0] for c in result.distance_chunks(chunk_size=4)] == [4, 4, 4, 3]


def test_does_not_hurt_map():
    query, gallery, q_pids, g_pids, q_cams, g_cams = clustered()
    base = evaluate_rank(1 - query @ gallery.T, q_pids, g_pids, q_cams, g_cams)[1]
    reranked = evaluate_rank(ecn(query, gallery, 6, 2, 3).dense(), q_pids, g_pids, q_cams, g_cams)[1]
    assert reranked >= base


@pytest.mark.parametrize("params", [dict(k=0), dict(k=76), dict(t=0), dict(k=5, t=6), dict(q=0), dict(q=75),
                                    dict(k=2.5)])
def test_bad_parameters_raise(params):
    query, gallery = clustered()[:2]
    with pytest.raises(ValueError):
        ecn(query, gallery, **params)
