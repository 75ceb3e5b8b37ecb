"""Processes that torchrun started, over torch.distributed (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK): joining
the group, and handing Python objects to the first process. Training, evaluation and prediction share these."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from yolact.devices import resolve_device


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(device: str | torch.device = "auto") -> None:
    """Join the process group torchrun describes: NCCL on GPUs, gloo on CPUs. Does nothing outside torchrun.
    Under torchrun a single process joins a group of one too, so that the NCCL path runs on a one-GPU machine."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)  # NCCL's collectives run on the current device
    dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def cpu_group() -> Any:
    """A group whose collectives take CPU tensors and Python objects: the default one under gloo, a gloo group
    beside NCCL (which moves only GPU tensors). Every process must call it, in the same order."""
    if dist.get_backend() == "gloo":
        return None  # the default group
    return dist.new_group(backend="gloo")


def gather_to_first(item: Any, group: Any = None) -> list[Any] | None:
    """Every process's ``item``, in rank order, on rank 0 (None elsewhere); ``item`` itself outside torchrun."""
    if not dist.is_initialized():
        return [item]
    gathered: list[Any] | None = [None] * world_size() if rank() == 0 else None
    dist.gather_object(item, gathered, dst=0, group=group)
    return gathered
