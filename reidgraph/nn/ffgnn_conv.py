"""The FFGNN graph-convolution layer (paper eqs. (11)-(12), §3.2 "Message Propagation and Features Fusion")."""
from typing import Optional

import torch
from torch import Tensor

from .._checks import in_unit_interval, int_in_range
from .._pyg import Adj, MessagePassing, OptTensor, SparseTensor, gcn_norm, spmm
from ..graph.adjacency import normalize_adjacency


class FFGNNConv(MessagePassing):
    r"""The feature-fusing graph convolution of FFGNN (Liu et al.):

    .. math::
        \tilde{\mathbf{x}}_i = (1 - \alpha)\,\mathbf{x}_i
        + \alpha \sum_{j \in \mathcal{N}(i) \cup \{i\}} s_{ij}\, \mathbf{x}_j^\top \mathbf{W}

    where :math:`s_{ij}` is the normalised edge weight of the edge
    :math:`j \to i` (:math:`S = \Lambda^{-1/2} A \Lambda^{-1/2}`, see
    :func:`reidgraph.graph.normalize_adjacency`; its self-loops are part of
    the graph) and :math:`\mathbf{W}` a bias-free linear map.

    Args:
        channels (int or None): size of each input and output sample (the residual
            term needs both equal); ``None`` for :math:`\mathbf{W} = \mathbf{I}`: no
            parameters, and features of any size (:class:`~reidgraph.nn.TrainingFreeFusion`).
        alpha (float, optional): mixing weight :math:`\alpha` of the
            neighborhood message, in ``[0, 1]``. (default: ``0.3``)
        normalize (bool, optional): the edge weights given are :math:`A`, not :math:`S`:
            normalise them first, :math:`S = \Lambda^{-1/2} A \Lambda^{-1/2}` with
            :math:`\Lambda_{ii} = \sum_j a_{ij}` (PyG's
            :func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm` without added self-loops;
            :func:`~reidgraph.graph.normalize_adjacency` on the dense path). (default: ``False``)
        **kwargs (optional): additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)`, edge indices
          :math:`(2, |\mathcal{E}|)` (source, target) with edge weights
          :math:`(|\mathcal{E}|)`; or a sparse adjacency ``adj_t`` of shape
          :math:`(|\mathcal{V}|, |\mathcal{V}|)` whose row :math:`i` holds
          :math:`s_{ij}` (a ``torch.sparse`` tensor or a
          ``torch_sparse.SparseTensor``), i.e. :math:`S` itself, or :math:`A`
          with ``normalize=True``.
        - **output:** node features :math:`(|\mathcal{V}|, F)`
    """

    # TorchScript: the types of the arguments to propagate() (PyG reads this comment).
    # propagate_type: (x: Tensor, edge_weight: Optional[Tensor])

    # TorchScript types the attribute from this annotation (the value alone is None with W = I); it needs
    # the type object, not a string, hence no `from __future__ import annotations` in this module.
    channels: Optional[int]

    def __init__(self, channels: Optional[int], alpha: float = 0.3, normalize: bool = False, **kwargs):
        kwargs.setdefault("aggr", "add")
        super().__init__(**kwargs)
        self.channels = None if channels is None else int_in_range("channels", channels, 1, 2**31)
        self.alpha = in_unit_interval("alpha", alpha)
        self.normalize = bool(normalize)
        self.lin = (torch.nn.Identity() if channels is None
                    else torch.nn.Linear(channels, channels, bias=False))
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        if self.channels is not None:
            self.lin.reset_parameters()

    def forward(self, x: Tensor, edge_index: Adj, edge_weight: OptTensor = None) -> Tensor:
        channels = self.channels
        if channels is not None and x.shape[-1] != channels:
            raise ValueError(f"x has {x.shape[-1]} channels but this FFGNNConv expects {channels}; "
                             "build the layer with channels equal to the feature dimension")
        if self.normalize:
            if isinstance(edge_index, Tensor):
                edge_index, edge_weight = gcn_norm(edge_index, edge_weight, x.size(self.node_dim), False, False,
                                                   self.flow, x.dtype)
            elif isinstance(edge_index, SparseTensor):
                edge_index = gcn_norm(edge_index, edge_weight, x.size(self.node_dim), False, False, self.flow,
                                      x.dtype)
        # (S X) W and S (X W) are equal; W first keeps the sparse product on F columns either way.
        message = self.propagate(edge_index, x=self.lin(x), edge_weight=edge_weight)
        return (1 - self.alpha) * x + self.alpha * message

    def forward_dense(self, x: Tensor, s: Tensor, xw: Tensor | None = None, anchor_only: bool = False) -> Tensor:
        r"""The same update on a batch of dense graphs: :math:`(1-\alpha) X + \alpha\, S (X W)`.

        Args:
            x: ``[B, n, F]`` node features.
            s: ``[B, n, n]`` adjacency, row ``i`` holding :math:`s_{ij}`: normalised, or :math:`A` with
                ``normalize``.
            xw: optional ``[B, n, F]`` precomputed :math:`X W`. At test time the
                first layer's input is the FEN feature, so :math:`x_j W` can be
                computed once per gallery image instead of once per graph.
            anchor_only: node 0's update only, :math:`(1-\alpha) x_0 + \alpha (s_0 X) W`: one row of ``S``
                before the product by ``W`` instead of ``n`` rows after it.

        Returns:
            ``[B, n, F]``, or ``[B, F]`` with ``anchor_only``.
        """
        if self.normalize:
            s = normalize_adjacency(s)
        if anchor_only:
            mixed = torch.bmm(s[:, :1], x if xw is None else xw)[:, 0]
            return (1 - self.alpha) * x[:, 0] + self.alpha * (self.lin(mixed) if xw is None else mixed)
        return (1 - self.alpha) * x + self.alpha * torch.bmm(s, self.lin(x) if xw is None else xw)

    # Optional[Tensor], not OptTensor: PyG's TorchScript template asserts that an
    # `edge_weight` annotated as ...Tensor is never None, which would reject edge_index alone.
    def message(self, x_j: Tensor, edge_weight: Optional[Tensor]) -> Tensor:
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: Adj, x: Tensor) -> Tensor:
        return spmm(adj_t, x, reduce=self.aggr)

    def __repr__(self) -> str:
        normalize = ", normalize=True" if self.normalize else ""
        return f"{self.__class__.__name__}({self.channels}, alpha={self.alpha}{normalize})"
