"""YOLACT training losses, as the authors' MultiBoxLoss: matching, OHEM class loss, smooth-L1 box loss, cropped
mask BCE and the semantic segmentation loss on P3; YOLACT++'s mask-IoU loss."""

from yolact.losses.box_loss import box_loss
from yolact.losses.class_loss import ohem_class_loss, select_hard_negatives
from yolact.losses.criterion import YolactCriterion
from yolact.losses.mask_loss import MaskIoUSamples, downsample_masks, mask_loss_and_iou_samples
from yolact.losses.maskiou_loss import maskiou_loss
from yolact.losses.matching import AnchorMatch, match_anchors
from yolact.losses.semantic_loss import semantic_loss, semantic_targets

__all__ = [
    "AnchorMatch",
    "MaskIoUSamples",
    "YolactCriterion",
    "box_loss",
    "downsample_masks",
    "mask_loss_and_iou_samples",
    "maskiou_loss",
    "match_anchors",
    "ohem_class_loss",
    "select_hard_negatives",
    "semantic_loss",
    "semantic_targets",
]
