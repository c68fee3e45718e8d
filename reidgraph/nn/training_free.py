"""Training-free feature fusion: the FFGNN update with W = I, no BatchNorm and no ReLU.

Beyond the paper. It needs no labels, so it serves a new site from its first
day, and it runs at test time exactly like a trained FFGNN
(:func:`~reidgraph.nn.ffgnn_rerank`, :func:`~reidgraph.nn.fused_features`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import int_in_range
from .._pyg import Adj, OptTensor
from .ffgnn_conv import FFGNNConv


class TrainingFreeFusion(torch.nn.Module):
    r"""``steps`` rounds of parameter-free propagation over the neighborhood graph.

    .. math::
        \mathbf{x}_i \leftarrow \operatorname{normalize}\Big((1 - \alpha)\,\mathbf{x}_i
        + \alpha \sum_{j} s_{ij}\, \mathbf{x}_j\Big)

    with :math:`s_{ij}` the normalised edge weight of ``j -> i`` (row ``i`` of
    ``S``, self-loops included) and ``normalize`` the L2 normalisation. Each round is
    :class:`~reidgraph.nn.FFGNNConv` with :math:`W = I` (``FFGNNConv(None, alpha)``), then ``normalize``.

    Args:
        alpha: mixing weight :math:`\alpha` in ``[0, 1]``. (default: ``0.3``)
        steps: propagation rounds, at least 1. (default: ``3``, the FFGNN's layers)

    Shapes:
        - **input:** ``x [N, D]`` with ``edge_index [2, E]`` (source, target) and
          ``edge_weight [E]``, or a sparse ``adj_t``; or dense graphs ``x [B, n, D]``, ``s [B, n, n]``.
        - **output:** the same shape as ``x``, rows of unit length.
    """

    def __init__(self, alpha: float = 0.3, steps: int = 3):
        super().__init__()
        self.conv = FFGNNConv(None, alpha)
        self.steps = int_in_range("steps", steps, 1, 1024)

    @property
    def alpha(self) -> float:
        r"""The mixing weight :math:`\alpha`, held by the layer."""
        return self.conv.alpha

    def forward(self, x: Tensor, edge_index: Adj, edge_weight: OptTensor = None) -> Tensor:
        for _ in range(self.steps):
            x = F.normalize(self.conv(x, edge_index, edge_weight), dim=-1)
        return x

    def project_first(self, x: Tensor) -> Tensor:
        """``x W`` with ``W = I``: the features themselves (the protocol of :meth:`FFGNN.project_first`)."""
        return x

    def forward_dense(self, x: Tensor, s: Tensor, first_xw: Tensor | None = None, anchor_only: bool = False) -> Tensor:
        """:meth:`forward` on dense graphs ``x [B, n, D]``, ``s [B, n, n]`` (see :meth:`FFGNNConv.forward_dense`);
        ``first_xw`` is ``x`` itself. ``anchor_only``: the last step for node 0 only, ``[B, D]``."""
        for step in range(self.steps):
            last = anchor_only and step == self.steps - 1
            x = F.normalize(self.conv.forward_dense(x, s, anchor_only=last), dim=-1)
        return x

    def config(self) -> dict:
        return {"alpha": self.alpha, "steps": self.steps}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(alpha={self.alpha}, steps={self.steps})"
