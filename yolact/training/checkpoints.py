"""A run's checkpoints: the training state they carry beside the weights, and the files of a run folder.

The state is written by :func:`save_training_checkpoint` and read back by :func:`read_resume_state`, the only two
places that know its layout (``save_checkpoint``'s extra fields)::

    iteration   the iterations done
    optimizer   SGD's state_dict (momentum buffers)
    scaler      the fp16 loss scaler's state_dict
    rng         torch's CPU (and CUDA) generator states
    history     the metrics log's rows so far (metrics.jsonl is rewritten to them on resume)
    train       how the run was set up: seed, batch_size, iterations, freeze_bn, max_expand, job (the TrainJob's
                record) and solver (SolverConfig.to_dict)

Checkpoints written before ``train`` held ``job`` (or ``max_expand``) still resume: they know the schedule, and the
data is given again. Periodic checkpoints (``iter_*.pth``) are rotated; ``last.pth`` ends a run and
``interrupt.pth`` a Ctrl+C.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yolact.checkpoint import Checkpoint, save_checkpoint
from yolact.config import SolverConfig, YolactConfig
from yolact.data.augment import MAX_EXPAND
from yolact.errors import YolactError
from yolact.training.options import TrainJob, TrainPlan

CHECKPOINT_NAMES = ("last.pth", "interrupt.pth")


def periodic_name(iteration: int) -> str:
    return f"iter_{iteration:07d}.pth"


@dataclass(frozen=True)
class ResumeState:
    """What a checkpoint holds to continue its run, beside the weights and the config."""

    iteration: int
    optimizer: dict[str, Any]
    scaler: dict[str, Any] | None
    rng: dict[str, Any]
    history: list[dict[str, Any]]
    job: TrainJob  # as started; for checkpoints that did not keep it, only the schedule (train=None)
    job_recorded: bool  # False: written before checkpoints kept their job (the data must be given again)
    solver: SolverConfig
    freeze_bn: bool


def save_training_checkpoint(path: Path, model: nn.Module, config: YolactConfig, class_names: Sequence[str],
                             category_ids: Sequence[int], job: TrainJob, plan: TrainPlan, iteration: int,
                             optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                             history: list[dict[str, Any]]) -> Path:
    """Write the weights and the training state atomically (the layout in this module's docstring)."""
    return save_checkpoint(
        path, model.state_dict(), config, class_names, category_ids,
        iteration=iteration,
        optimizer=optimizer.state_dict(),
        scaler=scaler.state_dict(),
        rng=rng_state(),
        history=history,
        train={"seed": job.seed, "batch_size": job.batch_size, "iterations": plan.iterations,
               "freeze_bn": plan.freeze_bn, "max_expand": job.max_expand, "job": job.to_record(),
               "solver": plan.solver.to_dict()},
    )


def read_resume_state(checkpoint: Checkpoint, path: str | Path) -> ResumeState:
    """The training state of a checkpoint (``checkpoint`` as load_checkpoint read it from ``path``)."""
    extra = checkpoint.extra
    if "optimizer" not in extra:
        raise YolactError(f"{path}: has no training state to resume; use --weights to start from it")
    train = extra.get("train", {})
    record = train.get("job")
    job = TrainJob.from_record(record) if record else TrainJob(config=checkpoint.config.name)
    # The schedule as the checkpoint states it: the same data order, batch and augmentation.
    job = dataclasses.replace(job, seed=int(train["seed"]), batch_size=int(train["batch_size"]),
                              max_expand=float(train.get("max_expand", MAX_EXPAND)))
    return ResumeState(
        iteration=int(extra["iteration"]),
        optimizer=extra["optimizer"],
        scaler=extra.get("scaler") or None,
        rng=extra["rng"],
        history=list(extra.get("history", [])),
        job=job,
        job_recorded=bool(record),
        solver=SolverConfig.from_dict(train["solver"]),
        freeze_bn=bool(train.get("freeze_bn", False)),
    )


def rotate(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest periodic checkpoints."""
    kept = sorted(folder.glob("iter_*.pth"))
    for old in kept[: max(0, len(kept) - keep)]:
        old.unlink(missing_ok=True)


def latest_checkpoint(folder: Path) -> Path:
    """The newest checkpoint of a run folder (``interrupt.pth``, ``iter_*.pth``, ``last.pth``)."""
    candidates = [p for p in folder.glob("*.pth") if p.name in CHECKPOINT_NAMES or p.name.startswith("iter_")]
    if not candidates:
        raise YolactError(f"--resume {folder}: no checkpoint in this folder (last.pth, interrupt.pth, iter_*.pth); "
                          "give a checkpoint file")
    return max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.name))


def remove_partial_writes(folder: Path) -> None:
    """Temporary files of checkpoints and of the log that a killed run left half written (atomic_write's names)."""
    for name in ("last.pth", "interrupt.pth", "iter_*.pth", "curves.png", "metrics.jsonl"):
        for partial in folder.glob(f".{name}.*.tmp"):
            partial.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
