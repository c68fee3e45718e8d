"""Losses (eqs. 13-15) against plain per-sample references."""
import math

import pytest
import torch

from reidgraph.losses import batch_hard_triplet_loss, cross_camera_list_loss, softmax_loss, verification_loss


def test_softmax_loss_is_mean_negative_log_likelihood():
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 3, 1, 0])
    ref = sum(-math.log(math.exp(logits[i, labels[i]]) / sum(math.exp(v) for v in logits[i])) for i in range(6)) / 6
    assert softmax_loss(logits, labels).item() == pytest.approx(ref, rel=1e-5)


def test_batch_hard_triplet_against_loop():
    torch.manual_seed(0)
    f = torch.randn(9, 5, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])  # id 3 has no positive: left out
    terms = []
    for a in range(9):
        pos = [(f[a] - f[p]).norm().item() for p in range(9) if p != a and y[p] == y[a]]
        neg = [(f[a] - f[n]).norm().item() for n in range(9) if y[n] != y[a]]
        if pos and neg:
            terms.append(max(0.0, 0.3 + max(pos) - min(neg)))
    assert batch_hard_triplet_loss(f, y, 0.3).item() == pytest.approx(sum(terms) / len(terms), rel=1e-9)


def test_triplet_without_valid_anchor_is_zero_with_gradient():
    f = torch.randn(3, 4, requires_grad=True)
    loss = batch_hard_triplet_loss(f, torch.tensor([0, 1, 2]))
    loss.backward()
    assert loss.item() == 0 and f.grad is not None


def test_verification_against_loop():
    f = torch.randn(5, 3, dtype=torch.float64)
    y = torch.tensor([1, 1, 2, 3, 2])
    total = 0.0
    for i in range(5):
        for j in range(5):
            c = (f[i] @ f[j] / (f[i].norm() * f[j].norm())).item()
            total += (float(y[i] == y[j]) - c) ** 2
    assert verification_loss(f, y).item() == pytest.approx(total / 25, rel=1e-9)
    assert verification_loss(f, y, reduction="sum").item() == pytest.approx(total, rel=1e-9)  # eq. 15 as written
    with pytest.raises(ValueError, match="reduction"):
        verification_loss(f, y, reduction="max")


def test_cross_camera_list_loss_against_loop():
    torch.manual_seed(1)
    f = torch.randn(2, 6, 4, dtype=torch.float64)
    y = torch.tensor([[0, 0, 0, 1, 1, 2], [3, 3, 4, 4, 5, 6]])
    c = torch.tensor([[0, 1, 0, 0, 1, 1], [0, 0, 1, 0, 0, 1]])
    T, terms = 0.1, []
    for b in range(2):
        for i in range(6):
            cos = lambda j: (f[b, i] @ f[b, j] / (f[b, i].norm() * f[b, j].norm())).item()  # noqa: E731
            junk = [j for j in range(6) if j != i and y[b, j] == y[b, i] and c[b, j] == c[b, i]]
            pos = [j for j in range(6) if y[b, j] == y[b, i] and c[b, j] != c[b, i]]
            ranked = [j for j in range(6) if j != i and j not in junk]
            if pos:
                terms.append(-math.log(sum(math.exp(cos(j) / T) for j in pos)
                                       / sum(math.exp(cos(j) / T) for j in ranked)))
    assert cross_camera_list_loss(f, y, c, T).item() == pytest.approx(sum(terms) / len(terms), rel=1e-9)


def test_cross_camera_list_loss_without_positive_is_zero_with_gradient():
    f = torch.randn(1, 3, 4, requires_grad=True)
    loss = cross_camera_list_loss(f, torch.tensor([[0, 0, 1]]), torch.tensor([[0, 0, 1]]))  # same-camera pair only
    loss.backward()
    assert loss.item() == 0 and f.grad is not None
    with pytest.raises(ValueError, match="temperature"):
        cross_camera_list_loss(f, torch.tensor([[0, 0, 1]]), torch.tensor([[0, 1, 1]]), temperature=0)
