"""The ``yolact`` command: argument parsing only; the work is done by the library."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from yolact.config import PRECISIONS, PRESETS

if TYPE_CHECKING:
    from yolact.data.splits import DataSplit

EXAMPLES_PREDICT = """examples:
  yolact predict photo.jpg --weights yolact_base_54_800000.pth --output out/
  yolact predict images/ --weights yolact_resnet50_54_800000.pth --json dets.json --score-threshold 0.3
  yolact predict images/ --weights my_model.pth --config yolact_resnet50 --device cpu
  yolact predict clip.mp4 --weights yolact_base_54_800000.pth --output clip_out.mp4 --batch 4 --json frames.json
  yolact predict 0 --weights yolact_base_54_800000.pth --show          # camera 0, in a window
  yolact predict frames/ --weights my_model.pth --output frames.mp4    # a folder of frames as a video
  yolact predict images/ --weights W.pth --save-labelme fix/ --classes person,dog   # correct in labelme, then
  yolact convert --from labelme fix/ --output train.json                         # train on the corrections
  yolact predict images/ --weights W.pth --save-txt labels/ --save-masks masks/ --json dets.json --segmentation polygon

the config comes from --config, else from our own checkpoints, else from an official file name
(<config>_<epoch>_<iteration>.pth, as the authors' tools read it)."""

EXAMPLES_EVAL = """examples:
  yolact eval --weights yolact_base_54_800000.pth --ann annotations/instances_val2017.json --images val2017/
  yolact eval --weights my_model.pth --ann val.json --images imgs/ --per-class --save-metrics metrics.json
  yolact eval --weights my_model.pth --ann val.json --images imgs/ --errors errors/   # what goes wrong, and where
  torchrun --standalone --nproc_per_node 8 -m yolact eval --weights W.pth --ann val.json --images val2017/
      # 8 processes (GPUs), each a block of the images; rank 0 prints the one-process figures

box and mask AP as COCO defines them (pycocotools); the model's classes are matched to the dataset's
categories by name, so a COCO model evaluates on any subset of COCO's categories."""

EXAMPLES_BENCHMARK = """examples:
  yolact benchmark --weights yolact_base_54_800000.pth --device cuda --batch-size 8
  yolact benchmark --weights yolact_resnet50_54_800000.pth --images photos/ --runs 50 --json bench.json

per-stage latency (median and interquartile range), end-to-end FPS at batch 1 and --batch-size, GFLOPs
(torch's FLOP counter), parameters, peak memory; without --images it uses the bundled sample images."""

EXAMPLES_TRAIN = """examples:
  yolact train --train-ann train.json --train-images imgs/ --val-ann val.json --val-images imgs/ --iterations 20000
  yolact train --data dataset.yaml --config yolact_base --backbone-weights resnet101_reducedfc.pth --batch-size 8
  yolact train --train-images images/ --train-labels labels/ --config yolact_resnet18 --epochs 50
  yolact train --data dataset.yaml --weights yolact_base_54_800000.pth --iterations 5000   # fine-tune
  yolact train --resume runs/train/interrupt.pth     # the run's data, flags and output folder come with it
  yolact train --resume runs/train                    # the newest checkpoint of that run
  torchrun --nproc_per_node 4 -m yolact train --data dataset.yaml --config yolact_base --batch-size 32

dataset.yaml:  train: {annotations: train.json, images: imgs/}   val: {...}   (or labels: for YOLO-seg)
the optimiser is the authors' (SGD, lr 1e-3 at batch 8 scaled with the batch, warm-up, step decay); with
--iterations/--epochs the lr holds its peak until 85% of the run, then x0.1 at 85% and 95%.
DIR/last.pth is the final model."""

EXAMPLES_CONVERT = """examples:
  yolact convert --images coco128/images --labels coco128/labels --output coco128.json     # COCO's 80 names
  yolact convert --images imgs/ --labels labels/ --names cat dog --output train.json
  yolact convert --from labelme corrected/ --output train.json    # e.g. predict --save-labelme, fixed in labelme
  yolact convert --from sbd benchmark_RELEASE/dataset --split val --output sbd_val.json   # Pascal SBD
  yolact train --train-ann train.json --train-images imgs/ --iterations 2000               # then train on it"""

BACKENDS = ("auto", "pytorch", "onnxruntime", "openvino")

EXAMPLES_EXPORT = """examples:
  yolact export --weights runs/train/last.pth --format official --output yolact_base_0_1000.pth
  yolact export --weights yolact_base_54_800000.pth --format yolact --output base.pth
  yolact export --config yolact_resnet50 --random-init --output weights/yolact_resnet50_0_0.pth
  yolact export --weights yolact_resnet50_54_800000.pth --format onnx --output resnet50.onnx
  yolact predict images/ --backend onnxruntime --weights resnet50.onnx --output out/
  yolact export --weights W.pth --format onnx --int8 --calibration images/ --output resnet50_int8.onnx
  yolact export --weights W.pth --format openvino --output resnet50.xml
  yolact predict images/ --backend openvino --weights resnet50.xml --output out/"""


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``yolact predict: error: ...; see yolact predict --help``), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _number(kind: type, low: float | None = None, high: float | None = None, what: str = ""
            ) -> Callable[[str], Any]:
    """An argparse type: ``kind`` (int or float) in [low, high], with the valid range in the message."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}"
                                             ) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = (f"between {low:g} and {high:g}" if low is not None and high is not None
                      else f"at least {low:g}" if low is not None else f"at most {high:g}")
            raise argparse.ArgumentTypeError(f"{text} is out of range: give {what or 'a value'} {bounds}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _shard(text: str) -> Any:
    from yolact.inference.shards import Shard

    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--shard ")) from None


def _names(text: str) -> tuple[str, ...]:
    """``person,car`` -> ("person", "car"); names may hold spaces (``traffic light``)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no class; give names separated by commas (person,car)")
    return names


