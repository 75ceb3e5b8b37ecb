"""Short from-scratch runs of each preset at batch 2-8: do they diverge, with and without gradient clipping?

    python benchmarks/train_stability.py --presets yolact_base yolact_resnet50 --seeds 0 1 2 --clip none 300
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/train_stability.py ...   # another CPU's code path

Each run: synthetic scenes, the preset at a reduced input size (anchors scaled with it), the recipe's schedule
for that batch (lr 1e-3 x batch/8, warm-up at most a tenth of the run), from randomly initialised weights; it
prints the loss on four fixed scenes before and after, their ratio, the largest gradient norm, and "diverged"
where the loss became NaN or infinite. The figures the config's comments cite come from this script.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

import yolact
from yolact.data.augment import EvalTransform, TrainTransform
from yolact.data.coco import load_coco
from yolact.data.datasets import InstanceDataset, collate
from yolact.data.synthetic import write_synthetic_coco
from yolact.losses import YolactCriterion
from yolact.training.options import TrainJob, TrainPlan
from yolact.training.trainer import Trainer, TrainingDiverged


def small(preset: str, size: int) -> yolact.YolactConfig:
    config = yolact.get_config(preset)
    scale = size / config.max_size
    anchors = dataclasses.replace(config.anchors, scales=tuple(tuple(s * scale for s in level)
                                                               for level in config.anchors.scales))
    return dataclasses.replace(config, max_size=size, anchors=anchors, num_classes=3)


def run(preset: str, size: int, seed: int, batch: int, iterations: int, clip: float | None, data: Path
        ) -> tuple[str, float, float, float]:
    coco = load_coco(data / "annotations.json", data / "images")
    config = small(preset, size)
    source = InstanceDataset(coco, TrainTransform(size, config.backbone), seed=seed)
    fixed = InstanceDataset(coco, EvalTransform(size, config.backbone))
    images, targets = collate([fixed.load(i, np.random.default_rng(0)) for i in range(4)])
    solver = dataclasses.replace(config.solver.scaled(batch).for_iterations(iterations), grad_clip_norm=clip)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as out:
        job = TrainJob(output_dir=Path(out), config=config, batch_size=batch, seed=seed, device="cpu", workers=0,
                       progress=False, log_every=10**9, checkpoint_every=10**9)
        trainer = Trainer(yolact.build_yolact(config), config, source, job, TrainPlan(solver), source.class_names,
                          source.category_ids)
        criterion = YolactCriterion(config.loss, config.box_variances, maskiou_net=trainer.model.maskiou_net)
        norms: list[float] = []
        original = trainer.optimizer.step

        def step(*args, **kwargs):  # type: ignore[no-untyped-def]
            grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
            return original(*args, **kwargs)

        trainer.optimizer.step = step  # type: ignore[method-assign]

        def loss() -> float:
            with torch.no_grad():
                return float(sum(criterion(trainer.model(images), targets).values()))

        trainer.model.train()
        before = loss()
        try:
            trainer.train()
        except TrainingDiverged:
            return "diverged", before, float("nan"), max(norms, default=float("nan"))
        trainer.model.train()
        after = loss()
    return ("ok" if np.isfinite(after) else "diverged"), before, after, max(norms, default=float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["yolact_resnet18", "yolact_resnet50", "yolact_base",
                                                         "yolact_darknet53"])
    parser.add_argument("--size", type=int, default=128, help="input size (default: 128)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[2])
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--clip", nargs="+", default=["none", "300"], help="clipping norms to try ('none': off)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "default")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        write_synthetic_coco(data, 8, seed=0, size=(args.size, args.size))
        print(f"from scratch, {args.iterations} iterations, input {args.size}, oneDNN ISA: {isa}")
        print(f"{'preset':18} {'batch':>5} {'clip':>6} {'seed':>4} {'status':>9} {'before':>8} {'after':>8} "
              f"{'ratio':>6} {'max |g|':>10}")
        for preset in args.presets:
            for batch in args.batch_sizes:
                for clip_text in args.clip:
                    clip = None if clip_text == "none" else float(clip_text)
                    for seed in args.seeds:
                        status, before, after, norm = run(preset, args.size, seed, batch, args.iterations, clip,
                                                          data)
                        print(f"{preset:18} {batch:>5} {clip_text:>6} {seed:>4} {status:>9} {before:8.2f} "
                              f"{after:8.2f} {after / before:6.2f} {norm:10.3g}", flush=True)


if __name__ == "__main__":
    main()
