"""``yolact train`` as a library call: data, starting point, validation and the trainer, wired together."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from yolact.checkpoint import (
    drop_legacy_keys,
    load_backbone_weights,
    load_checkpoint,
    load_matching_weights,
    load_model_weights,
    read_state_dict,
)
from yolact.config import SolverConfig, YolactConfig, get_config
from yolact.data.augment import MAX_EXPAND, TrainTransform
from yolact.data.coco import AnnotationError, CocoDataset, coco_from_dict, load_coco, validate_coco
from yolact.data.datasets import InstanceDataset
from yolact.data.yolo import yolo_to_coco
from yolact.engine import distributed as dist_utils
from yolact.engine.evaluator import Evaluator
from yolact.engine.predictor import Predictor
from yolact.engine.trainer import Trainer, TrainOptions
from yolact.errors import YolactError
from yolact.modeling import Yolact, build_yolact


@dataclass
class DataSplit:
    """One split: a COCO annotation file, or a YOLO-seg labels folder, and its images."""

    images: Path
    annotations: Path | None = None  # COCO JSON
    labels: Path | None = None  # YOLO-seg .txt folder

    def load(self, class_names: list[str] | None = None) -> CocoDataset:
        if self.annotations is not None:
            return load_coco(self.annotations, self.images)
        if self.labels is None:
            raise YolactError(f"{self.images}: give its COCO annotation file or its YOLO labels folder")
        data = validate_coco(yolo_to_coco(self.images, self.labels, class_names), self.labels)
        return CocoDataset(self.labels, self.images, coco_from_dict(data))


@dataclass
class TrainJob:
    train: DataSplit
    output_dir: Path
    val: DataSplit | None = None
    class_names: list[str] | None = None  # for YOLO labels
    config: str = "yolact_resnet18"
    iterations: int | None = None  # default: the authors' schedule at this batch size
    epochs: float | None = None  # alternative to iterations: passes over the training images
    batch_size: int = 8
    lr: float | None = None  # default: the authors' 1e-3 x batch/8
    weights: Path | None = None  # an official or our checkpoint to start from (fine-tuning)
    backbone_weights: Path | None = None  # an ImageNet backbone file
    resume: Path | None = None
    device: str = "auto"
    workers: int = 2
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    val_every: int | None = None
    log_every: int = 10
    precision: str = "auto"  # auto | fp32 | fp16 | bf16 (yolact.engine.trainer.resolve_precision)
    sync_bn: bool = False
    progress: bool = True
    max_expand: float = MAX_EXPAND  # expand's largest zoom-out (the authors' 4; 1 turns it off)


def read_dataset_yaml(path: Path) -> tuple[DataSplit, DataSplit | None, list[str] | None]:
    """A dataset YAML: ``train: {annotations|labels, images}``, optional ``val`` likewise, optional ``names``;
    relative paths are taken from the YAML's folder."""
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AnnotationError(f"{path}: cannot read this dataset YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("train"), dict):
        raise AnnotationError(f"{path}: expected 'train: {{annotations: ..., images: ...}}' (and optionally 'val')")

    def split(name: str) -> DataSplit | None:
        entry = spec.get(name)
        if entry is None:
            return None
        if not isinstance(entry, dict) or "images" not in entry:
            raise AnnotationError(f"{path}: '{name}' needs 'images' and 'annotations' (COCO) or 'labels' (YOLO)")

        def resolve(key: str) -> Path | None:
            return (path.parent / entry[key]) if entry.get(key) else None

        return DataSplit(resolve("images"), resolve("annotations"), resolve("labels"))  # type: ignore[arg-type]

    names = spec.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    return split("train"), split("val"), names  # type: ignore[return-value]


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
    return f"the {get_config(job.config).backbone.display_name} backbone"


def _modules(keys: list[str]) -> list[str]:
    """Parameter names shortened to their modules (``prediction_layers.0.conf_layer``)."""
    return sorted({k.rsplit(".", 1)[0] for k in keys if not k.endswith("num_batches_tracked")})


def make_validator(dataset: CocoDataset, config: YolactConfig, class_names: list[str], category_ids: list[int],
                   device: torch.device) -> Callable[[Yolact], dict[str, float]]:
    def validate(model: Yolact) -> dict[str, float]:
        predictor = Predictor(model, config, class_names, category_ids, device, score_threshold=0.0, top_k=100)
        result = Evaluator(dataset, class_names).run(predictor, progress=False)
        return {"box_AP": result.bbox["AP"], "mask_AP": result.segm["AP"], "mask_AP50": result.segm["AP50"]}

    return validate


def run_training(job: TrainJob, report: Callable[[str], None] = print) -> Path:
    """Train as ``job`` says; returns the final checkpoint (``output_dir/last.pth``)."""
    dist_utils.init(job.device)
    main = dist_utils.rank() == 0
    say = report if main else (lambda _: None)
    train_coco = job.train.load(job.class_names)
    base = get_config(job.config)
    resumed = None
    if job.resume is not None:
        resumed = load_checkpoint(job.resume)
        if "optimizer" not in resumed.extra:
            raise YolactError(f"{job.resume}: has no training state to resume; use --weights to start from it")
        base = resumed.config
        # The run continues as it was set up: same data order, batch and schedule.
        saved = resumed.extra.get("train", {})
        job = dataclasses.replace(job, seed=int(saved["seed"]), batch_size=int(saved["batch_size"]),
                                  max_expand=float(saved.get("max_expand", MAX_EXPAND)))
    if job.max_expand < 1.0:
        raise YolactError(f"--max-expand {job.max_expand:g}: give a zoom-out ratio >= 1 (1 turns expand off)")
    transform = TrainTransform(base.max_size, base.backbone, max_expand=job.max_expand)
    dataset = InstanceDataset(train_coco, transform, seed=job.seed)
    config = dataclasses.replace(base, num_classes=len(dataset.class_names))
    if resumed is not None:
        solver = SolverConfig(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in resumed.extra["train"]["solver"].items()})
    else:
        solver = config.solver.scaled(job.batch_size)
        iterations = job.iterations
        if job.epochs is not None:
            iterations = max(1, math.ceil(job.epochs * len(dataset) / job.batch_size))
        if iterations is not None:
            solver = solver.for_iterations(iterations)
        if job.lr is not None:
            solver = dataclasses.replace(solver, lr=job.lr, warmup_init=job.lr / 10)
    torch.manual_seed(job.seed)
    model = build_yolact(config)
    pretrained = False
    if resumed is not None:
        load_model_weights(model, resumed, job.resume)
        pretrained = bool(resumed.extra.get("train", {}).get("freeze_bn", False))
    else:
        pretrained = _initialise(model, job, say)
    per_process = job.batch_size // dist_utils.world_size()
    freeze_bn = pretrained and per_process < config.solver.freeze_bn_below_batch
    if freeze_bn:
        say(f"BatchNorm frozen: pretrained weights and {per_process} images per process "
            f"(< {config.solver.freeze_bn_below_batch})")
    options = TrainOptions(
        output_dir=job.output_dir, iterations=solver.max_iterations, batch_size=job.batch_size, seed=job.seed,
        device=job.device, workers=job.workers, checkpoint_every=job.checkpoint_every,
        keep_checkpoints=job.keep_checkpoints, log_every=job.log_every, val_every=job.val_every,
        precision=job.precision, freeze_bn=freeze_bn, sync_bn=job.sync_bn, progress=job.progress,
        max_expand=job.max_expand,
    )
    device = dist_utils.training_device(job.device)
    validate = None
    if job.val is not None:
        val_coco = job.val.load(dataset.class_names)
        validate = make_validator(val_coco, config, dataset.class_names, dataset.category_ids, device)
    trainer = Trainer(model, config, dataset, options, dataset.class_names, dataset.category_ids, validate, solver)
    if resumed is not None:
        trainer.resume(resumed.extra)
        say(f"resumed from {job.resume} at iteration {trainer.state.iteration}")
    say(f"training {config.name} ({len(dataset.class_names)} classes, {len(dataset)} images) for "
        f"{solver.max_iterations} iterations at batch {job.batch_size}, lr {solver.lr:g}, on {device}"
        + (f" x {dist_utils.world_size()} processes" if dist_utils.world_size() > 1 else ""))
    try:
        return trainer.train()
    finally:
        dist_utils.cleanup()