POSITIVE_INT = _number(int, 1, what="a whole number")
NON_NEGATIVE_INT = _number(int, 0, what="a whole number")
PROBABILITY = _number(float, 0.0, 1.0, what="a score")
POSITIVE_FLOAT = _number(float, 1e-12, what="a number")

# Device strings torch and our code understand; anything else is refused at parse time with these forms.
_DEVICE_FORMS = re.compile(r"auto|cpu|cuda(:\d+)?|mps|xpu(:\d+)?")


def device_arg(text: str) -> str:
    if not _DEVICE_FORMS.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use auto, cpu, cuda, cuda:0, cuda:1, ...")
    return text


def _add_model_args(parser: argparse.ArgumentParser, weights_required: bool = True) -> None:
    parser.add_argument("--weights", type=Path, required=weights_required, metavar="CKPT",
                        help="checkpoint: an official .pth from the authors or one of ours")
    parser.add_argument("--config", choices=sorted(PRESETS), metavar="NAME",
                        help="model config (default: from the checkpoint or its file name); "
                        f"one of {', '.join(PRESETS)}")


def _add_backend_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="auto (default): the fastest exact one here; on a CPU a checkpoint runs in OpenVINO "
                        "(else ONNX Runtime), exported once into the export cache; pytorch runs the checkpoint "
                        "itself; onnxruntime and openvino run a file written by `yolact export` (CPU)")
    parser.add_argument("--no-cache", action="store_true",
                        help="backend auto: export into a temporary folder for this run only, not into the cache "
                        "($YOLACT_CACHE, else ~/.cache/yolact; `yolact cache clear` empties it)")


def _add_device_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--device", default="auto", type=device_arg,
                        help="auto, cpu, cuda, cuda:1, ... (default: auto, cuda when available, else cpu)")


