"""Training as the authors train (SGD, warm-up, step decay, frozen BatchNorm for small batches), from one CPU to
many GPUs (torchrun + DistributedDataParallel), with exact resume, atomic checkpoints and a metrics log."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from yolact.checkpoint import save_checkpoint
from yolact.config import PRECISIONS, SolverConfig, YolactConfig
from yolact.data.datasets import collate
from yolact.errors import YolactError
from yolact.io import atomic_write
from yolact.losses import YolactCriterion
from yolact.modeling import Yolact
from yolact.outputs import make_dir
from yolact.structures import InstanceTarget
from yolact.training import distributed as dist_utils
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
class TrainOptions:
    """How one run goes (what the solver config does not fix)."""

    output_dir: Path
    iterations: int
    batch_size: int  # global, over all processes
    seed: int = 0
    device: str | torch.device = "auto"
    workers: int = 2
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    val_every: int | None = None
    precision: str = "auto"  # see resolve_precision
    freeze_bn: bool = False
    sync_bn: bool = False
    progress: bool = True
    # Recorded in checkpoints so --resume rebuilds the same augmentation (the dataset's transform applies it).
    max_expand: float = 4.0
    # The job that set the run up (TrainJob.to_record), kept in checkpoints so --resume alone restores it.
    job: dict[str, Any] = field(default_factory=dict)


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


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Trains ``model`` on ``source`` with the authors' recipe; rank 0 logs, validates and writes checkpoints."""

    def __init__(
        self,
        model: Yolact,
        config: YolactConfig,
        source: SampleSource,
        options: TrainOptions,
        class_names: Sequence[str],
        category_ids: Sequence[int],
        validate: Callable[[Yolact], dict[str, float]] | None = None,
        solver: SolverConfig | None = None,
    ) -> None:
        self.config = config
        self.options = options
        self.class_names = list(class_names)
        self.category_ids = list(category_ids)
        self.validate = validate
        self.rank, self.world_size = dist_utils.rank(), dist_utils.world_size()
        self.device = dist_utils.training_device(options.device)
        self.solver = solver or config.solver.scaled(options.batch_size)
        # Channels-last: the layout oneDNN (CPU) and cuDNN (tensor cores) run their fastest convolutions in.
        self.model = model.to(self.device, memory_format=torch.channels_last).train()
        if options.freeze_bn:
            freeze_batchnorm(self.model)
        elif options.sync_bn and self.world_size > 1:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.network: nn.Module = dist_utils.wrap(self.model, self.device)
        self.criterion = YolactCriterion(config.loss, config.box_variances, maskiou_net=self.model.maskiou_net)
        self._trained_parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(
            self._trained_parameters,
            lr=self.solver.lr, momentum=self.solver.momentum, weight_decay=self.solver.weight_decay,
        )
        self.autocast_dtype = resolve_precision(options.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.source = source
        self.state = TrainState()
        self.last_checkpoint: Path | None = None
        self._dead_prototype_iterations = 0

    # ---------------------------------------------------------------------------------------------- checkpoints
    def checkpoint_payload(self) -> dict[str, Any]:
        return {
            "iteration": self.state.iteration,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "history": self.state.history,
            "train": {"seed": self.options.seed, "batch_size": self.options.batch_size,
                      "iterations": self.options.iterations, "freeze_bn": self.options.freeze_bn,
                      "max_expand": self.options.max_expand, "job": self.options.job,
                      "solver": {k: list(v) if isinstance(v, tuple) else v
                                 for k, v in dataclasses.asdict(self.solver).items()}},
        }

    def save(self, name: str) -> Path:
        path = self.options.output_dir / name
        save_checkpoint(path, self.model.state_dict(), self.config, self.class_names, self.category_ids,
                        **self.checkpoint_payload())
        self.last_checkpoint = path
        return path

    def _rotate(self) -> None:
        kept = sorted(self.options.output_dir.glob("iter_*.pth"))
        for old in kept[: max(0, len(kept) - self.options.keep_checkpoints)]:
            old.unlink(missing_ok=True)

    def resume(self, extra: dict[str, Any]) -> None:
        """Restore optimiser, scaler, iteration, RNG and history from a checkpoint's extra fields (the weights
        are loaded by the caller)."""
        self.optimizer.load_state_dict(extra["optimizer"])
        if extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])
        set_rng_state(extra["rng"])
        self.state = TrainState(int(extra["iteration"]), list(extra.get("history", [])))
        if self.rank == 0:
            # The log as of the checkpoint: rows a killed run wrote after it are replayed, so they would repeat.
            make_dir(self.options.output_dir)
            rows = "".join(json.dumps(record) + "\n" for record in self.state.history)
            atomic_write(self.options.output_dir / "metrics.jsonl", lambda f: f.write(rows.encode()))

    # ---------------------------------------------------------------------------------------------- the loop
    def _loader(self, start: int) -> DataLoader:
        batches = iterate_batches(len(self.source), self.options.batch_size, self.options.seed, start,
                                  self.options.iterations, self.rank, self.world_size)
        return DataLoader(self.source, batch_sampler=list(batches), collate_fn=collate,
                          num_workers=self.options.workers, persistent_workers=False,
                          pin_memory=self.device.type == "cuda")

    def step(self, images: Tensor, targets: list[InstanceTarget]) -> dict[str, float]:
        """One optimisation step; returns the loss terms. Raises :class:`TrainingDiverged` on a non-finite loss."""
        lr = learning_rate(self.solver, self.state.iteration)
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
        if self.solver.grad_clip_norm is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the loss-scaled ones
            torch.nn.utils.clip_grad_norm_(self._trained_parameters, self.solver.grad_clip_norm)
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

    def train(self) -> Path:
        """Run to ``options.iterations``; returns the final checkpoint (``last.pth``)."""
        opts, main = self.options, self.rank == 0
        if main:
            make_dir(opts.output_dir)
            _remove_partial_writes(opts.output_dir)
        if opts.freeze_bn:
            freeze_batchnorm(self.model)
        bar = tqdm(total=opts.iterations, initial=self.state.iteration, desc="train", unit="it",
                   disable=not (opts.progress and main), dynamic_ncols=True)
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
                if main and (it % opts.log_every == 0 or it == opts.iterations):
                    self._log({"iteration": it, **values, "seconds": time.perf_counter() - started})
                if self.validate is not None and opts.val_every and it % opts.val_every == 0 and main:
                    self._run_validation(it)
                if main and it % opts.checkpoint_every == 0 and it < opts.iterations:
                    self.save(f"iter_{it:07d}.pth")
                    self._rotate()
        except KeyboardInterrupt:
            if main:
                path = self.save("interrupt.pth")
                tqdm.write(f"interrupted at iteration {self.state.iteration}; resume with --resume {path}")
            raise
        finally:
            bar.close()
        if main:
            if self.validate is not None and opts.val_every and self.state.iteration % opts.val_every != 0:
                self._run_validation(self.state.iteration)
            path = self.save("last.pth")
        dist_utils.barrier()
        return opts.output_dir / "last.pth"

    def _run_validation(self, iteration: int) -> None:
        self.model.eval()
        try:
            metrics = self.validate(self.model)  # type: ignore[misc]
        finally:
            self.model.train()
            if self.options.freeze_bn:
                freeze_batchnorm(self.model)
        self._log({"iteration": iteration, **{f"val_{k}": v for k, v in metrics.items()}})
        tqdm.write(f"iteration {iteration}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))

    def _log(self, record: dict[str, Any]) -> None:
        self.state.history.append(record)
        with open(self.options.output_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if any(k.startswith("val_") for k in record) or record["iteration"] == self.options.iterations:
            plot_curves(self.state.history, self.options.output_dir / "curves.png")


def _remove_partial_writes(folder: Path) -> None:
    """Temporary files of checkpoints and curves that a killed run left half written (atomic_write's names)."""
    for name in ("last.pth", "interrupt.pth", "iter_*.pth", "curves.png", "metrics.jsonl"):
        for partial in folder.glob(f".{name}.*.tmp"):
            partial.unlink(missing_ok=True)


def _as_float(output: Any) -> dict[str, Tensor]:
    # Losses are computed in float32 even under autocast: BCE and softmax on half precision lose too much.
    return {k: v.float() for k, v in output._asdict().items() if isinstance(v, Tensor) and v.is_floating_point()}


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss terms against iterations, and validation AP where there is any, as one PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in history if "total" in r]
    val = [r for r in history if any(k.startswith("val_") for k in r)]
    fig, axes = plt.subplots(1, 2 if val else 1, figsize=(12 if val else 6, 4), squeeze=False)
    for key in ("total", "class", "box", "mask", "semantic"):
        points = [(r["iteration"], r[key]) for r in train if key in r and math.isfinite(r[key])]
        if points:
            axes[0][0].plot(*zip(*points, strict=True), label=key)
    axes[0][0].set(xlabel="iteration", ylabel="loss", title="training loss", yscale="log")
    if train:
        axes[0][0].legend()
    if val:
        for key in sorted({k for r in val for k in r if k.startswith("val_")}):
            axes[0][1].plot([r["iteration"] for r in val], [r[key] for r in val], marker="o", label=key[4:])
        axes[0][1].set(xlabel="iteration", ylabel="AP", title="validation", ylim=(0, 1))
        axes[0][1].legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
