"""What every re-ranking method shares: input checks and chunking."""
import pytest
import torch
from rerank_data import clustered

from reidgraph.rerank import average_query_expansion, ecn, gnn_rerank, k_reciprocal

METHODS = [k_reciprocal, ecn, average_query_expansion, gnn_rerank]


@pytest.mark.parametrize("method", METHODS)
def test_bad_features_raise(method):
    query, gallery = clustered()[:2]
    with pytest.raises(ValueError, match="NaN"):
        method(query, torch.full_like(gallery, float("nan")))
    with pytest.raises(ValueError, match="query has"):
        method(query[:, :4], gallery)
