"""Feature pyramid P3-P7 (paper, section 4; Lin et al. 2017) as the authors build it."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FPN(nn.Module):
    """C3..C5 -> P3..P7, all ``num_features`` channels.

    Lateral and output convs are stored top-down (index 0 belongs to C5/P5), as in the authors' checkpoints.
    P3-P5 get a ReLU after their 3x3 output conv; P6 and P7 are stride-2 3x3 convs on the ReLU'd P5, then on P6,
    with no ReLU.
    """

    def __init__(self, in_channels: list[int], num_features: int = 256, num_downsample: int = 2) -> None:
        super().__init__()
        self.lat_layers = nn.ModuleList(nn.Conv2d(c, num_features, kernel_size=1) for c in reversed(in_channels))
        self.pred_layers = nn.ModuleList(
            nn.Conv2d(num_features, num_features, kernel_size=3, padding=1) for _ in in_channels
        )
        self.downsample_layers = nn.ModuleList(
            nn.Conv2d(num_features, num_features, kernel_size=3, padding=1, stride=2) for _ in range(num_downsample)
        )

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        num_inputs = len(features)
        laterals: list[Tensor] = [features[0]] * num_inputs
        top_down: Tensor | None = None
        for i, lat_layer in enumerate(self.lat_layers):
            j = num_inputs - 1 - i
            lateral = lat_layer(features[j])
            if top_down is not None:
                size = features[j].shape[-2:]
                lateral = F.interpolate(top_down, size=size, mode="bilinear", align_corners=False) + lateral
            top_down = lateral
            laterals[j] = lateral
        outputs = [laterals[0]] * num_inputs
        for i, pred_layer in enumerate(self.pred_layers):
            j = num_inputs - 1 - i
            outputs[j] = F.relu(pred_layer(laterals[j]))
        for downsample in self.downsample_layers:
            outputs.append(downsample(outputs[-1]))
        return outputs
