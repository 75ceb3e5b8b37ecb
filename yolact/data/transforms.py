"""Image transforms that decide the network's input (the authors' FastBaseTransform)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from yolact.config import BackboneConfig


def image_to_tensor(image_bgr: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """uint8 BGR image [H, W, 3] -> float tensor [1, 3, H, W] (still BGR, 0-255)."""
    return torch.from_numpy(np.ascontiguousarray(image_bgr)).to(device).permute(2, 0, 1)[None].float()


def normalize_image(image_bgr: Tensor, size: int, backbone: BackboneConfig) -> Tensor:
    """BGR float images [B, 3, H, W] (0-255) -> network input [B, 3, size, size], RGB.

    Resize first (bilinear, align_corners=False, no antialiasing, aspect ratio not kept), then normalise:
    (x - mean) / std for ResNets, x / 255 for DarkNet; finally BGR -> RGB.
    """
    image = F.interpolate(image_bgr, (size, size), mode="bilinear", align_corners=False)
    if backbone.normalize:
        mean = image.new_tensor(backbone.mean_bgr).view(1, 3, 1, 1)
        std = image.new_tensor(backbone.std_bgr).view(1, 3, 1, 1)
        image = (image - mean) / std
    else:
        image = image / 255
    return image[:, (2, 1, 0)].contiguous()
