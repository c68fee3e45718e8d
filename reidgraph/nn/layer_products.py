r"""Exact test-time FFGNN with ``output="l2"`` from each image's products by the layers' weights.

With ``output="l2"`` a layer is :math:`h_\ell = R_\ell u_\ell`, :math:`u_\ell = (1-\alpha) h_{\ell-1} + \alpha S
h_{\ell-1} W_\ell`, where :math:`R_\ell = \mathrm{diag}(1 / \lVert u_{\ell,i} \rVert)` is the L2 normalisation: a
row scaling, which commutes with a right product by a weight. So every layer's output is a sum over the subsets
``T`` of the layers so far of the graph's input rows ``X [n, D]`` times :math:`W_T = \prod_{t \in T} W_t` (in
layer order), with ``n x n`` coefficients:

.. math::
    h_\ell = \sum_{T} C_{\ell,T}\, X W_T, \qquad C_{0,\emptyset} = I, \qquad
    C_{\ell,T} = (1-\alpha) R_\ell C_{\ell-1,T}, \qquad C_{\ell,T \cup \{\ell\}} = \alpha R_\ell S C_{\ell-1,T}

for :math:`T \subseteq \{1, \dots, \ell-1\}`. The rows :math:`x W_T` belong to the image, not the graph: they are
computed once per image (:func:`layer_tables`, :math:`2^L - 1` products of ``[N, D]`` by ``[D, D]``) and gathered
per graph, where layer :math:`\ell` is one product of ``[n, 2^{l-1} n]`` by ``[2^{l-1} n, D]``:

.. math::
    u_\ell = (1-\alpha)\, h_{\ell-1} + \alpha \sum_{T \subseteq \{1..\ell-1\}} (S C_{\ell-1,T})\,
    (X W_{T \cup \{\ell\}})

That is :math:`(2^L - 1)\, n^2 D` multiply-adds a graph in place of :math:`L\, n D^2` (with ``n = 151``,
``D = 2048``, ``L = 3``: 4.5 times fewer), plus :math:`n^3` terms for the coefficients. BatchNorm in eval mode is
affine and would commute too, but the ReLU after it does not: ``output="batchnorm"`` keeps the direct path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# The rows of one product by a weight at a time while the tables are filled: bounds the temporaries.
_CHUNK = 4096


def layer_tables(convs, x: Tensor) -> list[Tensor]:
    r"""Each layer's table of image products: for layer :math:`\ell` (1-based), ``[N, 2^{l-1}, D]`` whose slot
    ``t`` (a bit mask over the layers below :math:`\ell`) holds :math:`x W_{T(t) \cup \{\ell\}}`.

    Args:
        convs: the :class:`~reidgraph.nn.FFGNNConv` layers (their ``lin`` is :math:`x \mapsto x W`).
        x: ``[N, D]`` input features.
    """
    products = {0: x}  # bit mask of the layers applied -> [N, D] (views into the tables)
    tables = []
    for layer, conv in enumerate(convs):
        low = 1 << layer
        table = x.new_empty(x.shape[0], low, x.shape[1])
        for t in range(low):
            for start in range(0, x.shape[0], _CHUNK):
                rows = slice(start, start + _CHUNK)
                table[rows, t] = conv.lin(products[t][rows])
            products[low + t] = table[:, t]
        tables.append(table)
    return tables


def fuse_l2(x: Tensor, s: Tensor, gathered: list[Tensor], alpha: float, last=None) -> Tensor:
    r"""The ``output="l2"`` FFGNN on a batch of graphs from their gathered table rows (see the module).

    Args:
        x: ``[B, n, D]`` the graphs' input rows :math:`h_0 = X`.
        s: ``[B, n, n]`` normalised adjacency.
        gathered: per layer :math:`\ell`, ``[B, n * 2^{l-1}, D]``: row ``j * 2^{l-1} + t`` is node ``j``'s slot
            ``t`` of :func:`layer_tables`; all layers', or all but the last's with ``last``.
        alpha: the layers' :math:`\alpha`.
        last: the last layer's ``lin`` (:math:`x \mapsto x W_L`), to compute that layer for node 0 alone:
            :math:`u_{L,0} = (1-\alpha) h_{L-1,0} + \alpha (s_0 h_{L-1}) W_L`, one product by :math:`W_L` a graph,
            which spares the last layer's :math:`2^{L-1}` tables.

    Returns:
        ``[B, n, D]`` L2-normalised outputs, or node 0's ``[B, D]`` with ``last``.
    """
    B, n, _ = x.shape
    h, coef = x, None  # coef [B, 2^l, n, n]: C_{l, T} by bit mask T
    for layer, table in enumerate(gathered):
        final = layer == len(gathered) - 1 and last is None
        p = s[:, None] if coef is None else s[:, None] @ coef  # [B, m, n, n]: S C_{l-1,T}
        m = p.shape[1]
        mixed = p.permute(0, 2, 3, 1).reshape(B, n, n * m)  # column j * m + t
        u = torch.baddbmm(h, mixed, table, beta=1 - alpha, alpha=alpha)
        scale = 1 / u.norm(dim=-1, keepdim=True).clamp_(min=1e-12)  # F.normalize's
        h = u * scale
        if not final:
            identity = torch.eye(n, dtype=x.dtype, device=x.device).expand(B, 1, n, n)
            coef = torch.cat([(1 - alpha) * (identity if coef is None else coef), alpha * p], dim=1) * scale[:, None]
    if last is None:
        return h
    return F.normalize((1 - alpha) * h[:, 0] + alpha * last(torch.bmm(s[:, :1], h)[:, 0]), dim=-1)
