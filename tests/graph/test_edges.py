"""Dense adjacency to PyG edges."""
import torch

from reidgraph.graph import dense_to_edges


def test_dense_to_edges_direction():
    s = torch.tensor([[0.0, 2.0], [0.0, 1.0]])  # s_01 = 2: edge 1 -> 0
    edge_index, weight = dense_to_edges(s)
    assert edge_index.tolist() == [[1, 1], [0, 1]] and weight.tolist() == [2.0, 1.0]
