"""Where a model runs: the one rule for ``"auto"``, for CUDA requested where there is none, and for the GPU of a
process that torchrun started."""

from __future__ import annotations

import os

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; anything else as torch.device understands it.

    A bare ``"cuda"`` (or auto on a GPU machine) in a process torchrun started is that process's own GPU,
    ``cuda:LOCAL_RANK``, so that N processes on one node use N GPUs rather than all sharing the first."""
    if device is None or device == "auto":
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    if resolved.type == "cuda" and resolved.index is None and "LOCAL_RANK" in os.environ:
        resolved = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return resolved
