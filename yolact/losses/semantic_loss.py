"""Semantic segmentation loss on P3 (paper, "Semantic Segmentation Loss"; training only).

A 1x1 conv on P3 predicts one sigmoid map per class; its target is, per class, the union of that class's
instances' masks downsampled to the map's size. The head is dropped at inference: the loss only shapes features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from yolact.losses.mask_loss import downsample_masks
from yolact.structures import InstanceTarget


def semantic_targets(target: InstanceTarget, num_classes: int, height: int, width: int) -> Tensor:
    """One image's float32 {0, 1} target [num_classes, height, width]: per class the union (max) of its
    instances' masks, each bilinearly downsampled and binarised at 0.5."""
    masks = downsample_masks(target.masks, height, width)  # [G, h, w]
    one_hot = F.one_hot(target.labels.to(device=masks.device, dtype=torch.int64), num_classes).float()  # [G, C]
    # Count of covering instances per class and pixel; > 0 is the union (the authors' running max).
    coverage = one_hot.t() @ masks.reshape(masks.shape[0], height * width)
    return coverage.gt(0).float().view(num_classes, height, width)


def semantic_loss(semantic_logits: Tensor, targets: Sequence[InstanceTarget]) -> Tensor:
    """BCE-with-logits summed over pixels and classes, divided by H3·W3, summed over images (the criterion then
    divides by the batch size). ``semantic_logits`` [B, C, H3, W3]."""
    _, num_classes, height, width = semantic_logits.shape
    total = semantic_logits.new_zeros((), dtype=torch.float32)
    for b, target in enumerate(targets):
        with torch.no_grad():
            segment_t = semantic_targets(target.to(semantic_logits.device), num_classes, height, width)
        logits = semantic_logits[b].float()
        total = total + F.binary_cross_entropy_with_logits(logits, segment_t, reduction="sum")
    return total / (height * width)
