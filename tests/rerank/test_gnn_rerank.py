import pytest
import torch
from rerank_data import clustered

from reidgraph.evaluation import evaluate_rank
from reidgraph.rerank.gnn_rerank import gnn_rerank, gnn_rerank_dense


@pytest.mark.parametrize("k1,k2", [(6, 3), (26, 7), (4, 1), (1, 1), (75, 75)])
def test_matches_dense_reference(k1, k2):
    query, gallery = clustered()[:2]
    assert torch.allclose(gnn_rerank(query, gallery, k1, k2).dense(), gnn_rerank_dense(query, gallery, k1, k2))


def test_chunk_size_does_not_change_result():
    query, gallery = clustered()[:2]
    result = gnn_rerank(query, gallery, 6, 3)
    assert torch.allclose(result.dense(chunk_size=4), result.dense())
    assert [c.shape[0] for c in result.distance_chunks(chunk_size=4)] == [4, 4, 4, 3]


def test_float32_matches_float64():
    query, gallery = clustered()[:2]
    assert torch.allclose(gnn_rerank(query.float(), gallery.float(), 6, 3).dense().double(),
                          gnn_rerank(query, gallery, 6, 3).dense(), atol=1e-5)


def test_does_not_hurt_map():
    query, gallery, q_pids, g_pids, q_cams, g_cams = clustered()
    base = evaluate_rank(1 - query @ gallery.T, q_pids, g_pids, q_cams, g_cams)[1]
    reranked = evaluate_rank(gnn_rerank(query, gallery, 6, 3).dense(), q_pids, g_pids, q_cams, g_cams)[1]
    assert reranked >= base


@pytest.mark.parametrize("params", [dict(k1=0), dict(k1=76), dict(k2=0), dict(k1=5, k2=6), dict(k2=1.0)])
def test_bad_parameters_raise(params):
    query, gallery = clustered()[:2]
    with pytest.raises(ValueError):
        gnn_rerank(query, gallery, **params)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    query, gallery = clustered()[:2]
    cpu = gnn_rerank(query, gallery, 6, 3).dense()
    assert torch.allclose(gnn_rerank(query.cuda(), gallery.cuda(), 6, 3).dense().cpu(), cpu)


def test_an_all_zero_feature_row_stays_finite():
    """A zero row has zero similarity to everything, so a zero propagated row: distance 1 to every item, never the
    NaN that 0/0 would spread to every distance."""
    q, g = torch.randn(4, 8), torch.randn(30, 8)
    g[3] = 0
    d = torch.cat(list(gnn_rerank(q, g, k1=6, k2=3).distance_chunks()))
    assert bool(d.isfinite().all())
    assert torch.allclose(d[:, 3], torch.ones(4))
