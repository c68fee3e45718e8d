"""The Feature-Extracting Network (FEN): a torchvision backbone, last stride 1, with a BNNeck (paper §4.2)."""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import NamedTuple, Optional

import torch
import torchvision
from torch import Tensor

from .._checks import int_in_range

ARCHS = ("resnet50", "resnet18", "mobilenet_v2")

# Key prefixes of the ImageNet classifiers in torchvision's full models, which the FEN drops.
_CLASSIFIER_PREFIXES = ("fc.", "classifier.")


class FENOutput(NamedTuple):
    """What :class:`FEN` returns.

    Attributes:
        feat: ``[B, D]`` pooled feature before the BNNeck; the triplet loss uses it.
        feat_bn: ``[B, D]`` feature after the BNNeck; the classifier and retrieval use it.
        logits: ``[B, C]`` identity logits, or ``None`` when the FEN has no classifier.
    """
    feat: Tensor
    feat_bn: Tensor
    logits: Optional[Tensor]


def _build_body(arch: str, last_stride: int) -> tuple[torch.nn.Module, int]:
    """The torchvision backbone minus pooling and classifier, keeping torchvision's key names."""
    if arch == "mobilenet_v2":
        net = torchvision.models.mobilenet_v2(weights=None)
        body = torch.nn.Sequential(OrderedDict(features=net.features))
        dim, strided = net.last_channel, net.features
    else:
        net = getattr(torchvision.models, arch)(weights=None)
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        body = torch.nn.Sequential(OrderedDict((name, getattr(net, name)) for name in names))
        dim, strided = net.fc.in_features, net.layer4[0]
    if last_stride == 1:
        # Bag of tricks: a stride-1 last stage doubles the final map's height and width,
        # which keeps more spatial detail for small person crops.
        last = [m for m in strided.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
        convs = last if arch != "mobilenet_v2" else last[-1:]
        for conv in convs:
            conv.stride = (1, 1)
    return body, dim


class FEN(torch.nn.Module):
    r"""Feature-Extracting Network: backbone, global average pooling, BNNeck, classifier.

    .. math::
        \mathbf{f} = \mathrm{GAP}(\mathrm{backbone}(I)), \quad
        \mathbf{f}_{bn} = \mathrm{BN}(\mathbf{f}), \quad
        \mathbf{z} = W \mathbf{f}_{bn}

    The BNNeck (Luo et al., "Bag of tricks") has its bias frozen at 0, and the
    classifier has no bias, so :math:`\mathbf{f}_{bn}` stays centred for the
    softmax loss while the triplet loss works on :math:`\mathbf{f}`.

    Args:
        arch (str, optional): backbone, one of :data:`ARCHS`. (default: ``"resnet50"``)
        num_classes (int, optional): training identities; ``0`` builds no classifier.
            (default: ``0``)
        last_stride (int, optional): ``1`` removes the downsampling of the last stage
            (the last stride-2 block for ``mobilenet_v2``); ``2`` keeps torchvision's.
            (default: ``1``)
        weights (str or os.PathLike, optional): local file holding a torchvision state
            dict for ``arch`` (e.g. ImageNet weights); classifier keys (``fc.*``,
            ``classifier.*``) are ignored. Nothing is ever downloaded. (default: ``None``)

    Shapes:
        - **input:** images :math:`(B, 3, H, W)`, ImageNet-normalised.
        - **output:** in training mode, :class:`FENOutput` with ``feat``, ``feat_bn``
          :math:`(B, D)` and ``logits`` :math:`(B, C)` or ``None``; in eval mode, the
          retrieval feature ``feat_bn`` :math:`(B, D)` alone, a plain tensor (what
          ONNX export and other deployments want). ``D`` is :attr:`dim`.
          :meth:`outputs` gives the :class:`FENOutput` in either mode.
    """

    def __init__(self, arch: str = "resnet50", num_classes: int = 0, last_stride: int = 1,
                 weights: str | os.PathLike | None = None):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch={arch!r} is not a known backbone; pass one of {', '.join(ARCHS)}")
        int_in_range("num_classes", num_classes, 0, 10**9, "0 means no classifier")
        int_in_range("last_stride", last_stride, 1, 2)
        self.arch, self.num_classes, self.last_stride = arch, int(num_classes), int(last_stride)
        self.body, self.dim = _build_body(arch, self.last_stride)
        self.neck = torch.nn.BatchNorm1d(self.dim)
        self.neck.bias.requires_grad_(False)
        self.classifier = torch.nn.Linear(self.dim, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            torch.nn.init.normal_(self.classifier.weight, std=0.001)
        if weights is not None:
            self.load_backbone(weights)

    def load_backbone(self, path: str | os.PathLike) -> None:
        """Load a local torchvision state dict for :attr:`arch` into the backbone."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights file {os.fspath(path)!r} does not exist; "
                                    "pass the path of a local torchvision state dict")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for a file that is not a checkpoint
            raise ValueError(f"weights file {os.fspath(path)!r} cannot be read as a state dict ({err}); "
                             "pass a file written by torch.save(model.state_dict(), path)") from None
        if not isinstance(state, dict):
            raise ValueError(f"weights file {os.fspath(path)!r} holds a {type(state).__name__}, not a state dict; "
                             "save model.state_dict() instead of the model")
        state = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER_PREFIXES)}
        own = self.body.state_dict()
        bad = sorted(k for k in state if k not in own or tuple(state[k].shape) != tuple(own[k].shape))
        # Weight files may lack BatchNorm's step counter (torchvision's do), which does not affect the weights.
        bad += sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
        if bad:
            raise ValueError(f"weights file {os.fspath(path)!r} does not match arch={self.arch!r} "
                             f"({len(bad)} missing, unexpected or mis-shaped keys, e.g. {', '.join(bad[:3])}); "
                             "is it a checkpoint from another architecture? pass the arch it was saved from")
        self.body.load_state_dict(state, strict=False)

    def feature_map(self, images: Tensor) -> Tensor:
        """The backbone's last feature map ``[B, D, h, w]`` before pooling."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected shape [B, 3, H, W], got {tuple(images.shape)}; "
                             "pass a batch of RGB images")
        return self.body(images)

    def outputs(self, images: Tensor) -> FENOutput:
        """Pooled feature, BNNeck feature and logits of ``images``, in training or eval mode."""
        feat = self.feature_map(images).mean(dim=(2, 3))
        feat_bn = self.neck(feat)
        logits = self.classifier(feat_bn) if self.classifier is not None else None
        return FENOutput(feat, feat_bn, logits)

    def forward(self, images: Tensor) -> FENOutput | Tensor:
        """:meth:`outputs` when training; the ``[B, D]`` retrieval feature ``feat_bn`` in eval mode."""
        if not self.training:
            # No classifier in eval mode: retrieval needs only the BNNeck feature.
            return self.neck(self.feature_map(images).mean(dim=(2, 3)))
        return self.outputs(images)

    def config(self) -> dict:
        """Constructor arguments (without ``weights``), stored in checkpoints to rebuild the model."""
        return {"arch": self.arch, "num_classes": self.num_classes, "last_stride": self.last_stride}

    @classmethod
    def from_config(cls, cfg: dict) -> "FEN":
        """Rebuild an FEN from :meth:`config`; load its trained state dict afterwards."""
        return cls(**cfg)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(arch={self.arch!r}, dim={self.dim}, "
                f"num_classes={self.num_classes}, last_stride={self.last_stride})")
