"""Mask loss: per-pixel BCE of assembled, box-cropped masks (paper, "Mask Assembly"; the authors' lincomb_mask_loss).

For each positive anchor the mask sigmoid(P · c) is assembled from the prototypes and the anchor's coefficients,
cropped by its matched ground-truth box (the paper crops with the ground truth in training), and compared with
the ground-truth mask downsampled to the prototypes' size. Each instance's BCE sum is divided by its box's area
in prototype pixels, so small objects weigh as much as large ones (the authors'
``mask_proto_normalize_emulate_roi_pooling``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from yolact.ops import assemble_masks, crop_masks
from yolact.structures import InstanceTarget


def downsample_masks(masks: Tensor, height: int, width: int) -> Tensor:
    """Binary masks [G, S, S] (any dtype) -> float32 {0, 1} masks [G, height, width]: bilinear resize
    (align_corners=False), then strictly above 0.5, as the authors' ``mask_proto_binarize_downsampled_gt``."""
    if masks.shape[0] == 0:  # F.interpolate refuses empty inputs
        return masks.new_zeros((0, height, width), dtype=torch.float32)
    resized = F.interpolate(masks[None].float(), (height, width), mode="bilinear", align_corners=False)[0]
    return resized.gt(0.5).float()


class MaskIoUSamples(NamedTuple):
    """What YOLACT++'s mask-IoU loss trains on: each trained positive's cropped soft mask, the IoU of its
    binarised form with its ground truth, and the ground truth's class."""

    soft_masks: Tensor  # [M, 1, h, w], still attached to the graph (the authors do not detach them)
    iou: Tensor  # [M]
    labels: Tensor  # [M] contiguous class index


def mask_loss_and_iou_samples(
    prototypes: Tensor,
    mask_coeffs: Tensor,
    class_targets: Tensor,
    gt_index: Tensor,
    targets: Sequence[InstanceTarget],
    masks_to_train: int = 100,
    generator: torch.Generator | None = None,
    maskiou_min_area: float | None = None,
) -> tuple[Tensor, MaskIoUSamples | None]:
    """:func:`mask_loss`, and with ``maskiou_min_area`` YOLACT++'s mask-IoU samples from the same trained
    positives (those whose ground truth covers more than ``maskiou_min_area`` prototype pixels), as the authors'
    lincomb_mask_loss collects them; None when no positive qualifies."""
    _, mask_h, mask_w, _ = prototypes.shape
    total = prototypes.new_zeros((), dtype=torch.float32)
    samples: list[tuple[Tensor, Tensor, Tensor]] = []
    for b, target in enumerate(targets):
        positive = class_targets[b] > 0
        pos_gt_index = gt_index[b, positive]
        coeffs = mask_coeffs[b, positive]
        num_before = coeffs.shape[0]
        if num_before == 0:
            continue
        if num_before > masks_to_train:
            perm_device = generator.device if generator is not None else torch.device("cpu")
            select = torch.randperm(num_before, generator=generator, device=perm_device)[:masks_to_train]
            select = select.to(coeffs.device)
            coeffs = coeffs[select]
            pos_gt_index = pos_gt_index[select]
        num_after = coeffs.shape[0]

        with torch.no_grad():
            gt_masks = downsample_masks(target.masks.to(prototypes.device), mask_h, mask_w)[pos_gt_index]
            gt_boxes = target.boxes_xyxy.to(device=prototypes.device, dtype=torch.float32)[pos_gt_index]

        # BCE in float32 with autocast off: F.binary_cross_entropy refuses autocast and half precision would lose
        # the small per-pixel terms; in float32 training this changes nothing.
        with torch.autocast(prototypes.device.type, enabled=False):
            pred = assemble_masks(prototypes[b].float(), coeffs.float())  # [n, h, w], sigmoid(P · cᵀ)
            pred = crop_masks(pred, gt_boxes, padding=1)
            # The clamp is the authors': it guards BCE's domain against sigmoid rounding.
            bce = F.binary_cross_entropy(pred.clamp(0, 1), gt_masks, reduction="none").sum(dim=(1, 2))
            box_w = (gt_boxes[:, 2] - gt_boxes[:, 0]) * mask_w
            box_h = (gt_boxes[:, 3] - gt_boxes[:, 1]) * mask_h
            per_instance = bce / box_w / box_h
            if num_after < num_before:
                per_instance = per_instance * (num_before / num_after)
            total = total + per_instance.sum()
            if maskiou_min_area is not None:
                keep = gt_masks.sum(dim=(1, 2)) > maskiou_min_area
                if keep.any():
                    binary = pred[keep].gt(0.5).float()
                    gt_kept = gt_masks[keep]
                    intersection = (binary * gt_kept).sum(dim=(1, 2))
                    union = binary.sum(dim=(1, 2)) + gt_kept.sum(dim=(1, 2)) - intersection
                    labels = target.labels.to(prototypes.device)[pos_gt_index][keep]
                    samples.append((pred[keep][:, None], intersection / union, labels))
    if maskiou_min_area is None or not samples:
        return total, None
    return total, MaskIoUSamples(*(torch.cat(parts) for parts in zip(*samples, strict=True)))
