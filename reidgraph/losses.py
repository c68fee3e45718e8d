"""Training losses (paper eqs. (13)-(15), §3.3 "Loss Function")."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def softmax_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    r"""Cross-entropy of a linear identity classifier (eq. 13).

    Args:
        logits: ``[N, C]``; labels: ``[N]`` class indices in ``[0, C)``.
    """
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def batch_hard_triplet_loss(feats: Tensor, labels: Tensor, margin: float = 0.3) -> Tensor:
    r"""Batch-hard triplet loss (eq. 14, Hermans et al.).

    .. math::
        \frac{1}{N}\sum_a \Big[m + \max_{p: y_p = y_a} \lVert f_a - f_p\rVert
        - \min_{n: y_n \ne y_a} \lVert f_a - f_n\rVert\Big]_+

    Anchors with no positive (other than themselves) or no negative in the
    batch are left out of the mean.

    Args:
        feats: ``[N, D]``; labels: ``[N]``.
    """
    dist = torch.cdist(feats, feats)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos = same & ~eye
    valid = pos.any(1) & (~same).any(1)
    if not bool(valid.any()):
        return feats.sum() * 0
    hardest_pos = dist.masked_fill(~pos, float("-inf")).amax(1)
    hardest_neg = dist.masked_fill(same, float("inf")).amin(1)
    return F.relu(margin + hardest_pos - hardest_neg)[valid].mean()


def verification_loss(feats: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
    r"""Verification loss (eq. 15): squared error between same-identity indicator and cosine.

    .. math::
        \sum_{i,j} \big(y_{ij} - c_{ij}\big)^2, \qquad y_{ij} = [\,\mathrm{id}_i = \mathrm{id}_j\,]

    Args:
        feats: ``[N, D]``; labels: ``[N]``.
        reduction: ``"sum"`` over the ``N^2`` pairs, as the paper writes it, or
            ``"mean"`` (divided by ``N^2``), which keeps the loss on the scale of
            the other two whatever the batch size.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction={reduction!r} is unknown; choose 'mean' or 'sum'")
    z = F.normalize(feats, dim=1)
    target = (labels[:, None] == labels[None, :]).to(z.dtype)
    squared = (target - z @ z.T).pow(2)
    return squared.sum() if reduction == "sum" else squared.mean()


def cross_camera_list_loss(feats: Tensor, labels: Tensor, camids: Tensor, temperature: float = 0.05) -> Tensor:
    r"""Each node's ranking of the other nodes of its graph, scored as the evaluation protocol scores it.

    For node :math:`i` of a graph, with cosines :math:`c_{ij}` to the graph's
    other nodes, positives :math:`P_i` (same identity, another camera) and the
    ranked set :math:`R_i` (all other nodes but same-identity, same-camera
    ones, which the protocol ignores as junk):

    .. math::
        \ell_i = -\log rac{\sum_{j \in P_i} e^{c_{ij}/T}}{\sum_{j \in R_i} e^{c_{ij}/T}}

    averaged over the nodes that have a positive. A smooth surrogate of
    putting cross-camera matches first in each node's list (beyond the paper).

    Args:
        feats: ``[B, n, D]`` fused features of ``B`` graphs.
        labels: ``[B, n]`` identities; camids: ``[B, n]`` cameras.
        temperature: :math:`T > 0`.
    """
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r} must be positive, e.g. 0.05")
    z = F.normalize(feats, dim=-1)
    logits = z @ z.transpose(1, 2) / temperature
    self_pair = torch.eye(z.shape[1], dtype=torch.bool, device=z.device)
    same_id = labels[:, :, None] == labels[:, None, :]
    same_cam = camids[:, :, None] == camids[:, None, :]
    positive = same_id & ~same_cam
    ranked = ~(same_id & same_cam) & ~self_pair
    has_positive = positive.any(-1)
    if not bool(has_positive.any()):
        return feats.sum() * 0
    all_terms = logits.masked_fill(~ranked, float("-inf")).logsumexp(-1)
    positive_terms = logits.masked_fill(~positive, float("-inf")).logsumexp(-1)
    return (all_terms - positive_terms)[has_positive].mean()
