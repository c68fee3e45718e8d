"""Private helpers of the re-ranking methods that rank queries and gallery items together."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import as_features, same_dim


def joint_features(query, gallery) -> tuple[Tensor, int, int]:
    """``(features [N, D], Q, N)``: the checked queries then gallery items (``N = Q + G``), on the query's
    device and dtype, L2-normalised."""
    query = as_features(query, "query")
    gallery = as_features(gallery, "gallery")
    same_dim(query, gallery)
    feats = F.normalize(torch.cat([query, gallery.to(query)]), dim=1)
    return feats, query.shape[0], feats.shape[0]


def rows_to_sparse(cols: Tensor, values: Tensor, width: int) -> Tensor:
    """Sparse coalesced ``[rows, width]`` matrix with ``values[r, c]`` at ``(r, cols[r, c])``; repeats add up."""
    rows = torch.arange(cols.shape[0], device=cols.device).repeat_interleave(cols.shape[1])
    # The indices come from kNN lists, in range by construction.
    return torch.sparse_coo_tensor(torch.stack([rows, cols.flatten()]), values.flatten(), (cols.shape[0], width),
                                   check_invariants=False).coalesce()
