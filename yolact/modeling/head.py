"""The prediction head shared by all FPN levels (paper, section 3.3 and figure 4)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn


class HeadOutput(NamedTuple):
    loc: Tensor  # [B, H*W*A, 4] box offsets
    class_logits: Tensor  # [B, H*W*A, num_classes + 1], background first
    mask_coeffs: Tensor  # [B, H*W*A, k], tanh


class PredictionHead(nn.Module):
    """A 3x3 conv + ReLU, then parallel 3x3 convs for boxes, classes and mask coefficients (tanh).

    Outputs are flattened in (y, x, anchor) order, matching the anchors of :mod:`yolact.modeling.anchors`.
    """

    def __init__(self, channels: int, num_anchors: int, num_classes: int, num_prototypes: int) -> None:
        super().__init__()
        self.num_classes = num_classes + 1  # background
        self.num_prototypes = num_prototypes
        self.upfeature = nn.Sequential(nn.Conv2d(channels, channels, kernel_size=3, padding=1), nn.ReLU(inplace=True))
        self.bbox_layer = nn.Conv2d(channels, num_anchors * 4, kernel_size=3, padding=1)
        self.conf_layer = nn.Conv2d(channels, num_anchors * self.num_classes, kernel_size=3, padding=1)
        self.mask_layer = nn.Conv2d(channels, num_anchors * num_prototypes, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> HeadOutput:
        batch = x.shape[0]
        x = self.upfeature(x)
        loc = self.bbox_layer(x).permute(0, 2, 3, 1).reshape(batch, -1, 4)
        class_logits = self.conf_layer(x).permute(0, 2, 3, 1).reshape(batch, -1, self.num_classes)
        mask_coeffs = torch.tanh(self.mask_layer(x).permute(0, 2, 3, 1).reshape(batch, -1, self.num_prototypes))
        return HeadOutput(loc, class_logits, mask_coeffs)
