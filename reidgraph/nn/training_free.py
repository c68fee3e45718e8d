"""Training-free feature fusion: the FFGNN update with W = I, no BatchNorm and no ReLU.

Beyond the paper. It needs no labels, so it serves a new site from its first
day, and it runs at test time exactly like a trained FFGNN
(:func:`~reidgraph.nn.ffgnn_rerank`, :func:`~reidgraph.nn.fused_features`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import in_unit_interval, int_in_range


class TrainingFreeFusion(torch.nn.Module):
    r"""``steps`` rounds of parameter-free propagation over the neighbourhood graph.

    .. math::
        \mathbf{x}_i \leftarrow \operatorname{normalize}\Big((1 - \alpha)\,\mathbf{x}_i
        + \alpha \sum_{j} s_{ij}\, \mathbf{x}_j\Big)

    with :math:`s_{ij}` the normalised edge weight of ``j -> i`` (row ``i`` of
    ``S``, self-loops included) and ``normalize`` the L2 normalisation. This is
    :class:`~reidgraph.nn.FFGNNConv` with :math:`W = I`.

    Args:
        alpha: mixing weight :math:`\alpha` in ``[0, 1]``. (default: ``0.3``)
        steps: propagation rounds, at least 1. (default: ``3``, the FFGNN's layers)

    Shapes:
        - **input:** ``x [N, D]`` with ``edge_index [2, E]`` (source, target) and
          ``edge_weight [E]``; or dense graphs ``x [B, n, D]``, ``s [B, n, n]``.
        - **output:** the same shape as ``x``, rows of unit length.
    """

    def __init__(self, alpha: float = 0.3, steps: int = 3):
        super().__init__()
        self.alpha = in_unit_interval("alpha", alpha)
        self.steps = int_in_range("steps", steps, 1, 1024)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        source, target = edge_index
        weight = torch.ones(source.shape[0], dtype=x.dtype, device=x.device) if edge_weight is None else edge_weight
        for _ in range(self.steps):
            messages = torch.zeros_like(x).index_add_(0, target, weight[:, None] * x[source])
            x = F.normalize((1 - self.alpha) * x + self.alpha * messages, dim=-1)
        return x

    def project_first(self, x: Tensor) -> Tensor:
        """``x W`` with ``W = I``: the features themselves (the protocol of :meth:`FFGNN.project_first`)."""
        return x

    def forward_dense(self, x: Tensor, s: Tensor, first_xw: Tensor | None = None, anchor_only: bool = False) -> Tensor:
        """:meth:`forward` on dense graphs ``x [B, n, D]``, ``s [B, n, n]``; ``first_xw`` is ``x`` itself.
        ``anchor_only``: the last step for node 0 only, ``[B, D]``."""
        for step in range(self.steps):
            if anchor_only and step == self.steps - 1:
                return F.normalize((1 - self.alpha) * x[:, 0] + self.alpha * torch.bmm(s[:, :1], x)[:, 0], dim=-1)
            x = F.normalize((1 - self.alpha) * x + self.alpha * (s @ x), dim=-1)
        return x

    def config(self) -> dict:
        return {"alpha": self.alpha, "steps": self.steps}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(alpha={self.alpha}, steps={self.steps})"
