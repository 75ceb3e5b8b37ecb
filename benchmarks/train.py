"""Train yolact_resnet18 from scratch and report box and mask AP on held-out images.

    python benchmarks/train.py --data synthetic --iterations 1000 --batch-size 8 --output runs/bench_synthetic
    python benchmarks/train.py --data coco128 --iterations 600 --batch-size 8 --output runs/bench_coco128

synthetic: 3 classes (circle, square, triangle), overlapping instances, a 5x range of object sizes, textured
backgrounds (yolact.data.synthetic), 400 training and 50 held-out scenes. coco128: ../shared/data/coco128-seg,
its 96-image train split and 32-image val split (80 COCO classes; far too little data to generalise: the figure
shows the pipeline learning, not a useful model). Prints the wall time, the loss curve's ends and AP on the
held-out images; curves.png and metrics.jsonl are in the output folder. A script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from yolact.data.coco import load_coco
from yolact.data.splits import DataSplit
from yolact.data.synthetic import write_synthetic_coco
from yolact.evaluation.evaluator import Evaluator
from yolact.inference.predictor import load
from yolact.training.job import TrainJob, run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("synthetic", "coco128"), default="synthetic")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared",
                        help="the project's shared/ folder (for coco128)")
    parser.add_argument("--train-images", type=int, default=400)
    parser.add_argument("--val-images", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, help="default: the authors' 1e-3 x batch/8")
    parser.add_argument("--val-every", type=int, default=200)
    parser.add_argument("--output", type=Path, default=Path("runs/bench_synthetic"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="bf16: mixed precision on AMX/AVX512-BF16 CPUs or CUDA (default: auto)")
    parser.add_argument("--max-expand", type=float, default=4.0,
                        help="augmentation: expand's largest zoom-out (the authors' 4; 1 turns it off)")
    args = parser.parse_args()

    if args.data == "synthetic":
        train_ann, train_images = write_synthetic_coco(args.output / "data" / "train", args.train_images, seed=0)
        val_ann, val_images = write_synthetic_coco(args.output / "data" / "val", args.val_images, seed=1)
    else:
        coco128 = args.shared / "data" / "coco128-seg"
        train_ann, val_ann = (coco128 / "annotations" / f"instances_{s}.json" for s in ("train", "val"))
        train_images = val_images = coco128 / "images"
    job = TrainJob(train=DataSplit(train_images, train_ann), val=DataSplit(val_images, val_ann),
                   output_dir=args.output / "run", config="yolact_resnet18", iterations=args.iterations,
                   batch_size=args.batch_size, lr=args.lr, device=args.device, workers=args.workers,
                   val_every=args.val_every, checkpoint_every=args.val_every, log_every=10,
                   precision=args.precision, max_expand=args.max_expand)
    started = time.perf_counter()
    last = run_training(job)
    minutes = (time.perf_counter() - started) / 60
    predictor = load(last, device=args.device, score_threshold=0.0)
    result = Evaluator(load_coco(val_ann, val_images), predictor.class_names).run(predictor, progress=False)
    log = [json.loads(line) for line in (job.output_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["total"] for r in log if "total" in r]
    print(f"\ntrained {args.iterations} iterations at batch {args.batch_size} in {minutes:.1f} min "
          f"on {predictor.device} ({torch.get_num_threads()} threads); loss {losses[0]:.2f} -> {losses[-1]:.2f}")
    held_out = len(load_coco(val_ann, val_images).image_ids)
    print(f"held-out images ({held_out}): mask AP50 {result.segm['AP50']:.3f}, mask AP {result.segm['AP']:.3f}, "
          f"box AP50 {result.bbox['AP50']:.3f}, box AP {result.bbox['AP']:.3f}")
    print(f"curves: {job.output_dir / 'curves.png'}")


if __name__ == "__main__":
    main()
