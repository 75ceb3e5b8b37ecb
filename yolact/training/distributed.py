"""DistributedDataParallel for training (the process group itself: :mod:`yolact.distributed`)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    if not dist.is_initialized():
        return model
    ids = [device.index] if device.type == "cuda" else None
    # A batch may leave parameters without gradient (no positives in it: no mask loss through the coefficients),
    # so DDP must look for unused ones rather than wait for their gradients forever.
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