def _add_predict_parser(sub: argparse._SubParsersAction) -> None:
    predict = sub.add_parser("predict", help="segment objects in an image or a folder of images",
                             description="Segment objects in an image or a folder of images.",
                             epilog=EXAMPLES_PREDICT, formatter_class=argparse.RawDescriptionHelpFormatter)
    predict.add_argument("source", type=Path,
                         help="an image, a folder of images, a video file (.mp4, .avi, ...) or a camera index (0)")
    _add_model_args(predict)
    predict.add_argument("--score-threshold", type=PROBABILITY, default=0.15,
                         help="keep detections scoring strictly above this (default: 0.15; 0 keeps all)")
    predict.add_argument("--top-k", type=POSITIVE_INT, default=100,
                         help="keep at most this many detections per image (100)")
    _add_device_arg(predict)
    predict.add_argument("--output", type=Path, metavar="DIR",
                         help="images: write overlays here, same file names; video: the annotated video file "
                         "(.mp4 or .avi; a folder gets <name>.mp4); a folder of images with a video file name here "
                         "is read as frames")
    predict.add_argument("--json", type=Path, metavar="FILE",
                         help="write all detections as one COCO results list (bbox, score, RLE segmentation), "
                         "saved as each image finishes")
    predict.add_argument("--image-ids", type=Path, metavar="ANN",
                         help="take the --json image ids from this COCO annotation file, by file name (default: "
                         "the numbers in the file names when all differ, else the position in name order)")
    forms = predict.add_argument_group("results in other forms (one file per image, or per video frame)")
    forms.add_argument("--save-txt", type=Path, metavar="DIR",
                       help="YOLO-seg labels, <image>.txt: 'class x1 y1 x2 y2 ...' normalised (parts joined, no holes)")
    forms.add_argument("--save-labelme", type=Path, metavar="DIR",
                       help="labelme files, <image>.json: polygons to correct in labelme and train on again (yolact "
                       "convert --from labelme); images only")
    forms.add_argument("--save-masks", type=Path, metavar="DIR",
                       help="instance maps, <image>.png: 16-bit, 0 background, i+1 for the i-th detection by score")
    forms.add_argument("--save-masks-semantic", type=Path, metavar="DIR",
                       help="class maps, <image>.png: 16-bit, 0 background, class index + 1")
    forms.add_argument("--segmentation", choices=("rle", "polygon"), default="rle",
                       help="--json masks: rle (default, exact) or COCO polygons (holes cannot be expressed)")
    forms.add_argument("--polygon-tolerance", type=_number(float, 0.0, what="a distance in pixels"), default=0.0,
                       metavar="PX", help="simplify polygons to within PX pixels (default: 0, exact)")
    predict.add_argument("--classes", type=_names, metavar="NAME,...",
                         help="keep only these classes, by name (e.g. person,car)")
    predict.add_argument("--nms", choices=("fast", "cross_class_fast", "traditional"),
                         help="NMS variant (default: the config's, Fast NMS per class)")
    predict.add_argument("--batch", type=POSITIVE_INT, default=1, metavar="N",
                         help="video: frames per network call (default: 1)")
    predict.add_argument("--streams", type=POSITIVE_INT, metavar="N",
                         help="video on a CPU: batches run at once, each with a share of the threads (default: 2 "
                         "for an eager PyTorch network on a CPU with 2+ threads, else 1; 1 gives the lowest latency)")
    predict.add_argument("--show", action="store_true",
                         help="video: show the annotated frames in a window (needs OpenCV with GUI and a display)")
    predict.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                         help="network arithmetic: fp16 on CUDA; bf16 on CUDA or AMX/AVX512-BF16 CPUs (pytorch and "
                         "openvino backends); default fp32")
    predict.add_argument("--compile", action="store_true",
                         help="pytorch backend: run the network through torch.compile (faster after a compilation "
                         "of tens of seconds; worth it for folders and videos)")
    predict.add_argument("--no-cuda-graph", action="store_true",
                         help="pytorch backend on CUDA: launch the network's kernels one by one instead of replaying "
                         "them as a CUDA graph (the default, except for YOLACT++)")
    _add_backend_args(predict)
    scale = predict.add_argument_group("very large folders: shards that continue where they stopped")
    scale.add_argument("--shard", type=_shard, metavar="I/N",
                       help="predict shard I (from 0) of N: a disjoint block of the sorted images; detections go to "
                       "<json stem>.shard-000I-of-000N.jsonl, a line per image as it finishes (default under torchrun: "
                       "RANK/WORLD_SIZE); then yolact merge-results")
    scale.add_argument("--resume", action="store_true",
                       help="continue the shard file of an interrupted run, skipping the images it holds")
    predict.add_argument("--quiet", action="store_true", help="no progress bar or per-image lines")
    predict.set_defaults(func=run_predict)



