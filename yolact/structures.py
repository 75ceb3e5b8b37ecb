"""Training targets shared by the data pipeline and the losses."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class InstanceTarget(NamedTuple):
    """One image's ground truth, after augmentation, in the network input's frame (S x S).

    Crowd regions (COCO ``iscrowd``) carry no mask or label: they only make overlapping anchors neutral.
    """

    boxes_xyxy: Tensor  # [G, 4] float, relative to the input (0..1)
    labels: Tensor  # [G] int64, contiguous class index 0..num_classes-1 (background excluded)
    masks: Tensor  # [G, S, S] uint8 {0, 1} at input resolution
    crowd_boxes_xyxy: Tensor  # [Gc, 4] float, relative

    def to(self, device: torch.device | str) -> InstanceTarget:
        return InstanceTarget(*(t.to(device, non_blocking=True) for t in self))

    @staticmethod
    def empty(size: int) -> InstanceTarget:
        return InstanceTarget(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64),
                              torch.zeros(0, size, size, dtype=torch.uint8), torch.zeros(0, 4))
