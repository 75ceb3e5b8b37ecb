"""Print YOLACT's inference latency per stage, throughput, peak memory, GFLOPs and parameters.

    python benchmarks/predict_latency.py --weights yolact_resnet50_54_800000.pth
    python benchmarks/predict_latency.py --config yolact_base --device cuda --runs 50 --json base.json

Without --weights the model is randomly initialised (--random-init). Random weights give no detections, which
would leave NMS, mask assembly and paste with nothing to do, so their class layer is rescaled until the class
logits have a standard deviation of --class-logit-std (default 3; 0 keeps the plain initialisation): scores
then clear the thresholds and every stage works on up to --top-k detections, as with trained weights.
The images are the bundled samples unless --images names a folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import yolact
from yolact.evaluation.benchmark import calibrate_class_layer, load_benchmark_images, run_benchmark


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, help="an official checkpoint or one of ours")
    parser.add_argument("--config", help="preset name (required with --random-init; else read from the checkpoint)")
    parser.add_argument("--random-init", action="store_true", help="random weights (the default without --weights)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random-init (default: 0)")
    parser.add_argument("--class-logit-std", type=float, default=3.0,
                        help="with random weights, rescale the class layer to this logit std (0: leave as is)")
    parser.add_argument("--images", type=Path, help="folder of images (default: the bundled samples)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per measurement (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default: 3)")
    parser.add_argument("--batch-size", type=int, default=4, help="the larger batch for throughput (default: 4)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1; auto picks CUDA when available")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--score-threshold", type=float, default=0.15, help="as yolact predict (default: 0.15)")
    parser.add_argument("--top-k", type=int, default=100, help="as yolact predict (default: 100)")
    parser.add_argument("--json", type=Path, help="also write the report here as JSON")
    parser.add_argument("--plain", action="store_true",
                        help="run the plain network (no BatchNorm folding, no channels-last) instead of the "
                        "optimised copy that yolact predict runs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args()
    if args.weights is not None and args.random_init:
        parser.error("give either --weights or --random-init, not both")
    if args.weights is None and args.config is None:
        parser.error("without --weights, name the model to initialise randomly with --config")
    return args


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    images = load_benchmark_images(args.images)
    notes = []
    if args.weights is not None:
        predictor = yolact.load(args.weights, args.config, device=args.device, score_threshold=args.score_threshold,
                                top_k=args.top_k, optimize=not args.plain)
    else:
        torch.manual_seed(args.seed)
        config = yolact.get_config(args.config)
        plain = yolact.Predictor.from_model(yolact.build_yolact(config), config, device=args.device, optimize=False)
        notes.append(f"random weights (seed {args.seed})")
        if args.class_logit_std > 0:
            calibrate_class_layer(plain.model, plain.prepare([images[0]]), args.class_logit_std)
            notes[-1] += f", class layer rescaled to logit std {args.class_logit_std:g} so that every stage has work"
        # Built after the calibration: the optimised copy is taken from the calibrated weights.
        predictor = yolact.Predictor.from_model(plain.model, config, device=args.device,
                                                score_threshold=args.score_threshold, top_k=args.top_k,
                                                optimize=not args.plain)
    notes.append("plain network" if args.plain else "optimised network (BatchNorm folded, channels-last)")
    report = run_benchmark(predictor, images, runs=args.runs, warmup=args.warmup, batch_size=args.batch_size,
                           progress=not args.no_progress)
    report.notes[:0] = notes
    print(report.format_table())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")


if __name__ == "__main__":
    main()
