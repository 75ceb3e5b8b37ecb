"""YOLACT training losses, as the authors' MultiBoxLoss: matching, OHEM class loss, smooth-L1 box loss, cropped
mask BCE and the semantic segmentation loss on P3."""

from yolact.losses.box_loss import box_loss
from yolact.losses.class_loss import ohem_class_loss, select_hard_negatives
from yolact.losses.criterion import YolactCriterion
from yolact.losses.mask_loss import downsample_masks, mask_loss
from yolact.losses.matching import AnchorMatch, match_anchors
from yolact.losses.semantic_loss import semantic_loss, semantic_targets

__all__ = [
    "AnchorMatch",
    "YolactCriterion",
    "box_loss",
    "downsample_masks",
    "mask_loss",
    "match_anchors",
    "ohem_class_loss",
    "select_hard_negatives",
    "semantic_loss",
    "semantic_targets",
]
