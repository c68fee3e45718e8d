"""The NeighborhoodGraph transform."""
import torch
from torch_geometric.data import Data

from reidgraph.graph import GraphSettings, NeighborhoodGraph, build_graphs

SMALL = GraphSettings(K=12, k=4, tau=5)


def test_transform_equals_builder():
    torch.manual_seed(0)
    q, g = torch.randn(10, 8), torch.randn(40, 8)
    built = build_graphs(q, g, SMALL)[2]
    data = NeighborhoodGraph(SMALL)(Data(x=built.x.clone()))
    assert torch.equal(data.edge_index, built.edge_index)
    assert torch.allclose(data.edge_weight, built.edge_weight)
