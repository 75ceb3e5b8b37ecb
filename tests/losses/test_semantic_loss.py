"""Tests for yolact.losses.semantic_loss: per-class union targets and the normalised BCE-with-logits."""

from __future__ import annotations

import math

import torch
from loss_helpers import make_target

from yolact.losses import semantic_loss, semantic_targets

# 32x32 input, 4x4 map: boxes aligned to 8x8 blocks downsample exactly to their cells.
BOXES = [
    [0.0, 0.0, 0.5, 0.5],  # class 1: cells rows 0-1, cols 0-1
    [0.25, 0.25, 0.75, 0.5],  # class 1 again, overlapping the first: rows 1, cols 1-2
    [0.5, 0.75, 1.0, 1.0],  # class 2: row 3, cols 2-3
]
LABELS = [1, 1, 2]
EXPECTED_TARGET = torch.tensor([
    [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
    [[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
    [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]],
], dtype=torch.float32)


def bce_with_logits(x: float, t: float) -> float:
    return max(x, 0.0) - x * t + math.log1p(math.exp(-abs(x)))


def test_targets_are_per_class_unions() -> None:
    target = make_target(BOXES, LABELS)
    assert torch.equal(semantic_targets(target, 3, 4, 4), EXPECTED_TARGET)
    assert torch.equal(semantic_targets(make_target([], []), 3, 4, 4), torch.zeros(3, 4, 4))


def test_semantic_loss_equals_direct_computation() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(2, 3, 4, 4, generator=gen)
    targets = [make_target(BOXES, LABELS), make_target([], [])]
    loss = semantic_loss(logits, targets)
    expected = 0.0
    for b, target_map in enumerate((EXPECTED_TARGET, torch.zeros(3, 4, 4))):
        expected += sum(
            bce_with_logits(logits[b, c, y, x].item(), target_map[c, y, x].item())
            for c in range(3) for y in range(4) for x in range(4)
        ) / 16
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)


def test_semantic_loss_is_differentiable() -> None:
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    semantic_loss(logits, [make_target(BOXES, LABELS)]).backward()
    assert logits.grad is not None and (logits.grad != 0).all()
