"""The ``yolact`` command: argument parsing only; the work is done by the library."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from yolact.config import PRESETS

EXAMPLES_PREDICT = """examples:
  yolact predict photo.jpg --weights yolact_base_54_800000.pth --output out/
  yolact predict images/ --weights yolact_resnet50_54_800000.pth --json dets.json --score-threshold 0.3
  yolact predict images/ --weights my_model.pth --config yolact_resnet50 --device cpu

the config comes from --config, else from our own checkpoints, else from an official file name
(<config>_<epoch>_<iteration>.pth, as the authors' tools read it)."""

EXAMPLES_EVAL = """examples:
  yolact eval --weights yolact_base_54_800000.pth --ann annotations/instances_val2017.json --images val2017/
  yolact eval --weights my_model.pth --ann val.json --images imgs/ --per-class --save-metrics metrics.json

box and mask AP as COCO defines them (pycocotools); the model's classes are matched to the dataset's
categories by name, so a COCO model evaluates on any subset of COCO's categories."""

EXAMPLES_BENCHMARK = """examples:
  yolact benchmark --weights yolact_base_54_800000.pth --device cuda --batch-size 8
  yolact benchmark --weights yolact_resnet50_54_800000.pth --images photos/ --runs 50 --json bench.json

per-stage latency (median and interquartile range), end-to-end FPS at batch 1 and --batch-size, GFLOPs
(torch's FLOP counter), parameters, peak memory; without --images it uses the bundled sample images."""

EXAMPLES_EXPORT = """examples:
  yolact export --weights runs/train/last.pth --format official --output yolact_base_0_1000.pth
  yolact export --weights yolact_base_54_800000.pth --format yolact --output base.pth
  yolact export --config yolact_resnet50 --random-init --output weights/yolact_resnet50_0_0.pth"""


def _add_model_args(parser: argparse.ArgumentParser, weights_required: bool = True) -> None:
    parser.add_argument("--weights", type=Path, required=weights_required, metavar="CKPT",
                        help="checkpoint: an official .pth from the authors or one of ours")
    parser.add_argument("--config", choices=sorted(PRESETS), metavar="NAME",
                        help="model config (default: from the checkpoint or its file name); "
                        f"one of {', '.join(PRESETS)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yolact", description="YOLACT real-time instance segmentation.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = sub.add_parser("predict", help="segment objects in an image or a folder of images",
                             description="Segment objects in an image or a folder of images.",
                             epilog=EXAMPLES_PREDICT, formatter_class=argparse.RawDescriptionHelpFormatter)
    predict.add_argument("source", type=Path, help="an image file or a folder of images")
    _add_model_args(predict)
    predict.add_argument("--score-threshold", type=float, default=0.15,
                         help="keep detections scoring strictly above this (default: 0.15; 0 keeps all)")
    predict.add_argument("--top-k", type=int, default=100, help="keep at most this many detections per image (100)")
    predict.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    predict.add_argument("--output", type=Path, metavar="DIR",
                         help="write overlay images (masks, boxes, labels, scores) here, same file names")
    predict.add_argument("--json", type=Path, metavar="FILE",
                         help="write all detections as one COCO results list (bbox, score, RLE segmentation)")
    predict.add_argument("--nms", choices=("fast", "cross_class_fast", "traditional"),
                         help="NMS variant (default: the config's, Fast NMS per class)")
    predict.add_argument("--quiet", action="store_true", help="no progress bar or per-image lines")
    predict.set_defaults(func=run_predict)

    evaluate = sub.add_parser("eval", help="COCO box and mask AP on an annotated dataset",
                              description="COCO box and mask AP (AP, AP50, AP75, small/medium/large) of a model on "
                              "a COCO-format dataset.", epilog=EXAMPLES_EVAL,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(evaluate)
    evaluate.add_argument("--ann", type=Path, required=True, metavar="JSON", help="COCO instances annotation file")
    evaluate.add_argument("--images", type=Path, required=True, metavar="DIR", help="folder of the images it lists")
    evaluate.add_argument("--per-class", action="store_true", help="also print box and mask AP per class")
    evaluate.add_argument("--json", type=Path, metavar="FILE",
                          help="write all detections as one COCO results list (records with bbox and segmentation)")
    evaluate.add_argument("--save-metrics", type=Path, metavar="FILE", help="write every figure as JSON")
    evaluate.add_argument("--score-threshold", type=float, default=0.0,
                          help="keep detections scoring strictly above this (default: 0, as COCO evaluation)")
    evaluate.add_argument("--top-k", type=int, default=100, help="at most this many detections per image (100)")
    evaluate.add_argument("--max-images", type=int, metavar="N", help="evaluate only the first N images (by id)")
    evaluate.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda when available)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=run_eval)

    bench = sub.add_parser("benchmark", help="per-stage latency, FPS, GFLOPs and memory of a model",
                           description="Time every stage of inference (preprocess, backbone+FPN, heads, NMS, mask "
                           "assembly, paste) and end-to-end throughput.", epilog=EXAMPLES_BENCHMARK,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(bench)
    bench.add_argument("--images", type=Path, metavar="DIR", help="images to run on (default: the bundled samples)")
    bench.add_argument("--runs", type=int, default=20, help="timed runs per measurement (default: 20)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default: 3)")
    bench.add_argument("--batch-size", type=int, default=4, help="batch for the throughput figure (default: 4)")
    bench.add_argument("--score-threshold", type=float, default=0.15, help="as predict (default: 0.15)")
    bench.add_argument("--top-k", type=int, default=100, help="as predict (default: 100)")
    bench.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda when available)")
    bench.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write every figure as JSON")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.set_defaults(func=run_benchmark)

    export = sub.add_parser("export", help="write a checkpoint in the authors' flat format or in ours",
                            description="Convert checkpoints: 'official' writes the flat state_dict that the "
                            "authors' eval.py and train.py read; 'yolact' writes ours (weights + config + "
                            "class names).", epilog=EXAMPLES_EXPORT,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(export, weights_required=False)
    export.add_argument("--format", choices=("official", "yolact"), default="official",
                        help="official: flat state_dict for the authors' tools (default); yolact: our format")
    export.add_argument("--output", type=Path, required=True, metavar="FILE", help="where to write the .pth")
    export.add_argument("--random-init", action="store_true",
                        help="instead of --weights, write a randomly initialised model of --config (for demos "
                        "and tests: its detections are meaningless)")
    export.add_argument("--seed", type=int, default=0, help="random seed for --random-init (default: 0)")
    export.set_defaults(func=run_export)
    return parser


def run_predict(args: argparse.Namespace) -> int:
    from yolact.checkpoint import load_checkpoint
    from yolact.engine.predict_files import predict_files, resolve_sources
    from yolact.engine.predictor import Predictor

    if args.top_k < 1:
        raise ValueError("--top-k must be at least 1")
    paths = resolve_sources(args.source)
    checkpoint = load_checkpoint(args.weights, args.config)
    if args.nms:
        post = dataclasses.replace(checkpoint.config.postprocess, nms=args.nms)
        checkpoint.config = dataclasses.replace(checkpoint.config, postprocess=post)
    predictor = Predictor.from_loaded(checkpoint, args.weights, args.device, args.score_threshold, args.top_k)
    summary = predict_files(predictor, paths, args.output, args.json, progress=not args.quiet)
    if not args.quiet:
        for prediction in summary.predictions if len(paths) == 1 else []:
            print(prediction.describe())
    done = len(summary.predictions)
    print(f"{done} image(s), {summary.num_detections} detections on {predictor.device}"
          + (f"; skipped {len(summary.skipped)} unreadable image(s)" if summary.skipped else "")
          + (f"; overlays in {args.output}" if args.output else "")
          + (f"; detections in {args.json}" if args.json else ""))
    return 0 if done else 1


def run_eval(args: argparse.Namespace) -> int:
    import json

    from yolact.data.coco import load_coco
    from yolact.engine.evaluator import evaluate_predictor
    from yolact.engine.predictor import Predictor
    from yolact.io import atomic_write

    dataset = load_coco(args.ann, args.images)
    predictor = Predictor.from_checkpoint(args.weights, args.config, args.device, args.score_threshold, args.top_k)
    result = evaluate_predictor(predictor, dataset, args.json, progress=not args.quiet, limit=args.max_images)
    print(f"{result.num_images} images evaluated on {predictor.device}"
          + (f"; skipped {len(result.skipped)} unreadable or missing image(s)" if result.skipped else ""))
    print(result.format_table(per_class=args.per_class))
    if args.save_metrics:
        atomic_write(args.save_metrics, lambda f: f.write(json.dumps(result.to_dict(), indent=2).encode()))
        print(f"metrics in {args.save_metrics}")
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    import json

    import torch

    from yolact.engine import benchmark
    from yolact.engine.predictor import Predictor
    from yolact.io import atomic_write

    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = Predictor.from_checkpoint(args.weights, args.config, args.device, args.score_threshold, args.top_k)
    report = benchmark.run_benchmark(predictor, benchmark.load_benchmark_images(args.images), runs=args.runs,
                                     warmup=args.warmup, batch_size=args.batch_size, progress=not args.quiet)
    print(report.format_table())
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps(report.to_dict(), indent=2).encode()))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from yolact.checkpoint import load_checkpoint, save_checkpoint, save_official
    from yolact.config import get_config
    from yolact.modeling import build_yolact

    if args.random_init == (args.weights is not None):
        raise ValueError("give either --weights CKPT or --random-init (with --config)")
    if args.random_init:
        if not args.config:
            raise ValueError("--random-init needs --config NAME")
        import torch

        torch.manual_seed(args.seed)
        config = get_config(args.config)
        state_dict = build_yolact(config).state_dict()
        class_names = category_ids = None
    else:
        checkpoint = load_checkpoint(args.weights, args.config)
        config, state_dict = checkpoint.config, checkpoint.state_dict
        class_names, category_ids = checkpoint.class_names, checkpoint.category_ids
    if args.format == "official":
        save_official(args.output, state_dict)
        print(f"wrote {len(state_dict)} tensors in the authors' format to {args.output} (config {config.name})")
    else:
        extra = {} if class_names is None else {"class_names": class_names, "category_ids": category_ids}
        save_checkpoint(args.output, state_dict, config, **extra)
        print(f"wrote {args.output} (config {config.name})")
    return 0


def main(argv: list[str] | None = None) -> int:
    from yolact.errors import YolactError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (YolactError, ValueError) as exc:
        print(f"yolact {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"yolact {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
