"""The training loop: SGD steps on the authors' recipe (warm-up, step decay, frozen BatchNorm for small batches),
from one CPU to many GPUs (torchrun + DistributedDataParallel), with mixed precision, a guard against divergence,
validation, the metrics log and checkpoints at the job's cadence.

The trainer is handed a :class:`~yolact.training.options.TrainJob` and the :class:`~yolact.training.options.TrainPlan`
derived from it, and changes neither; what a checkpoint holds is :mod:`yolact.training.checkpoints`' business, the
log's :mod:`yolact.training.metrics`'.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from yolact import distributed as dist_utils
from yolact.config import PRECISIONS, YolactConfig
from yolact.data.datasets import collate
from yolact.devices import resolve_device
from yolact.errors import YolactError
from yolact.losses import YolactCriterion
from yolact.modeling import Yolact
from yolact.outputs import make_dir
from yolact.structures import InstanceTarget
from yolact.training import checkpoints, metrics
from yolact.training.distributed import wrap
from yolact.training.options import TrainJob, TrainPlan
from yolact.training.schedule import iterate_batches, learning_rate


class TrainingDiverged(YolactError):
    """The loss became NaN or infinite."""


# Iterations in a row with every prototype zero after which training stops: the protonet's final ReLU has died
# (all pre-activations negative, so no gradient reaches it again) and masks can no longer learn. Seen from scratch
# at batch 1 and lr 1e-3; a lower lr or a larger batch avoids it.
DEAD_PROTOTYPE_PATIENCE = 50


class SampleSource(Protocol):
    """What the trainer needs of a dataset: its size, and one augmented sample per (index, augmentation seed) key
    (``InstanceDataset[(index, seed)]``), so that workers need no shared random state and resume is exact."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, InstanceTarget]: ...


