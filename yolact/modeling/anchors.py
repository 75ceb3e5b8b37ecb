"""Anchor boxes for every FPN level, in the order the prediction head emits them."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from yolact.config import AnchorConfig


def make_anchors(
    feature_sizes: list[tuple[int, int]], config: AnchorConfig, input_size: int, device: torch.device | str = "cpu"
) -> Tensor:
    """Anchors [sum(H*W*A), 4] as relative (cx, cy, w, h), for levels with the given (H, W).

    For each level, for y, for x, for each scale, for each aspect ratio r: centre ((x + 0.5)/W, (y + 0.5)/H),
    width = scale*sqrt(r)/input_size and height = scale/sqrt(r)/input_size, or height = width for square
    anchors. Computed in Python floats then cast, as the authors' ``make_priors``, so values agree bit for bit.
    """
    values: list[float] = []
    for (height, width), scales in zip(feature_sizes, config.scales, strict=True):
        shapes = []
        for scale in scales:
            for ratio in config.aspect_ratios:
                root = math.sqrt(ratio)
                w = scale * root / input_size
                h = w if config.square else scale / root / input_size
                shapes.append((w, h))
        for y in range(height):
            for x in range(width):
                cx, cy = (x + 0.5) / width, (y + 0.5) / height
                for w, h in shapes:
                    values += [cx, cy, w, h]
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 4)
