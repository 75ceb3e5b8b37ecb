"""Protonet: k prototype masks from P3 (paper, section 3.2 and figure 3)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Upsample(nn.Module):
    def __init__(self, scale_factor: float) -> None:
        super().__init__()
        self.scale_factor = scale_factor

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)


class Protonet(nn.Sequential):
    """3x(3x3 conv + ReLU), x2 bilinear upsample + ReLU, 3x3 conv + ReLU, 1x1 conv to k, ReLU.

    A Sequential so that its parameters carry the authors' indices (``proto_net.0`` ... ``proto_net.10``).
    Input [B, C, H, W] -> prototypes [B, 2H, 2W, k], channels last so that P·Cᵀ is a plain matmul.
    """

    def __init__(self, in_channels: int = 256, channels: int = 256, num_prototypes: int = 32) -> None:
        super().__init__(
            nn.Conv2d(in_channels, channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            Upsample(scale_factor=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, num_prototypes, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(super().forward(x)).permute(0, 2, 3, 1)