@dataclass
class TrainState:
    iteration: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # the metrics log, also kept in the checkpoint


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a run (None: plain float32). "auto" is fp16 on CUDA (with loss scaling) and fp32
    elsewhere; "bf16" also works on CPUs, where oneDNN runs it on AMX / AVX512-BF16 units (about 2.5x faster
    than fp32 for yolact_resnet18 on a Sapphire Rapids core, see README)."""
    if precision not in PRECISIONS:
        raise YolactError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise YolactError(f"fp16 training needs a CUDA device, not {device}; use --precision bf16 on CPUs")
    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm in eval mode with no gradient: running statistics and affine parameters stay as loaded."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            for parameter in module.parameters():
                parameter.requires_grad_(False)


class Trainer:
    """Trains ``model`` on ``source`` as ``job`` and ``plan`` say; rank 0 logs, validates and writes checkpoints."""

    def __init__(
        self,
        model: Yolact,
        config: YolactConfig,
        source: SampleSource,
        job: TrainJob,
        plan: TrainPlan,
        class_names: Sequence[str],
        category_ids: Sequence[int],
        validate: Callable[[Yolact], dict[str, float]] | None = None,
    ) -> None:
        self.config, self.source, self.job, self.plan = config, source, job, plan
        self.class_names, self.category_ids = list(class_names), list(category_ids)
        self.validate = validate
        self.rank, self.world_size = dist_utils.rank(), dist_utils.world_size()
        self.device = resolve_device(job.device)
        # Channels-last: the layout oneDNN (CPU) and cuDNN (tensor cores) run their fastest convolutions in.
        self.model = model.to(self.device, memory_format=torch.channels_last)
        if job.sync_bn and not plan.freeze_bn and self.world_size > 1:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self._training_mode()  # before the optimiser: frozen BatchNorm parameters are not trained
        self.network: nn.Module = wrap(self.model, self.device)
        self.criterion = YolactCriterion(config.loss, config.box_variances, maskiou_net=self.model.maskiou_net)
        self._trained_parameters = [p for p in self.model.parameters() if p.requires_grad]
        solver = plan.solver
        self.optimizer = torch.optim.SGD(self._trained_parameters, lr=solver.lr, momentum=solver.momentum,
                                         weight_decay=solver.weight_decay)
        self.autocast_dtype = resolve_precision(job.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.state = TrainState()
        self.last_checkpoint: Path | None = None
        self._dead_prototype_iterations = 0

    def _training_mode(self) -> None:
        """Train mode, BatchNorm frozen where the plan says (``model.train()`` alone would unfreeze it)."""
        self.model.train()
        if self.plan.freeze_bn:
            freeze_batchnorm(self.model)

    # ---------------------------------------------------------------------------------------------- the loop
    def train(self) -> Path:
        """Run to ``plan.iterations``; returns the final checkpoint (``last.pth``)."""
        job, plan, main = self.job, self.plan, self.rank == 0
        if main:
            make_dir(job.output_dir)
            checkpoints.remove_partial_writes(job.output_dir)
        self._training_mode()
        bar = tqdm(total=plan.iterations, initial=self.state.iteration, desc="train", unit="it",
                   disable=not (job.progress and main), dynamic_ncols=True)
        running: dict[str, float] = {}
        started = time.perf_counter()
        try:
            for images, targets in self._loader(self.state.iteration):
                values = self.step(images, targets)
                running = {k: 0.9 * running.get(k, v) + 0.1 * v for k, v in values.items() if k != "lr"}
                bar.update(1)
                # Losses smoothed (they jump from batch to batch), the lr as it is.
                bar.set_postfix({**{k: f"{v:.3g}" for k, v in running.items()}, "lr": f"{values['lr']:.3g}"},
                                refresh=False)
                it = self.state.iteration
                if main and (it % job.log_every == 0 or it == plan.iterations):
                    self._log({"iteration": it, **values, "seconds": time.perf_counter() - started})
                if self.validate is not None and plan.val_every and it % plan.val_every == 0 and main:
                    self._run_validation(it)
                if main and it % job.checkpoint_every == 0 and it < plan.iterations:
                    self.save(checkpoints.periodic_name(it))
                    checkpoints.rotate(job.output_dir, job.keep_checkpoints)
        except KeyboardInterrupt:
            if main:
                path = self.save("interrupt.pth")
                tqdm.write(f"interrupted at iteration {self.state.iteration}; resume with --resume {path}")
            raise
        finally:
            bar.close()
        if main:
            if self.validate is not None and plan.val_every and self.state.iteration % plan.val_every != 0:
                self._run_validation(self.state.iteration)
            self.save("last.pth")
        dist_utils.barrier()
        return job.output_dir / "last.pth"

    def _loader(self, start: int) -> DataLoader:
        batches = iterate_batches(len(self.source), self.job.batch_size, self.job.seed, start, self.plan.iterations,
                                  self.rank, self.world_size)
        return DataLoader(self.source, batch_sampler=list(batches), collate_fn=collate, num_workers=self.job.workers,
                          persistent_workers=False, pin_memory=self.device.type == "cuda")

    def step(self, images: Tensor, targets: list[InstanceTarget]) -> dict[str, float]:
        """One optimisation step; returns the loss terms. Raises :class:`TrainingDiverged` on a non-finite loss."""
        solver = self.plan.solver
        lr = learning_rate(solver, self.state.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        images = images.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        targets = [t.to(self.device) for t in targets]
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            output = self.network(images)
        floats = _as_float(output)
        if not all(torch.isfinite(v).all() for v in floats.values()):
            self._diverged("the network's outputs became NaN or infinite")
        alive = bool((output.prototypes.detach() > 0).any())
        self._dead_prototype_iterations = 0 if alive else self._dead_prototype_iterations + 1
        if self._dead_prototype_iterations >= DEAD_PROTOTYPE_PATIENCE:
            self._diverged(f"every prototype mask has been zero for {DEAD_PROTOTYPE_PATIENCE} iterations (the "
                           "protonet's final ReLU died, masks can no longer learn)", "or raise --batch-size")
        losses = self.criterion(output._replace(**floats), targets)
        total = sum(losses.values())
        if not torch.isfinite(total):
            terms = ", ".join(f"{k} {v.item():.4g}" for k, v in losses.items())
            self._diverged(f"the loss became {total.item()} ({terms})")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if solver.grad_clip_norm is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the loss-scaled ones
            torch.nn.utils.clip_grad_norm_(self._trained_parameters, solver.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.state.iteration += 1
        values = {k: float(v.detach()) for k, v in losses.items()}
        values["total"] = float(total.detach())
        values["lr"] = lr
        return values

    def _diverged(self, what: str, remedy: str = "or check the data") -> None:
        where = f"last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint yet"
        raise TrainingDiverged(f"{what} at iteration {self.state.iteration}; {where}; lower the learning rate "
                               f"(--lr) {remedy}")

    def _run_validation(self, iteration: int) -> None:
        self.model.eval()
        try:
            values = self.validate(self.model)  # type: ignore[misc]
        finally:
            self._training_mode()
        self._log({"iteration": iteration, **{f"val_{k}": v for k, v in values.items()}})
        tqdm.write(f"iteration {iteration}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()))

    def _log(self, record: dict[str, Any]) -> None:
        self.state.history.append(record)
        metrics.append_row(self.job.output_dir, record)
        if any(k.startswith("val_") for k in record) or record["iteration"] == self.plan.iterations:
            metrics.plot_curves(self.state.history, self.job.output_dir / metrics.CURVES)

    # ---------------------------------------------------------------------------------------------- checkpoints
    def save(self, name: str) -> Path:
        path = checkpoints.save_training_checkpoint(
            self.job.output_dir / name, self.model, self.config, self.class_names, self.category_ids, self.job,
            self.plan, self.state.iteration, self.optimizer, self.scaler, self.state.history)
        self.last_checkpoint = path
        return path

    def resume(self, state: checkpoints.ResumeState) -> None:
        """Continue from a checkpoint's training state: optimiser, loss scaler, RNG, iteration and metrics log
        (the weights are loaded by the caller)."""
        self.optimizer.load_state_dict(state.optimizer)
        if state.scaler:
            self.scaler.load_state_dict(state.scaler)
        checkpoints.set_rng_state(state.rng)
        self.state = TrainState(state.iteration, list(state.history))
        if self.rank == 0:
            metrics.rewrite_rows(self.job.output_dir, self.state.history)


def _as_float(output: Any) -> dict[str, Tensor]:
    # Losses are computed in float32 even under autocast: BCE and softmax on half precision lose too much.
    return {k: v.float() for k, v in output._asdict().items() if isinstance(v, Tensor) and v.is_floating_point()}
