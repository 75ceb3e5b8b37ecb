"""Distributed training helpers over torch.distributed (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from yolact.devices import resolve_device


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(device: str | torch.device = "auto") -> None:
    """Join the process group torchrun describes: NCCL on GPUs, gloo on CPUs. Does nothing outside torchrun.
    Under torchrun a single process joins a group of one too, so that the NCCL path runs on a one-GPU machine."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    backend = "nccl" if training_device(device).type == "cuda" else "gloo"
    dist.init_process_group(backend)


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def training_device(device: str | torch.device = "auto") -> torch.device:
    """The device of this process: its local GPU under torchrun, else as asked (auto: CUDA when available)."""
    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None and launched_by_torchrun():
        resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return resolved


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    if not dist.is_initialized():
        return model
    ids = [device.index] if device.type == "cuda" else None
    # A batch may leave parameters without gradient (no positives in it: no mask loss through the coefficients),
    # so DDP must look for unused ones rather than wait for their gradients forever.
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