def _add_eval_parser(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser("eval", help="COCO box and mask AP on an annotated dataset",
                              description="COCO box and mask AP (AP, AP50, AP70, AP75, small/medium/large) of a "
                              "model on a COCO-format dataset.", epilog=EXAMPLES_EVAL,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(evaluate)
    evaluate.add_argument("--ann", type=Path, required=True, metavar="JSON", help="COCO instances annotation file")
    evaluate.add_argument("--images", type=Path, required=True, metavar="DIR", help="folder of the images it lists")
    evaluate.add_argument("--per-class", action="store_true", help="also print box and mask AP per class")
    evaluate.add_argument("--json", type=Path, metavar="FILE",
                          help="write all detections as one COCO results list (records with bbox and segmentation)")
    evaluate.add_argument("--save-metrics", type=Path, metavar="FILE", help="write every figure as JSON")
    evaluate.add_argument("--errors", type=Path, metavar="DIR",
                          help="error analysis at mask IoU 0.5: an overlay per image (true positives, false positives "
                          "with their reason, missed objects), errors.json and summary.json (TIDE's error kinds)")
    evaluate.add_argument("--errors-min-score", type=PROBABILITY, default=0.3, metavar="S",
                          help="--errors: analyse the detections scoring at least S (default: 0.3)")
    evaluate.add_argument("--score-threshold", type=PROBABILITY, default=0.0,
                          help="keep detections scoring strictly above this (default: 0, as COCO evaluation)")
    evaluate.add_argument("--top-k", type=POSITIVE_INT, default=100,
                          help="at most this many detections per image (100)")
    evaluate.add_argument("--max-images", type=POSITIVE_INT, metavar="N",
                          help="evaluate only the first N images (by id)")
    _add_device_arg(evaluate)
    _add_backend_args(evaluate)
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=run_eval)



def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train on COCO-format or YOLO-seg data",
                           description="Train YOLACT with the authors' recipe on your data.", epilog=EXAMPLES_TRAIN,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    data = train.add_argument_group("data (COCO JSON, YOLO-seg labels, or a dataset YAML)")
    data.add_argument("--data", type=Path, metavar="YAML", help="dataset YAML naming the splits, or an SBD folder")
    data.add_argument("--train-ann", type=Path, metavar="JSON", help="COCO annotations of the training images")
    data.add_argument("--train-labels", type=Path, metavar="DIR", help="YOLO-seg labels of the training images")
    data.add_argument("--train-images", type=Path, metavar="DIR", help="training images")
    data.add_argument("--val-ann", type=Path, metavar="JSON", help="COCO annotations of the validation images")
    data.add_argument("--val-labels", type=Path, metavar="DIR", help="YOLO-seg labels of the validation images")
    data.add_argument("--val-images", type=Path, metavar="DIR", help="validation images")
    model = train.add_argument_group("model and starting point")
    model.add_argument("--config", choices=sorted(PRESETS), metavar="NAME",
                       help="preset (default: yolact_resnet18, light enough for CPUs; yolact_base is the paper's)")
    model.add_argument("--weights", type=Path, metavar="CKPT",
                       help="start from an official or our checkpoint; layers that do not fit are re-initialised")
    model.add_argument("--backbone-weights", type=Path, metavar="PTH",
                       help="ImageNet backbone: torchvision ResNet state_dict, resnet101_reducedfc.pth, darknet53.pth")
    model.add_argument("--resume", type=Path, metavar="CKPT",
                       help="continue a run from one of its checkpoints, or from the newest in a run folder; the "
                       "run's data, flags and output come from the checkpoint (flags given again override where a "
                       "run may change them)")
    run = train.add_argument_group("schedule and output")
    run.add_argument("--iterations", type=POSITIVE_INT,
                     help="iterations (default: the authors' 800k at batch 8, scaled)")
    run.add_argument("--epochs", type=POSITIVE_FLOAT, help="passes over the training images, instead of --iterations")
    run.add_argument("--batch-size", type=POSITIVE_INT, help="images per iteration over all processes (8)")
    run.add_argument("--lr", type=POSITIVE_FLOAT, help="peak learning rate (default: 1e-3 x batch-size / 8)")
    run.add_argument("--output", type=Path, metavar="DIR",
                     help="checkpoints, metrics.jsonl and curves.png go here (default: runs/train)")
    run.add_argument("--checkpoint-every", type=POSITIVE_INT, metavar="N", help="iterations (1000)")
    run.add_argument("--keep", type=POSITIVE_INT, metavar="K", help="periodic checkpoints kept (3)")
    run.add_argument("--val-every", type=POSITIVE_INT, metavar="N",
                     help="validation mAP every N iterations (and at the end)")
    run.add_argument("--log-every", type=POSITIVE_INT, metavar="N", help="metrics log interval (10)")
    _add_device_arg(run)
    run.add_argument("--workers", type=NON_NEGATIVE_INT, help="data loading processes (2)")
    run.add_argument("--seed", type=NON_NEGATIVE_INT,
                     help="seed of the initialisation, the data order and the augmentation (default: 0)")
    run.add_argument("--precision", choices=PRECISIONS,
                     help="auto: fp16 mixed precision on CUDA, fp32 on CPU; bf16: mixed precision on CUDA or on "
                     "CPUs with AMX/AVX512-BF16 (about 2.5x faster there); fp32: none (default: auto)")
    run.add_argument("--max-expand", type=_number(float, 1.0, what="a zoom-out ratio"), metavar="R",
                     help="augmentation: largest zoom-out of expand (the authors' 4; lower it for data with many "
                     "small objects, 1 turns expand off)")
    run.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes (torchrun)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train, device=None)



def _add_convert_parser(sub: argparse._SubParsersAction) -> None:
    convert = sub.add_parser("convert", help="convert a YOLO-seg dataset, a labelme folder or Pascal SBD to a COCO "
                             "annotation file",
                             description="Write the COCO instances JSON of a YOLO-seg dataset (polygons in pixels), "
                             "of a folder of labelme files (shapes sharing a group_id are one instance) or of a split "
                             "of Pascal SBD (inst/*.mat instance maps, as the authors' convert_sbd.py).",
                             epilog=EXAMPLES_CONVERT, formatter_class=argparse.RawDescriptionHelpFormatter)
    convert.add_argument("source", type=Path, nargs="?", metavar="DIR",
                         help="--from labelme: the labelme folder; --from sbd: the SBD folder "
                         "(benchmark_RELEASE/dataset)")
    convert.add_argument("--from", dest="source_format", choices=("yolo", "labelme", "sbd"), default="yolo",
                         help="yolo: --images and --labels (default); labelme: a folder of labelme .json files; "
                         "sbd: Pascal SBD with --split")
    convert.add_argument("--split", choices=("train", "val"), help="--from sbd: the split to convert")
    convert.add_argument("--quiet", action="store_true", help="--from sbd: no progress bar")
    convert.add_argument("--images", type=Path, metavar="DIR", help="--from yolo: the images folder")
    convert.add_argument("--labels", type=Path, metavar="DIR", help="--from yolo: one polygon .txt per image")
    convert.add_argument("--names", nargs="+", metavar="NAME",
                         help="class names in id order (default: yolo COCO's; labelme the labels in order of "
                         "appearance)")
    convert.add_argument("--output", type=Path, required=True, metavar="JSON", help="where to write the COCO JSON")
    convert.set_defaults(func=run_convert)


