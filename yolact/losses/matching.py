"""Anchor-to-ground-truth matching, as the authors' ``match`` (layers/box_utils.py of dbolya/yolact).

Each anchor takes the ground truth it overlaps most (IoU); IoU >= ``positive_iou`` makes it positive, IoU <
``negative_iou`` background, anything between neutral (ignored by every loss). Every ground truth's best anchor is
forced positive, greedily in order of overlap, so no object goes untrained. Non-positive anchors that lie mostly
inside a crowd region become neutral (the authors' ``crowd_iou_threshold``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from yolact.ops import box_iou, cxcywh_to_xyxy, encode_boxes

# Class target of anchors that no loss sees.
NEUTRAL = -1
BACKGROUND = 0


class AnchorMatch(NamedTuple):
    """One image's training targets per anchor."""

    class_targets: Tensor  # [A] int64: 0 background, c + 1 for class c, -1 neutral
    gt_index: Tensor  # [A] int64: the matched ground truth (meaningful where class_targets > 0)
    box_targets: Tensor  # [A, 4] encoded offsets of the matched ground truth (zeros when there is none)


@torch.no_grad()
def match_anchors(
    gt_boxes_xyxy: Tensor,
    gt_labels: Tensor,
    crowd_boxes_xyxy: Tensor,
    anchors_cxcywh: Tensor,
    positive_iou: float = 0.5,
    negative_iou: float = 0.4,
    crowd_iou: float = 0.7,
    variances: tuple[float, float] = (0.1, 0.2),
) -> AnchorMatch:
    """Match anchors [A, 4] (relative cxcywh) to ground truths [G, 4] (relative xyxy) of labels [G] (0..C-1).

    ``crowd_boxes_xyxy`` [Gc, 4] may be empty. Everything is computed on the anchors' device without host syncs
    (the forcing loop runs G times, never over anchors).
    """
    device, dtype = anchors_cxcywh.device, anchors_cxcywh.dtype
    num_anchors = anchors_cxcywh.shape[0]
    anchors_xyxy = cxcywh_to_xyxy(anchors_cxcywh)
    gt_boxes = gt_boxes_xyxy.to(device=device, dtype=dtype)
    gt_labels = gt_labels.to(device=device, dtype=torch.int64)
    num_gt = gt_boxes.shape[0]

    if num_gt == 0:
        # Nothing to match: every anchor is background (the crowd rule below can still make some neutral).
        class_targets = torch.zeros(num_anchors, dtype=torch.int64, device=device)
        gt_index = torch.zeros(num_anchors, dtype=torch.int64, device=device)
        box_targets = torch.zeros(num_anchors, 4, dtype=dtype, device=device)
    else:
        overlaps = box_iou(gt_boxes, anchors_xyxy)  # [G, A]
        best_truth_overlap, best_truth_idx = overlaps.max(dim=0)  # [A]: best ground truth of each anchor

        # Force each ground truth's best anchor positive. Greedy in order of overlap (the authors' "smart order"):
        # take the highest remaining (gt j, anchor i) pair, then retire both row j and column i, so two ground
        # truths wanting the same anchor are resolved in favour of the higher overlap and the other one moves on to
        # its next-best anchor. Tensor indices (no .item()) keep this free of host syncs on the GPU.
        for _ in range(num_gt):
            best_prior_overlap, best_prior_idx = overlaps.max(dim=1)  # [G]
            j = best_prior_overlap.argmax().view(1)
            i = best_prior_idx[j]
            overlaps.index_fill_(1, i, -1.0)
            overlaps.index_fill_(0, j, -1.0)
            best_truth_overlap.index_fill_(0, i, 2.0)  # 2 > any IoU: never thresholded away
            best_truth_idx.index_copy_(0, i, j)

        class_targets = gt_labels[best_truth_idx] + 1
        # Order matters: below negative_iou overrides the neutral set below positive_iou.
        class_targets[best_truth_overlap < positive_iou] = NEUTRAL
        class_targets[best_truth_overlap < negative_iou] = BACKGROUND
        gt_index = best_truth_idx
        box_targets = encode_boxes(gt_boxes[best_truth_idx], anchors_cxcywh, variances)

    if crowd_boxes_xyxy.shape[0] > 0 and crowd_iou < 1:
        crowd = crowd_boxes_xyxy.to(device=device, dtype=dtype)
        # Intersection over the anchor's own area: an anchor mostly inside a crowd region is ambiguous.
        crowd_overlap = box_iou(anchors_xyxy, crowd, crowd=True).max(dim=1).values  # [A]
        class_targets[(class_targets <= 0) & (crowd_overlap > crowd_iou)] = NEUTRAL

    return AnchorMatch(class_targets, gt_index, box_targets)
