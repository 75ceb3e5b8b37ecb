"""Modulated deformable convolution (DCNv2, Zhu et al. 2019) on ``torchvision.ops.deform_conv2d``: YOLACT++'s
backbone convolution, with no compiled extension, on CPU and GPU.

The parameters carry the names of the authors' DCN module (``weight``, ``bias``, ``conv_offset_mask.*``), so
their YOLACT++ checkpoints load as they are.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchvision.ops import deform_conv2d


class ModulatedDeformConv2d(nn.Module):
    """A k x k convolution whose every tap samples at a learned offset and is scaled by a learned mask.

    A plain conv (``conv_offset_mask``, same stride and padding) predicts 3·k² channels per output position:
    the first 2·k² are the offsets, as (dy, dx) pairs per tap, the last k² the modulation after a sigmoid.
    Zero-initialised, it starts as the plain convolution with every tap weighted 0.5 (the authors' init).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.conv_offset_mask = nn.Conv2d(in_channels, 3 * kernel_size * kernel_size, kernel_size, stride=stride,
                                          padding=padding, dilation=dilation, bias=True)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: Tensor) -> Tensor:
        offset_y_x_1, offset_y_x_2, mask = torch.chunk(self.conv_offset_mask(x), 3, dim=1)
        offset = torch.cat((offset_y_x_1, offset_y_x_2), dim=1)
        # torchvision's CPU kernel has no bf16/fp16 version and no autocast rule: under mixed precision the
        # deformable conv runs in float32 (a no-op in fp32 inference and training).
        with torch.autocast(x.device.type, enabled=False):
            bias = self.bias.float() if self.bias is not None else None
            return deform_conv2d(x.float(), offset.float(), self.weight.float(), bias, stride=self.stride,
                                 padding=self.padding, dilation=self.dilation, mask=torch.sigmoid(mask.float()))
