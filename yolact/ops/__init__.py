"""Pure tensor functions for boxes, NMS and masks (they import nothing else of the package's)."""

from yolact.ops.boxes import (
    box_iou,
    cxcywh_to_xyxy,
    decode_boxes,
    encode_boxes,
    sanitize_coordinates,
    scale_boxes_to_image,
    xyxy_to_cxcywh,
)
from yolact.ops.masks import assemble_masks, crop_masks, paste_bounds, paste_masks
from yolact.ops.nms import cross_class_fast_nms, fast_nms, traditional_nms

__all__ = [
    "assemble_masks",
    "box_iou",
    "crop_masks",
    "cross_class_fast_nms",
    "cxcywh_to_xyxy",
    "decode_boxes",
    "encode_boxes",
    "fast_nms",
    "paste_bounds",
    "paste_masks",
    "sanitize_coordinates",
    "scale_boxes_to_image",
    "traditional_nms",
    "xyxy_to_cxcywh",
]
