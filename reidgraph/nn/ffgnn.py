"""The FFGNN network: stacked FFGNNConv layers with BatchNorm and ReLU (paper eqs. (11)-(12), §3.2; 3 layers: §4.2).

Two options beyond the paper: ``output="l2"`` (each layer's output L2-normalised
instead of BatchNorm + ReLU) and ``init="identity"`` (every W starts at I). Together
they make the untrained network exactly :class:`~reidgraph.nn.TrainingFreeFusion`, so
training starts from the training-free solution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import int_in_range
from .._pyg import Adj, OptTensor
from .ffgnn_conv import FFGNNConv


OUTPUTS = ("batchnorm", "l2")
INITS = ("random", "identity")


class FFGNN(torch.nn.Module):
    r"""Feature-Fusing Graph Neural Network.

    .. math::
        \mathbf{X}^{(l+1)} = \mathrm{ReLU}\big(\mathrm{BN}(\mathrm{FFGNNConv}_l(\mathbf{X}^{(l)}, S))\big),
        \quad l = 0, \dots, L-1

    or, with ``output="l2"``, :math:`\mathbf{X}^{(l+1)} = \mathrm{normalize}(\mathrm{FFGNNConv}_l(\mathbf{X}^{(l)}, S))`
    (rows of unit length).

    The normalised adjacency :math:`S` is computed once from the input
    features (by the graph builder) and shared by all layers.

    Args:
        channels (int): feature dimension ``D`` (input and output).
        num_layers (int, optional): number of layers ``L``. (default: ``3``)
        alpha (float, optional): each layer's :math:`\alpha`. (default: ``0.3``)
        output (str, optional): after each layer, ``"batchnorm"`` (BatchNorm + ReLU,
            the paper) or ``"l2"`` (L2 normalisation). (default: ``"batchnorm"``)
        init (str, optional): each W's start, ``"random"`` (PyTorch's default
            ``Linear`` initialisation) or ``"identity"``. (default: ``"random"``)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, D)` and the graph as
          ``edge_index`` :math:`(2, |\mathcal{E}|)` + ``edge_weight``
          :math:`(|\mathcal{E}|)`, or a sparse ``adj_t``.
        - **output:** fused node features :math:`(|\mathcal{V}|, D)`.
    """

    def __init__(self, channels: int, num_layers: int = 3, alpha: float = 0.3, output: str = "batchnorm",
                 init: str = "random"):
        super().__init__()
        int_in_range("channels", channels, 1, 2**31)  # FFGNNConv takes None (W = I); FFGNN always has weights
        int_in_range("num_layers", num_layers, 1, 1024)
        for name, value, choices in (("output", output, OUTPUTS), ("init", init, INITS)):
            if value not in choices:
                raise ValueError(f"{name}={value!r} is unknown; choose one of {', '.join(choices)}")
        self.channels, self.num_layers, self.alpha, self.output, self.init = channels, num_layers, alpha, output, init
        self.convs = torch.nn.ModuleList(FFGNNConv(channels, alpha) for _ in range(num_layers))
        self.norms = torch.nn.ModuleList(torch.nn.BatchNorm1d(channels) if output == "batchnorm"
                                         else torch.nn.Identity() for _ in range(num_layers))
        self._init_weights()

    def reset_parameters(self):
        for conv, norm in zip(self.convs, self.norms):
            conv.reset_parameters()
            if self.output == "batchnorm":
                norm.reset_parameters()
        self._init_weights()

    def _init_weights(self):
        if self.init == "identity":
            for conv in self.convs:
                torch.nn.init.eye_(conv.lin.weight)

    def _after(self, h: Tensor) -> Tensor:
        """A layer's output step after its norm (BatchNorm, or the identity with ``output="l2"``) on
        ``h [N, D]``: ReLU, or L2 normalisation. The norm stays with the caller: TorchScript cannot pass
        a submodule to a method."""
        return h.relu() if self.output == "batchnorm" else F.normalize(h, dim=-1)

    def forward(self, x: Tensor, edge_index: Adj, edge_weight: OptTensor = None) -> Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = self._after(norm(conv(x, edge_index, edge_weight)))
        return x

    def project_first(self, x: Tensor) -> Tensor:
        """The first layer's ``x W`` of images ``x [N, D]``, to pass on as ``first_xw``."""
        return self.convs[0].lin(x)

    def forward_dense(self, x: Tensor, s: Tensor, first_xw: Tensor | None = None, anchor_only: bool = False) -> Tensor:
        """:meth:`forward` on a batch of dense graphs ``x [B, n, D]``, ``s [B, n, n]``.

        Equal to the sparse path on the block-diagonal graph (BatchNorm sees all
        ``B * n`` nodes either way); dense products are faster for the small,
        dense-ish neighborhood graphs of re-ranking. ``first_xw [B, n, D]`` is
        the first layer's precomputed ``x W`` (see :meth:`FFGNNConv.forward_dense`).
        ``anchor_only`` (eval mode: BatchNorm then treats each node alone) computes the last layer for
        node 0 only and returns ``[B, D]``.
        """
        B, n, D = x.shape
        for layer, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            last = anchor_only and layer == self.num_layers - 1
            x = conv.forward_dense(x, s, first_xw if layer == 0 else None, anchor_only=last)
            if last:
                return self._after(norm(x))
            x = self._after(norm(x.reshape(B * n, -1))).view(B, n, -1)
        return x

    def config(self) -> dict:
        """Constructor arguments, stored in checkpoints to rebuild the model."""
        return {"channels": self.channels, "num_layers": self.num_layers, "alpha": self.alpha,
                "output": self.output, "init": self.init}

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, num_layers={self.num_layers}, alpha={self.alpha}, "
                f"output={self.output!r}, init={self.init!r})")
