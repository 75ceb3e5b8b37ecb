"""Tests for yolact.losses.class_loss: hard negative mining and the summed cross-entropy."""

from __future__ import annotations

import math

import torch

from yolact.losses import ohem_class_loss, select_hard_negatives


def logits_with_hardness(scores: list[float], num_classes: int = 2) -> torch.Tensor:
    """Logits [A, C+1]: background 0, class 1 ``score``, others 0. Hardness log(1 + e^s + (C-1)) rises with s."""
    logits = torch.zeros(len(scores), num_classes + 1)
    logits[:, 1] = torch.tensor(scores)
    return logits


def cross_entropy(logits: torch.Tensor, target: int) -> float:
    row = logits.tolist()
    return math.log(sum(math.exp(v) for v in row)) - row[target]


def test_selects_three_negatives_per_positive_hardest_first_and_never_neutrals() -> None:
    scores = [0.0, 9.0, 1.0, 5.0, 3.0, 7.0, 2.0, 6.0, 4.0, 8.0]
    targets = torch.tensor([2, -1, 0, 0, 0, 0, 0, 0, 0, 0])  # anchor 0 positive, anchor 1 neutral and hardest
    logits = logits_with_hardness(scores)[None]
    negatives = select_hard_negatives(logits, targets[None], negatives_per_positive=3)[0]
    # The three hardest background anchors: scores 8, 7, 6 (the neutral's 9 does not count).
    assert negatives.nonzero().view(-1).tolist() == [5, 7, 9]

    loss = ohem_class_loss(logits, targets[None], negatives_per_positive=3)
    expected = cross_entropy(logits[0, 0], 2) + sum(cross_entropy(logits[0, i], 0) for i in (5, 7, 9))
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)


def test_number_of_negatives_follows_each_images_positives() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 20, 4, generator=gen)
    targets = torch.zeros(2, 20, dtype=torch.int64)
    targets[0, [0]] = 1
    targets[1, [3, 4]] = torch.tensor([2, 3])
    negatives = select_hard_negatives(logits, targets, negatives_per_positive=3)
    assert negatives.sum(dim=1).tolist() == [3, 6]
    hardness = torch.logsumexp(logits, dim=-1) - logits[..., 0]
    for b in range(2):
        background = targets[b] == 0
        threshold = hardness[b][negatives[b]].min()
        # Every selected negative is at least as hard as every background anchor left out.
        assert (hardness[b][background & ~negatives[b]] <= threshold).all()
        assert not (negatives[b] & (targets[b] != 0)).any()


def test_too_few_negatives_never_borrows_positives_or_neutrals() -> None:
    scores = [9.0, 8.0, 7.0, 6.0, 0.0, 1.0, 2.0, 3.0]
    targets = torch.tensor([1, 1, 2, -1, 0, 0, 0, 0])  # 3 positives want 9 negatives (clamped to A-1 = 7)
    logits = logits_with_hardness(scores)[None]
    negatives = select_hard_negatives(logits, targets[None])[0]
    assert negatives.nonzero().view(-1).tolist() == [4, 5, 6, 7]

    loss = ohem_class_loss(logits, targets[None])
    expected = sum(cross_entropy(logits[0, i], t) for i, t in ((0, 1), (1, 1), (2, 2), (4, 0), (5, 0), (6, 0), (7, 0)))
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)


def test_no_positives_means_no_negatives_and_zero_loss() -> None:
    logits = torch.randn(1, 6, 3, requires_grad=True)
    targets = torch.zeros(1, 6, dtype=torch.int64)
    assert not select_hard_negatives(logits, targets).any()
    loss = ohem_class_loss(logits, targets)
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph
    assert logits.grad is not None and (logits.grad == 0).all()


def test_gradient_reaches_only_selected_anchors() -> None:
    logits = logits_with_hardness([0.0, 9.0, 1.0, 5.0, 3.0, 7.0, 2.0, 6.0, 4.0, 8.0])[None].requires_grad_(True)
    targets = torch.tensor([[2, -1, 0, 0, 0, 0, 0, 0, 0, 0]])
    ohem_class_loss(logits, targets).backward()
    touched = logits.grad[0].abs().sum(dim=1) > 0
    assert touched.nonzero().view(-1).tolist() == [0, 5, 7, 9]
