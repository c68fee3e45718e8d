"""Dense adjacency ``S`` as the edges PyTorch Geometric takes: ``edge_index``/``edge_weight``, or a sparse ``adj_t``."""
from __future__ import annotations

import warnings

import torch
from torch import Tensor


def dense_to_edges(s: Tensor) -> tuple[Tensor, Tensor]:
    """Non-zero entries of ``s [n, n]`` as ``(edge_index [2, E], edge_weight [E])``.

    Entry ``s[i, j]`` becomes the edge ``j -> i`` (source ``j``, target ``i``).
    """
    target, source = s.nonzero(as_tuple=True)
    return torch.stack([source, target]), s[target, source]


def block_diagonal(s: Tensor) -> Tensor:
    """Batched dense ``s [B, n, n]`` as one sparse CSR ``[B*n, B*n]`` block-diagonal matrix.

    Row ``i`` holds the weights of node ``i``'s incoming edges, which is the
    ``adj_t`` layout PyG's sparse message passing expects. CSR, so that the
    layers sharing it do not each convert it.
    """
    B, n, _ = s.shape
    b, i, j = s.nonzero(as_tuple=True)
    index = torch.stack([b * n + i, b * n + j])
    coo = torch.sparse_coo_tensor(index, s[b, i, j], (B * n, B * n), is_coalesced=True, check_invariants=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()