def _add_synthetic_parser(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser("synthetic", help="write a synthetic instance-segmentation dataset (COCO format)",
                           description="Scenes of circles, squares and triangles (3 classes, overlapping, a 5x range "
                           "of sizes, textured backgrounds) with their COCO annotations: data to try training on.")
    synth.add_argument("--output", type=Path, required=True, metavar="DIR",
                       help="writes DIR/images and DIR/annotations.json")
    synth.add_argument("--num-images", type=POSITIVE_INT, default=200, help="number of scenes (200)")
    synth.add_argument("--size", type=_number(int, 32, 8192, what="a side in pixels"), default=256,
                       help="scene side in pixels (256)")
    synth.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="scene i is drawn from (seed, i) (default: 0)")
    synth.set_defaults(func=run_synthetic)



def _add_benchmark_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("benchmark", help="per-stage latency, FPS, GFLOPs and memory of a model",
                           description="Time every stage of inference (preprocess, backbone+FPN, heads, NMS, mask "
                           "assembly, paste) and end-to-end throughput.", epilog=EXAMPLES_BENCHMARK,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(bench)
    bench.add_argument("--images", type=Path, metavar="DIR", help="images to run on (default: the bundled samples)")
    bench.add_argument("--runs", type=POSITIVE_INT, default=20, help="timed runs per measurement (default: 20)")
    bench.add_argument("--warmup", type=NON_NEGATIVE_INT, default=3, help="untimed warm-up runs (default: 3)")
    bench.add_argument("--batch-size", type=POSITIVE_INT, default=4,
                       help="batch for the throughput figure (default: 4)")
    bench.add_argument("--score-threshold", type=PROBABILITY, default=0.15, help="as predict (default: 0.15)")
    bench.add_argument("--top-k", type=POSITIVE_INT, default=100, help="as predict (default: 100)")
    _add_device_arg(bench)
    _add_backend_args(bench)
    bench.add_argument("--threads", type=POSITIVE_INT, help="CPU threads for torch (default: torch's)")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write every figure as JSON")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.set_defaults(func=run_benchmark)



def _add_cache_parser(sub: argparse._SubParsersAction) -> None:
    cache = sub.add_parser("cache", help="list or clear the export cache of --backend auto",
                           description="--backend auto (the default on a CPU) exports a checkpoint once for "
                           "OpenVINO or ONNX Runtime and keeps the export in a cache: $YOLACT_CACHE, else "
                           "$XDG_CACHE_HOME/yolact, else ~/.cache/yolact. Entries are keyed by the checkpoint's "
                           "content, its config and the library versions.",
                           epilog="examples:\n  yolact cache list\n  yolact cache clear",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    cache.add_argument("action", choices=("list", "clear"), help="list the entries, or remove them all")
    cache.set_defaults(func=run_cache)


def _add_export_parser(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="write a checkpoint in the authors' flat format or in ours",
                            description="Convert checkpoints: 'official' writes the flat state_dict that the "
                            "authors' eval.py and train.py read; 'yolact' writes ours (weights + config + "
                            "class names); 'onnx' and 'openvino' write the network for ONNX Runtime and OpenVINO, "
                            "in fp32 or (--int8) quantised.", epilog=EXAMPLES_EXPORT,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(export, weights_required=False)
    export.add_argument("--format", choices=("official", "yolact", "onnx", "openvino"), default="official",
                        help="official: flat state_dict for the authors' tools (default); yolact: our format; "
                        "onnx: the network for ONNX Runtime (dynamic batch; needs pip install 'yolact[export]'); "
                        "openvino: OpenVINO IR .xml + .bin (needs pip install 'yolact[openvino]')")
    export.add_argument("--int8", action="store_true",
                        help="onnx/openvino: INT8 static post-training quantisation, calibrated on --calibration")
    export.add_argument("--calibration", type=Path, metavar="DIR",
                        help="with --int8: a folder of images like those the model will run on")
    export.add_argument("--calibration-images", type=POSITIVE_INT, default=64, metavar="N",
                        help="with --int8: calibrate on at most N of them, spread over the folder (default: 64)")
    export.add_argument("--output", type=Path, required=True, metavar="FILE",
                        help="where to write the .pth (.onnx, .xml)")
    export.add_argument("--random-init", action="store_true",
                        help="instead of --weights, write a randomly initialised model of --config (for demos "
                        "and tests: its detections are meaningless)")
    export.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="random seed for --random-init (default: 0)")
    export.set_defaults(func=run_export)



EXAMPLES_SERVE = """examples:
  yolact serve --weights yolact_base_54_800000.pth                      # http://127.0.0.1:8000/ (docs: /docs)
  yolact serve --weights model.onnx --backend onnxruntime --max-batch 4 --port 9000
  curl -s --data-binary @photo.jpg -H 'Content-Type: image/jpeg' 'http://127.0.0.1:8000/v1/predict?score_threshold=0.3'
  curl -s -F image=@photo.jpg 'http://127.0.0.1:8000/v1/predict?format=coco'    # the records predict --json writes
  curl -s --data-binary @photo.jpg http://127.0.0.1:8000/v1/predict/overlay -o overlay.png

concurrent requests are run together (up to --max-batch images, waiting at most --max-wait-ms for more) by one
inference thread; --max-batch 1 runs one request at a time. Listens on 127.0.0.1 unless --host says otherwise."""

EXAMPLES_VIEW = """examples:
  yolact predict images/ --weights W.pth --json dets.json && yolact view dets.json --images images/
  yolact view dets.json --images val2017/ --ann instances_val2017.json          # ground truth beside or over
  yolact view new.json --images val/ --compare old.json --ann val.json          # two result files side by side

open the printed address in a browser; images are served only from --images, by index."""


def _add_serve_args(parser: argparse.ArgumentParser, port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every interface)")
    parser.add_argument("--port", type=_number(int, 0, 65535, what="a port"), default=port,
                        help=f"port (default: {port}; 0: any free port)")


def _add_serve_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="serve a model over HTTP (FastAPI), with dynamic batching",
                           description="Serve a model over HTTP: POST /v1/predict (JSON), /v1/predict/overlay (PNG), "
                           "GET /v1/health, /v1/info, the viewer at / and the API docs at /docs. Needs pip install "
                           "'yolact[serve]'.", epilog=EXAMPLES_SERVE,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(serve)
    _add_backend_args(serve)
    _add_device_arg(serve)
    serve.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="as predict")
    serve.add_argument("--score-threshold", type=PROBABILITY, default=0.15,
                       help="default for requests that give none (0.15)")
    serve.add_argument("--top-k", type=POSITIVE_INT, default=100, help="default for requests that give none (100)")
    _add_serve_args(serve, 8000)
    serve.add_argument("--max-batch", type=POSITIVE_INT, default=8, metavar="N",
                       help="at most N images per network call (default: 8; 1: no batching)")
    serve.add_argument("--max-wait-ms", type=_number(float, 0.0, 10_000, what="milliseconds"), default=10.0,
                       metavar="MS", help="how long a request waits for others to batch with (default: 10)")
    serve.add_argument("--max-pixels", type=POSITIVE_INT, default=40_000_000, metavar="N",
                       help="refuse images with more pixels (default: 40000000)")
    serve.add_argument("--max-upload-mb", type=POSITIVE_FLOAT, default=50.0, metavar="MB",
                       help="refuse bodies larger than this (default: 50)")
    serve.add_argument("--workers", type=POSITIVE_INT, default=2, metavar="N",
                       help="threads decoding uploads and encoding responses, beside the one inference thread "
                       "(default: 2)")
    serve.set_defaults(func=run_serve)


def _add_view_parser(sub: argparse._SubParsersAction) -> None:
    view = sub.add_parser("view", help="browse detections over their images in a web browser",
                          description="Serve a page that draws COCO results over their images (masks, boxes, "
                          "labels, score slider, class filter, top-k), with ground truth and a second results "
                          "file beside them. Needs pip install 'yolact[serve]'.", epilog=EXAMPLES_VIEW,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    view.add_argument("results", type=Path, help="a COCO results file (yolact predict --json, yolact eval --json)")
    view.add_argument("--images", type=Path, required=True, metavar="DIR", help="the folder of the images")
    view.add_argument("--ann", type=Path, metavar="GT", help="a COCO annotation file: ground truth and image ids")
    view.add_argument("--compare", type=Path, metavar="OTHER", help="a second results file, shown beside")
    _add_serve_args(view, 8080)
    view.set_defaults(func=run_view)


def _add_merge_parser(sub: argparse._SubParsersAction) -> None:
    merge = sub.add_parser("merge-results", help="merge the shard files of predict --shard into one COCO results file",
                           description="One COCO results list from the JSON-lines files `yolact predict --shard` "
                           "writes, in shard order: the records one process would have written.",
                           epilog="example:\n  yolact merge-results out/detections.shard-*.jsonl --output all.json",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    merge.add_argument("shards", type=Path, nargs="+", metavar="SHARD", help="the shard files")
    merge.add_argument("--output", type=Path, required=True, metavar="FILE", help="the COCO results file to write")
    merge.set_defaults(func=run_merge)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="yolact", description="YOLACT real-time instance segmentation.",
                           epilog="YOLACT_DEBUG=1 shows the traceback behind an error (for bug reports).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_predict_parser(sub)
    _add_eval_parser(sub)
    _add_train_parser(sub)
    _add_convert_parser(sub)
    _add_synthetic_parser(sub)
    _add_benchmark_parser(sub)
    _add_export_parser(sub)
    _add_cache_parser(sub)
    _add_serve_parser(sub)
    _add_view_parser(sub)
    _add_merge_parser(sub)
    return parser


def _inference_options(args: argparse.Namespace, **fixed: Any) -> Any:
    from yolact.inference.options import InferenceOptions

    given = {"score_threshold": args.score_threshold, "top_k": args.top_k, "device": args.device,
             "backend": args.backend, "cache": not args.no_cache, **fixed}
    return InferenceOptions(**given)


def run_predict(args: argparse.Namespace) -> int:
    from yolact.inference.forms import ImageForms
    from yolact.inference.job import PredictJob, run_prediction

    options = _inference_options(args, classes=args.classes, nms=args.nms, precision=args.precision,
                                 compile=args.compile, cuda_graph=False if args.no_cuda_graph else None)
    forms = ImageForms(args.save_txt, args.save_labelme, args.save_masks, args.save_masks_semantic,
                       args.polygon_tolerance)
    from yolact.inference.shards import Shard

    shard = args.shard or Shard.from_environment()
    report = run_prediction(PredictJob(args.source, args.weights, args.config, options, args.output, args.json,
                                       args.image_ids, args.segmentation, forms, args.batch, args.streams, args.show,
                                       not args.quiet, shard, args.resume))
    for line in [*report.lines, report.summary]:
        print(line)
    return 0 if report.ok else 1


def run_eval(args: argparse.Namespace) -> int:
    from yolact.evaluation.job import EvalJob, run_evaluation

    job = EvalJob(args.weights, args.ann, args.images, args.config, _inference_options(args), args.json,
                  args.save_metrics, args.max_images, args.errors, args.errors_min_score, not args.quiet)
    report = run_evaluation(job)
    result = report.result
    if result is None:  # a torchrun process other than rank 0, which prints the figures
        return 0
    processes = f" x {report.processes} processes" if report.processes > 1 else ""
    backend = "" if report.backend == "pytorch" else f" ({report.backend})"
    print(f"{result.num_images} images evaluated on {report.device}{backend}{processes}"
          + (f"; skipped {len(result.skipped)} unreadable or missing image(s)" if result.skipped else ""))
    print(result.format_table(per_class=args.per_class))
    if report.errors is not None:
        print(report.errors.format_table())
        print(f"error overlays and counts in {args.errors}")
    if args.save_metrics:
        print(f"metrics in {args.save_metrics}")
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    from yolact.evaluation.job import BenchmarkJob, run_benchmark_job

    report = run_benchmark_job(BenchmarkJob(args.weights, args.config, _inference_options(args), args.images,
                                            args.runs, args.warmup, args.batch_size, args.threads, args.json,
                                            not args.quiet))
    print(report.format_table())
    return 0


def run_train(args: argparse.Namespace) -> int:
    from yolact.data.splits import read_dataset_yaml
    from yolact.training.job import TrainJob, resume_job, run_training

    given = {"config": args.config, "iterations": args.iterations, "epochs": args.epochs,
             "batch_size": args.batch_size, "lr": args.lr, "weights": args.weights,
             "backbone_weights": args.backbone_weights, "output_dir": args.output, "device": args.device,
             "workers": args.workers, "seed": args.seed, "checkpoint_every": args.checkpoint_every,
             "keep_checkpoints": args.keep, "val_every": args.val_every, "log_every": args.log_every,
             "precision": args.precision, "sync_bn": args.sync_bn or None, "max_expand": args.max_expand}
    if args.data:
        given["train"], given["val"], given["class_names"] = read_dataset_yaml(args.data)
    else:
        given["train"] = _split(args.train_images, args.train_ann, args.train_labels, "train",
                                required=args.resume is None)
        given["val"] = _split(args.val_images, args.val_ann, args.val_labels, "val", required=False)
    if args.resume is not None:
        job = resume_job(args.resume, progress=not args.quiet, **given)
    else:
        job = TrainJob(progress=not args.quiet, **{k: v for k, v in given.items() if v is not None})
    path = run_training(job)
    print(f"done: {path} (metrics in {path.parent / 'metrics.jsonl'}, curves in {path.parent / 'curves.png'})")
    return 0


def _split(images: Path | None, ann: Path | None, labels: Path | None, name: str, required: bool = True
           ) -> DataSplit | None:
    from yolact.data.splits import DataSplit

    if images is None and ann is None and labels is None:
        if required:
            raise ValueError(f"give the {name} data: --{name}-ann JSON (or --{name}-labels DIR) with "
                             f"--{name}-images DIR, or --data dataset.yaml")
        return None
    if images is None or (ann is None) == (labels is None):
        raise ValueError(f"--{name}-images needs exactly one of --{name}-ann (COCO) or --{name}-labels (YOLO-seg)")
    return DataSplit(images, ann, labels)


def run_synthetic(args: argparse.Namespace) -> int:
    from yolact.data.synthetic import write_synthetic_coco

    ann, images = write_synthetic_coco(args.output, args.num_images, args.seed, (args.size, args.size))
    print(f"wrote {args.num_images} scenes to {images} and {ann}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    if args.source_format == "sbd":
        from yolact.data.sbd import convert_sbd, sbd_root

        if args.source is None or args.split is None or args.images or args.labels or args.names:
            raise ValueError("--from sbd takes the SBD folder and --split (yolact convert --from sbd "
                             "benchmark_RELEASE/dataset --split val --output sbd_val.json); the classes are Pascal's")
        written = convert_sbd(args.source, args.split, args.output, progress=not args.quiet)
        print(f"wrote {written} (images in {sbd_root(args.source) / 'img'})")
        return 0
    if args.source_format == "labelme":
        from yolact.data.labelme import convert_labelme

        if args.source is None or args.images or args.labels:
            raise ValueError("--from labelme takes the labelme folder (yolact convert --from labelme DIR --output "
                             "ann.json), not --images/--labels")
        print(f"wrote {convert_labelme(args.source, args.output, args.names)}")
        return 0
    from yolact.data.yolo import convert_yolo

    if args.images is None or args.labels is None or args.source is not None:
        raise ValueError("--from yolo takes --images DIR and --labels DIR (a folder argument is for --from labelme)")
    print(f"wrote {convert_yolo(args.images, args.labels, args.output, args.names)}")
    return 0


def run_cache(args: argparse.Namespace) -> int:
    from yolact.export.cache import cache_root, clear_cache, list_cache

    if args.action == "clear":
        count, size = clear_cache()
        print(f"removed {count} entr{'y' if count == 1 else 'ies'} ({size / 2**20:.1f} MiB) from {cache_root()}")
        return 0
    entries = list_cache()
    for entry in entries:
        record = entry["record"]
        print(f"{entry['folder']}  {entry['format']}  {entry['bytes'] / 2**20:.1f} MiB  "
              f"{record.get('weights', '?')}  {record.get('created', '?')}")
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} in {cache_root()}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from yolact.export.pipeline import ExportJob, export_checkpoint

    print(export_checkpoint(ExportJob(args.output, args.weights, args.config, args.format, args.int8, args.calibration,
                           args.calibration_images, args.random_init, args.seed)))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from yolact.serve.options import ServeJob, ServeOptions
    from yolact.serve.server import serve_model

    options = _inference_options(args, precision=args.precision)
    serve = ServeOptions(args.host, args.port, args.max_batch, args.max_wait_ms, args.max_pixels,
                         int(args.max_upload_mb * 2**20), args.workers)
    serve_model(ServeJob(args.weights, args.config, options, serve))
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from yolact.inference.shards import merge_results

    report = merge_results(args.shards, args.output)
    print(f"{report.records} detections of {report.images} image(s) from {report.files} shard file(s) in "
          f"{args.output}")
    return 0


def run_view(args: argparse.Namespace) -> int:
    from yolact.serve.options import ServeOptions, ViewJob
    from yolact.serve.server import view_results

    view_results(ViewJob(args.results, args.images, args.ann, args.compare, ServeOptions(args.host, args.port)))
    return 0


def main(argv: list[str] | None = None) -> int:
    from yolact.errors import YolactError
    from yolact.outputs import os_error_line

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed in one line
        return exc.code if isinstance(exc.code, int) else 0
    debug = os.environ.get("YOLACT_DEBUG", "") not in ("", "0")
    try:
        return args.func(args)
    except KeyboardInterrupt as exc:
        if debug:
            raise
        detail = f": {exc}" if str(exc) else ""
        print(f"yolact {args.command}: interrupted{detail}", file=sys.stderr)
        return 130
    except (YolactError, ValueError, OSError) as exc:
        if debug:
            raise
        text = os_error_line(exc) if isinstance(exc, OSError) else str(exc)
        print(f"yolact {args.command}: error: {' '.join(text.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
