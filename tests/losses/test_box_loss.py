"""Tests for yolact.losses.box_loss: smooth L1 over positive anchors only."""

from __future__ import annotations

import math

import torch

from yolact.losses import box_loss


def smooth_l1(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def test_box_loss_equals_hand_computation() -> None:
    targets = torch.zeros(1, 4, 4)
    loc = torch.zeros(1, 4, 4)
    loc[0, 0] = torch.tensor([0.5, -0.5, 2.0, 0.0])  # positive: 0.125 + 0.125 + 1.5 + 0
    loc[0, 1] = torch.tensor([10.0, 10.0, 10.0, 10.0])  # neutral: ignored
    loc[0, 2] = torch.tensor([-3.0, 0.0, 0.0, 0.0])  # background: ignored
    targets[0, 3] = torch.tensor([1.0, 1.0, -1.0, 0.25])  # positive, loc 0: 0.5 + 0.5 + 0.5 + 0.03125
    class_targets = torch.tensor([[1, -1, 0, 3]])
    expected = 0.125 + 0.125 + 1.5 + 0.5 + 0.5 + 0.5 + 0.03125
    assert math.isclose(box_loss(loc, targets, class_targets).item(), expected, rel_tol=1e-7)


def test_box_loss_matches_elementwise_reference_and_is_differentiable() -> None:
    gen = torch.Generator().manual_seed(0)
    loc = (3 * torch.randn(2, 7, 4, generator=gen)).requires_grad_(True)
    targets = torch.randn(2, 7, 4, generator=gen)
    class_targets = torch.randint(-1, 3, (2, 7), generator=gen)
    loss = box_loss(loc, targets, class_targets)
    expected = sum(
        smooth_l1(loc[b, a, i].item() - targets[b, a, i].item())
        for b in range(2) for a in range(7) for i in range(4) if class_targets[b, a] > 0
    )
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    loss.backward()
    assert (loc.grad[class_targets <= 0] == 0).all()


def test_no_positives_gives_zero() -> None:
    assert box_loss(torch.randn(1, 3, 4), torch.randn(1, 3, 4), torch.tensor([[0, -1, 0]])).item() == 0.0
