"""Training losses (method.md §4, paper eqs. 13-15)."""
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


def verification_loss(feats: Tensor, labels: Tensor) -> Tensor:
    r"""Verification loss (eq. 15): squared error between same-identity indicator and cosine.

    .. math::
        \frac{1}{N^2}\sum_{i,j} \big(y_{ij} - c_{ij}\big)^2, \qquad
        y_{ij} = [\,\mathrm{id}_i = \mathrm{id}_j\,]

    The paper sums over pairs; the mean (a constant factor ``N^2``) keeps the
    loss on the scale of the other two whatever the batch size.

    Args:
        feats: ``[N, D]``; labels: ``[N]``.
    """
    z = F.normalize(feats, dim=1)
    target = (labels[:, None] == labels[None, :]).to(z.dtype)
    return (target - z @ z.T).pow(2).mean()
