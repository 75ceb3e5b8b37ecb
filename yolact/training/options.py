"""What a run is set up with, and what it derives from that before its first iteration.

:class:`TrainJob` is the one record of a run's options (the flags of ``yolact train``); checkpoints keep it, so
``--resume CKPT`` alone continues the run. :class:`TrainPlan` is what :func:`yolact.training.job.run_training`
works out from the job, the data and the starting point (the solver, frozen BatchNorm, the validation cadence),
each by a small pure function below. Both are frozen: change one with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolact.config import SolverConfig, YolactConfig
from yolact.data.augment import MAX_EXPAND
from yolact.data.splits import DataSplit


@dataclass(frozen=True)
class TrainJob:
    """Everything one ``yolact train`` run is set up with; checkpoints keep it (:meth:`to_record`), so
    ``--resume CKPT`` alone continues the run as it was started (:func:`yolact.training.job.resume_job`)."""

    train: DataSplit | None = None  # None only in a job that resumes and takes its data from the checkpoint
    output_dir: Path = Path("runs/train")
    val: DataSplit | None = None
    class_names: list[str] | None = None  # for YOLO labels
    config: str | YolactConfig = "yolact_resnet18"
    iterations: int | None = None  # default: the authors' schedule at this batch size
    epochs: float | None = None  # alternative to iterations: passes over the training images
    batch_size: int = 8  # global, over all processes
    lr: float | None = None  # default: the authors' 1e-3 x batch/8
    weights: Path | None = None  # an official or our checkpoint to start from (fine-tuning)
    backbone_weights: Path | None = None  # an ImageNet backbone file
    resume: Path | None = None
    device: str = "auto"
    workers: int = 2
    seed: int = 0  # the initialisation, the data order and the augmentation
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    val_every: int | None = None  # default: at every checkpoint when there is validation data (validation_every)
    log_every: int = 10
    precision: str = "auto"  # auto | fp32 | fp16 | bf16 (yolact.training.trainer.resolve_precision)
    sync_bn: bool = False
    progress: bool = True
    max_expand: float = MAX_EXPAND  # expand's largest zoom-out (the authors' 4; 1 turns it off)

    def to_record(self) -> dict[str, Any]:
        """The job as builtins for a checkpoint (absolute paths; no progress, no resume)."""
        record: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            if item.name in ("progress", "resume"):
                continue
            value = getattr(self, item.name)
            if isinstance(value, DataSplit):
                value = {k: None if v is None else str(Path(v).absolute())
                         for k, v in dataclasses.asdict(value).items()}
            elif isinstance(value, Path):
                value = str(value.absolute())
            elif isinstance(value, YolactConfig):
                value = value.name
            record[item.name] = value
        return record

    @staticmethod
    def from_record(record: dict[str, Any]) -> TrainJob:
        known = {item.name: item for item in dataclasses.fields(TrainJob)}
        values: dict[str, Any] = {}
        for name, value in record.items():
            if name not in known:
                continue  # written by a later version
            if name in ("train", "val") and value is not None:
                value = DataSplit(**{k: None if v is None else Path(v) for k, v in value.items()})
            elif name in ("output_dir", "weights", "backbone_weights") and value is not None:
                value = Path(value)
            values[name] = value
        return TrainJob(**values)


@dataclass(frozen=True)
class TrainPlan:
    """What a run derives from its job before the first iteration, handed to the trainer as it is."""

    solver: SolverConfig  # the optimisation and its schedule; solver.max_iterations is the run's length
    freeze_bn: bool = False  # BatchNorm in eval mode with no gradient (freezes_batchnorm)
    val_every: int | None = None  # validation cadence in iterations; None: no validation

    @property
    def iterations(self) -> int:
        return self.solver.max_iterations


def run_length(job: TrainJob, num_samples: int) -> int | None:
    """The iterations the job asks for (``--iterations``, or ``--epochs`` passes over ``num_samples`` images);
    None: the preset's schedule."""
    if job.epochs is not None:
        return max(1, math.ceil(job.epochs * num_samples / job.batch_size))
    return job.iterations


def solver_for(job: TrainJob, config: YolactConfig, num_samples: int, pretrained: bool) -> SolverConfig:
    """The solver of a new run: the preset's, scaled to the batch (the authors' rule), sized to the run's length
    where the job gives one, at ``--lr`` where given; from scratch, with the preset's gradient clipping."""
    solver = config.solver.scaled(job.batch_size)
    iterations = run_length(job, num_samples)
    if iterations is not None:
        solver = solver.for_iterations(iterations)
    if job.lr is not None:
        solver = dataclasses.replace(solver, lr=job.lr, warmup_init=job.lr / 10)
    return solver if pretrained else solver.for_scratch()


def freezes_batchnorm(config: YolactConfig, batch_size: int, world_size: int, pretrained: bool) -> bool:
    """Whether BatchNorm stays frozen: pretrained weights and too few images per process for batch statistics."""
    return pretrained and batch_size // world_size < config.solver.freeze_bn_below_batch


def validation_every(job: TrainJob) -> int | None:
    """``--val-every``; with validation data and no ``--val-every``, at every checkpoint; without data, never."""
    return job.val_every or (job.checkpoint_every if job.val is not None else None)


def plan_run(job: TrainJob, config: YolactConfig, solver: SolverConfig, pretrained: bool, world_size: int
             ) -> TrainPlan:
    return TrainPlan(solver=solver, freeze_bn=freezes_batchnorm(config, job.batch_size, world_size, pretrained),
                     val_every=validation_every(job))
