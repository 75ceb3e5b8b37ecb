"""Small hand-made model outputs and targets for the loss tests (no network needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from yolact.losses import mask_loss_and_iou_samples
from yolact.modeling.yolact import YolactOutput
from yolact.ops import xyxy_to_cxcywh
from yolact.structures import InstanceTarget

INPUT_SIZE = 32  # S: ground-truth masks are S x S
PROTO_SIZE = 8  # prototypes h = w
SEMANTIC_SIZE = 4  # H3 = W3
NUM_CLASSES = 3
NUM_PROTOTYPES = 4


def grid_anchors() -> torch.Tensor:
    """cxcywh anchors on a 4x4 grid, two square sizes per cell (0.25 and 0.5): A = 32."""
    centres = (torch.arange(4, dtype=torch.float32) + 0.5) / 4
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    anchors = []
    for size in (0.25, 0.5):
        wh = torch.full_like(cx, size)
        anchors.append(torch.stack((cx, cy, wh, wh), dim=-1).view(-1, 4))
    return torch.cat(anchors)


def anchors_from_xyxy(boxes: Sequence[Sequence[float]]) -> torch.Tensor:
    return xyxy_to_cxcywh(torch.tensor(boxes, dtype=torch.float32))


def box_masks(boxes_xyxy: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 [G, size, size]: each box filled (pixel i inside when x1*size <= i < x2*size)."""
    coords = torch.arange(size, dtype=torch.float32)
    masks = []
    for x1, y1, x2, y2 in (boxes_xyxy * size).tolist():
        inside_x = (coords >= x1) & (coords < x2)
        inside_y = (coords >= y1) & (coords < y2)
        masks.append((inside_y[:, None] & inside_x[None, :]).to(torch.uint8))
    return torch.stack(masks) if masks else torch.zeros(0, size, size, dtype=torch.uint8)


def make_target(boxes: Sequence[Sequence[float]], labels: Sequence[int],
                crowd: Sequence[Sequence[float]] = (), size: int = INPUT_SIZE) -> InstanceTarget:
    """A target whose masks are exactly its boxes."""
    boxes_t = torch.tensor(boxes, dtype=torch.float32).view(-1, 4)
    return InstanceTarget(
        boxes_xyxy=boxes_t,
        labels=torch.tensor(labels, dtype=torch.int64).view(-1),
        masks=box_masks(boxes_t, size),
        crowd_boxes_xyxy=torch.tensor(crowd, dtype=torch.float32).view(-1, 4),
    )


def random_output(batch: int, seed: int = 0, requires_grad: bool = False) -> YolactOutput:
    """Random predictions on :func:`grid_anchors` (k = 4 prototypes of 8x8, 3 classes, semantic map 4x4)."""
    gen = torch.Generator().manual_seed(seed)
    anchors = grid_anchors()
    num_anchors = anchors.shape[0]

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).requires_grad_(requires_grad)

    return YolactOutput(
        loc=rand(batch, num_anchors, 4),
        class_logits=rand(batch, num_anchors, NUM_CLASSES + 1),
        mask_coeffs=torch.tanh(torch.randn(batch, num_anchors, NUM_PROTOTYPES, generator=gen)
                               ).requires_grad_(requires_grad),
        anchors_cxcywh=anchors,
        prototypes=torch.relu(torch.randn(batch, PROTO_SIZE, PROTO_SIZE, NUM_PROTOTYPES, generator=gen)
                              ).requires_grad_(requires_grad),
        semantic_logits=rand(batch, NUM_CLASSES, SEMANTIC_SIZE, SEMANTIC_SIZE),
    )


def two_image_targets() -> list[InstanceTarget]:
    """Image 0: two objects (classes 0 and 2); image 1: one object (class 1) and a crowd region."""
    return [
        make_target([[0.0, 0.0, 0.25, 0.25], [0.5, 0.5, 1.0, 1.0]], [0, 2]),
        make_target([[0.25, 0.25, 0.75, 0.5]], [1], crowd=[[0.0, 0.75, 0.5, 1.0]]),
    ]


def mask_loss(*args: Any, **kwargs: Any) -> Tensor:
    """The mask term alone, as the criterion computes it (``mask_loss_and_iou_samples``'s first value: summed,
    area-normalised mask BCE over the batch, unnormalised by the number of positives)."""
    return mask_loss_and_iou_samples(*args, **kwargs)[0]
