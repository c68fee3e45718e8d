"""bfloat16 screening keeps rankings on the real shared features (both models): identical top-10 to float32 for
at least 99.9% of ranks, for the all-vs-all kNN and for k-reciprocal's final order; slow."""
import pytest
import torch

from reidgraph.graph import knn
from reidgraph.rerank import k_reciprocal, kreciprocal

pytestmark = pytest.mark.slow


def agreement(a, b) -> float:
    """Share of positions where two ``[Q, k]`` rankings name the same item."""
    return float((a == b).float().mean())


def test_screened_knn_keeps_the_top_10(shared_features):
    train, val = shared_features
    x = torch.cat([train.feats, val.feats]).float()
    screened = knn(x, x, 10, backend="torch", screen=True)[1]
    plain = knn(x, x, 10, backend="torch", screen=False)[1]
    assert agreement(screened, plain) >= 0.999


def test_screened_kreciprocal_keeps_the_top_10(shared_features, monkeypatch):
    """On val query x (val gallery + train images): the screen forced on against the plain float32 pass."""
    train, val = shared_features
    query, gallery = val.query_gallery()
    gallery = torch.cat([gallery.feats, train.feats]).float()
    orders = []
    for screen in (True, False):
        monkeypatch.setattr(kreciprocal, "worth_screening", lambda k, x, screen=screen: screen)
        orders.append(k_reciprocal(query.feats.float(), gallery).top(10)[0])
    assert agreement(*orders) >= 0.999
