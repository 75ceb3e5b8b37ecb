"""Train yolact_resnet18 from scratch on synthetic scenes and report mask AP50 on held-out scenes.

    python benchmarks/train_synthetic.py --iterations 600 --batch-size 8 --output runs/bench_synthetic

Scenes: 3 classes (circle, square, triangle), overlapping instances, a 5x range of object sizes, textured
backgrounds (yolact.data.synthetic). Prints the wall time, the loss curve's ends and box/mask AP on the held-out
scenes; curves.png and metrics.jsonl are in the output folder. A script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from yolact.data.coco import load_coco
from yolact.data.synthetic import write_synthetic_coco
from yolact.engine.evaluator import Evaluator
from yolact.engine.predictor import Predictor
from yolact.engine.train_job import DataSplit, TrainJob, run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-images", type=int, default=400)
    parser.add_argument("--val-images", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, help="default: the authors' 1e-3 x batch/8")
    parser.add_argument("--val-every", type=int, default=200)
    parser.add_argument("--output", type=Path, default=Path("runs/bench_synthetic"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    train_ann, train_images = write_synthetic_coco(args.output / "data" / "train", args.train_images, seed=0)
    val_ann, val_images = write_synthetic_coco(args.output / "data" / "val", args.val_images, seed=1)
    job = TrainJob(train=DataSplit(train_images, train_ann), val=DataSplit(val_images, val_ann),
                   output_dir=args.output / "run", config="yolact_resnet18", iterations=args.iterations,
                   batch_size=args.batch_size, lr=args.lr, device=args.device, workers=args.workers,
                   val_every=args.val_every, checkpoint_every=args.val_every, log_every=10)
    started = time.perf_counter()
    last = run_training(job)
    minutes = (time.perf_counter() - started) / 60
    predictor = Predictor.from_checkpoint(last, device=args.device, score_threshold=0.0)
    result = Evaluator(load_coco(val_ann, val_images), predictor.class_names).run(predictor, progress=False)
    log = [json.loads(line) for line in (job.output_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["total"] for r in log if "total" in r]
    print(f"\ntrained {args.iterations} iterations at batch {args.batch_size} in {minutes:.1f} min "
          f"on {predictor.device} ({torch.get_num_threads()} threads); loss {losses[0]:.2f} -> {losses[-1]:.2f}")
    print(f"held-out scenes ({args.val_images}): mask AP50 {result.segm['AP50']:.3f}, mask AP {result.segm['AP']:.3f}, "
          f"box AP50 {result.bbox['AP50']:.3f}, box AP {result.bbox['AP']:.3f}")
    print(f"curves: {job.output_dir / 'curves.png'}")


if __name__ == "__main__":
    main()
