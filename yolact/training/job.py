"""``yolact train`` as a library call: :func:`run_training` reads a :class:`TrainJob`, wires data, starting point,
plan and validation to the :class:`~yolact.training.trainer.Trainer`, and runs it. Start reading here.

:func:`resume_job` gives the job a checkpoint was written by, with the options given again applied where a
resumed run may change them; :func:`check_job` checks a job before any data is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from yolact import distributed as dist_utils
from yolact.checkpoint import (
    drop_legacy_keys,
    load_backbone_weights,
    load_checkpoint,
    load_matching_weights,
    load_model_weights,
    read_state_dict,
)
from yolact.config import YolactConfig, get_config
from yolact.data.augment import TrainTransform
from yolact.data.coco import CocoDataset
from yolact.data.datasets import InstanceDataset
from yolact.data.splits import DataSplit
from yolact.devices import resolve_device
from yolact.errors import YolactError
from yolact.evaluation.evaluator import Evaluator
from yolact.inference.predictor import Predictor
from yolact.modeling import Yolact, build_yolact
from yolact.outputs import check_output_dir
from yolact.training.checkpoints import CHECKPOINT_NAMES, latest_checkpoint, read_resume_state
from yolact.training.metrics import CURVES, METRICS
from yolact.training.options import TrainJob, plan_run, solver_for
from yolact.training.trainer import Trainer


def run_training(job: TrainJob, report: Callable[[str], None] = print) -> Path:
    """Train as ``job`` says; returns the final checkpoint (``output_dir/last.pth``).

    In order: check the job; read the training data; when resuming, take the model, seed, batch and augmentation
    from the checkpoint; build the model and load its starting point; plan the run (solver, frozen BatchNorm,
    validation cadence); train. ``report`` gets what was decided, a line at a time (rank 0 only)."""
    check_job(job)
    dist_utils.init(job.device)
    say = report if dist_utils.rank() == 0 else (lambda _: None)
    assert job.train is not None  # check_job
    train_coco = job.train.load(job.class_names)
    base = job.config if isinstance(job.config, YolactConfig) else get_config(job.config)
    resumed = checkpoint = None
    if job.resume is not None:
        checkpoint = load_checkpoint(job.resume)
        resumed = read_resume_state(checkpoint, job.resume)
        base = checkpoint.config
        # The run continues as it was set up: same data order, batch and augmentation.
        job = dataclasses.replace(job, seed=resumed.job.seed, batch_size=resumed.job.batch_size,
                                  max_expand=resumed.job.max_expand)
    transform = TrainTransform(base.max_size, base.backbone, max_expand=job.max_expand)
    dataset = InstanceDataset(train_coco, transform, seed=job.seed)
    if base.num_classes != len(dataset.class_names) and resumed is not None:
        raise YolactError(f"{job.resume}: the run has {base.num_classes} classes but this training data "
                          f"has {len(dataset.class_names)}; resume on the data the run was started with, or start a "
                          f"new run from it with --weights {job.resume}")
    config = dataclasses.replace(base, num_classes=len(dataset.class_names))
    torch.manual_seed(job.seed)
    model = build_yolact(config)
    if resumed is not None:
        assert checkpoint is not None
        load_model_weights(model, checkpoint, job.resume)
        pretrained, solver = resumed.freeze_bn, resumed.solver  # frozen BatchNorm implies a pretrained start
    else:
        pretrained = _initialise(model, job, say)
        solver = solver_for(job, config, len(dataset), pretrained)
        if not pretrained and solver.grad_clip_norm is not None:
            say(f"from scratch: gradients clipped at norm {solver.grad_clip_norm:g} (ours; the authors start from "
                "ImageNet weights and clip nothing)")
    plan = plan_run(job, config, solver, pretrained, dist_utils.world_size())
    if plan.freeze_bn:
        say(f"BatchNorm frozen: pretrained weights and {job.batch_size // dist_utils.world_size()} images per "
            f"process (< {config.solver.freeze_bn_below_batch})")
    device = resolve_device(job.device)
    validate = None
    if job.val is not None:
        val_coco = job.val.load(dataset.class_names)
        validate = make_validator(val_coco, config, dataset.class_names, dataset.category_ids, device)
    trainer = Trainer(model, config, dataset, job, plan, dataset.class_names, dataset.category_ids, validate)
    if resumed is not None:
        trainer.resume(resumed)
        say(f"resumed from {job.resume} at iteration {trainer.state.iteration}")
    say(f"training {config.name} ({len(dataset.class_names)} classes, {len(dataset)} images) for "
        f"{plan.iterations} iterations at batch {job.batch_size}, lr {solver.lr:g}, on {device}"
        + (f" x {dist_utils.world_size()} processes" if dist_utils.world_size() > 1 else ""))
    try:
        return trainer.train()
    finally:
        dist_utils.cleanup()


# What a resumed run cannot change: they fix the model, the data order, the augmentation and the schedule, so a
# resumed run replays exactly what the uninterrupted one would have done.
FIXED_ON_RESUME = ("config", "iterations", "epochs", "batch_size", "lr", "weights", "backbone_weights", "seed",
                   "max_expand", "class_names")
FLAGS = {"config": "--config", "iterations": "--iterations", "epochs": "--epochs", "batch_size": "--batch-size",
         "lr": "--lr", "weights": "--weights", "backbone_weights": "--backbone-weights", "seed": "--seed",
         "max_expand": "--max-expand", "class_names": "names", "output_dir": "--output", "device": "--device",
         "workers": "--workers", "checkpoint_every": "--checkpoint-every", "keep_checkpoints": "--keep",
         "val_every": "--val-every", "log_every": "--log-every", "precision": "--precision", "sync_bn": "--sync-bn",
         "train": "the training data", "val": "the validation data"}


def resume_job(path: str | Path, report: Callable[[str], None] = print, **given: Any) -> TrainJob:
    """The job that wrote checkpoint ``path`` (or the newest checkpoint in the run folder ``path``), to continue.

    ``given`` are options set again (the flags of ``yolact train --resume``): where a run may change them (output,
    data location, device, workers, checkpoint and validation cadence, logging, precision) they override the
    saved ones and ``report`` says which; options that fix the schedule must equal the saved ones."""
    path = Path(path)
    if path.is_dir():
        path = latest_checkpoint(path)
    checkpoint = load_checkpoint(path)
    state = read_resume_state(checkpoint, path)
    saved = state.job
    if not state.job_recorded and given.get("train") is None:
        raise YolactError(f"{path}: this checkpoint does not record its data; give the training data again "
                          "(--data, or --train-ann/--train-labels with --train-images)")
    changes, overridden = {}, []
    for name, value in given.items():
        if value is None or name in ("progress", "resume"):
            continue
        before = getattr(saved, name)
        same = _same_value(value, before)
        if name in FIXED_ON_RESUME:
            if not same and not (name == "config" and value == checkpoint.config.name):
                raise YolactError(f"{FLAGS[name]} {_shown(value)}: this run was started with {_shown(before)}, and a "
                                  "resumed run keeps it; leave it out, or start a new run with --weights "
                                  f"{path} to change it")
            continue
        if not same:
            overridden.append(f"{FLAGS.get(name, name)} {_shown(value)} (was {_shown(before)})")
        changes[name] = value
    if "train" in changes and "val" not in changes:  # new data flags name both splits, or none
        changes["val"] = None
    if overridden:
        report("resumed with " + ", ".join(overridden))
    return dataclasses.replace(saved, **changes, resume=path, progress=given.get("progress", True))


def check_job(job: TrainJob) -> None:
    """Options in range and every output checked, before any data is read: one line naming the option."""
    if job.train is None:
        raise YolactError("give the training data: --data dataset.yaml, or --train-ann JSON (or --train-labels DIR) "
                          "with --train-images DIR")
    positive = {"batch_size": job.batch_size, "iterations": job.iterations, "epochs": job.epochs, "lr": job.lr,
                "checkpoint_every": job.checkpoint_every, "keep_checkpoints": job.keep_checkpoints,
                "val_every": job.val_every, "log_every": job.log_every}
    for name, value in positive.items():
        if value is not None and not value > 0:
            raise YolactError(f"{FLAGS.get(name, name)} {value}: give a positive number")
    if job.iterations is not None and job.epochs is not None:
        raise YolactError("give --iterations or --epochs, not both")
    if job.workers < 0:
        raise YolactError(f"--workers {job.workers}: give 0 (load in the main process) or more")
    if job.max_expand < 1.0:
        raise YolactError(f"--max-expand {job.max_expand:g}: give a zoom-out ratio >= 1 (1 turns expand off)")
    if job.batch_size < dist_utils.world_size():
        raise YolactError(f"--batch-size {job.batch_size} is smaller than the {dist_utils.world_size()} processes; "
                          "give at least one image per process")
    inputs = [p for split in (job.train, job.val) if split is not None
              for p in (split.images, split.annotations, split.labels, split.sbd) if p is not None]
    inputs += [p for p in (job.weights, job.backbone_weights) if p is not None]
    check_output_dir(job.output_dir, "--output", inputs, planned_names=[*CHECKPOINT_NAMES, METRICS, CURVES])


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, DataSplit) and isinstance(b, DataSplit):
        return all(_same_value(getattr(a, f), getattr(b, f)) for f in ("images", "annotations", "labels", "sbd"))
    if isinstance(a, Path) or isinstance(b, Path):
        return a is not None and b is not None and Path(a).absolute() == Path(b).absolute()
    return a == b


def _shown(value: Any) -> str:
    if isinstance(value, DataSplit):
        return str(value.annotations or value.labels or value.sbd)
    return str(value)


def _initialise(model: Yolact, job: TrainJob, report: Callable[[str], None]) -> bool:
    """Load the starting point; returns whether it is pretrained (which decides frozen BatchNorm)."""
    if job.weights is not None:
        path = Path(job.weights)
        state = drop_legacy_keys(read_state_dict(path))
        loaded, fresh = load_matching_weights(model, state)
        if not loaded:
            raise YolactError(f"{path}: no weight of this checkpoint fits config; is it a YOLACT checkpoint?")
        report(f"initialised from {path}: {len(loaded)} tensors loaded"
               + (f"; re-initialised (other shape or absent): {', '.join(_modules(fresh))}" if fresh else ""))
        return True
    if job.backbone_weights is not None:
        count = load_backbone_weights(model.backbone, job.backbone_weights, model_backbone_name(job))
        report(f"backbone initialised from {job.backbone_weights} ({count} tensors); the rest from scratch")
        return True
    report("training from scratch (no --weights or --backbone-weights)")
    return False


def model_backbone_name(job: TrainJob) -> str:
    config = job.config if isinstance(job.config, YolactConfig) else get_config(job.config)
    return f"the {config.backbone.display_name} backbone"


def _modules(keys: list[str]) -> list[str]:
    """Parameter names shortened to their modules (``prediction_layers.0.conf_layer``)."""
    return sorted({k.rsplit(".", 1)[0] for k in keys if not k.endswith("num_batches_tracked")})


def make_validator(dataset: CocoDataset, config: YolactConfig, class_names: list[str], category_ids: list[int],
                   device: torch.device) -> Callable[[Yolact], dict[str, float]]:
    def validate(model: Yolact) -> dict[str, float]:
        predictor = Predictor.from_model(model, config, class_names, category_ids, device=str(device),
                                         score_threshold=0.0, top_k=100)
        result = Evaluator(dataset, class_names).run(predictor, progress=False)
        return {"box_AP": result.bbox["AP"], "mask_AP": result.segm["AP"], "mask_AP50": result.segm["AP50"]}

    return validate
