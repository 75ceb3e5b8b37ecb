"""Box operations: format conversion, IoU, and SSD box coding. Pure tensor functions."""

from __future__ import annotations

import torch
from torch import Tensor


def cxcywh_to_xyxy(boxes_cxcywh: Tensor) -> Tensor:
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x1, y1, x2, y2)."""
    centre, size = boxes_cxcywh[..., :2], boxes_cxcywh[..., 2:]
    return torch.cat((centre - size / 2, centre + size / 2), dim=-1)


def xyxy_to_cxcywh(boxes_xyxy: Tensor) -> Tensor:
    """[..., 4] (x1, y1, x2, y2) -> [..., 4] (cx, cy, w, h)."""
    top_left, bottom_right = boxes_xyxy[..., :2], boxes_xyxy[..., 2:]
    return torch.cat(((top_left + bottom_right) / 2, bottom_right - top_left), dim=-1)


def _area(boxes_xyxy: Tensor) -> Tensor:
    return (boxes_xyxy[..., 2] - boxes_xyxy[..., 0]) * (boxes_xyxy[..., 3] - boxes_xyxy[..., 1])


def box_iou(boxes_a_xyxy: Tensor, boxes_b_xyxy: Tensor, crowd: bool = False) -> Tensor:
    """Pairwise IoU: [A, 4], [B, 4] -> [A, B], or batched [N, A, 4], [N, B, 4] -> [N, A, B].

    No +1 in widths (boxes are continuous, usually relative). With ``crowd=True`` the intersection is divided by
    the area of ``boxes_a`` instead of the union (COCO's crowd-region overlap, used by matching).
    """
    top_left = torch.maximum(boxes_a_xyxy[..., :, None, :2], boxes_b_xyxy[..., None, :, :2])
    bottom_right = torch.minimum(boxes_a_xyxy[..., :, None, 2:], boxes_b_xyxy[..., None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area_a = _area(boxes_a_xyxy)[..., :, None]
    if crowd:
        return inter / area_a
    area_b = _area(boxes_b_xyxy)[..., None, :]
    return inter / (area_a + area_b - inter)


def decode_boxes(loc: Tensor, anchors_cxcywh: Tensor, variances: tuple[float, float] = (0.1, 0.2)) -> Tensor:
    """Regression offsets [..., A, 4] and anchors [A, 4] (cx, cy, w, h) -> boxes [..., A, 4] xyxy.

    centre = anchor_c + loc_c * v0 * anchor_wh;  wh = anchor_wh * exp(loc_wh * v1)  (SSD; not clamped).
    """
    centre = anchors_cxcywh[..., :2] + loc[..., :2] * variances[0] * anchors_cxcywh[..., 2:]
    size = anchors_cxcywh[..., 2:] * torch.exp(loc[..., 2:] * variances[1])
    # Same operation order as the authors' decode: x1 = c - wh/2, then x2 = x1 + wh.
    top_left = centre - size / 2
    return torch.cat((top_left, size + top_left), dim=-1)


def encode_boxes(boxes_xyxy: Tensor, anchors_cxcywh: Tensor, variances: tuple[float, float] = (0.1, 0.2)) -> Tensor:
    """Inverse of :func:`decode_boxes`: boxes [A, 4] xyxy matched to anchors [A, 4] cxcywh -> offsets [A, 4]."""
    boxes = xyxy_to_cxcywh(boxes_xyxy)
    centre = (boxes[..., :2] - anchors_cxcywh[..., :2]) / (variances[0] * anchors_cxcywh[..., 2:])
    size = torch.log(boxes[..., 2:] / anchors_cxcywh[..., 2:]) / variances[1]
    return torch.cat((centre, size), dim=-1)


def sanitize_coordinates(x1: Tensor, x2: Tensor, size: int, padding: float = 0) -> tuple[Tensor, Tensor]:
    """Relative coordinates [N] -> ordered absolute ones [N] scaled by ``size``, padded and clamped to [0, size].

    As the authors' ``sanitize_coordinates``: the low end is clamped at 0 only, the high end at ``size`` only.
    """
    x1 = x1 * size
    x2 = x2 * size
    low = torch.minimum(x1, x2)
    high = torch.maximum(x1, x2)
    return (low - padding).clamp(min=0), (high + padding).clamp(max=size)


def scale_boxes_to_image(boxes_xyxy: Tensor, width: int, height: int) -> Tensor:
    """Relative boxes [N, 4] -> integer pixel boxes [N, 4] (int64): scaled, ordered, clamped, truncated."""
    x1, x2 = sanitize_coordinates(boxes_xyxy[:, 0], boxes_xyxy[:, 2], width)
    y1, y2 = sanitize_coordinates(boxes_xyxy[:, 1], boxes_xyxy[:, 3], height)
    return torch.stack((x1, y1, x2, y2), dim=1).long()
