"""GPU frames per second of a preset (default yolact_base, the paper's 33.5 fps model) at batch 1 and 8, in fp32
and fp16: end to end (image in, full-resolution masks out on the host), the network alone and post-processing
alone (network output in, the same predictions out), with and without CUDA graph replay of the network.

    python benchmarks/gpu_fps.py --device cuda --config yolact_base
    python benchmarks/gpu_fps.py --weights yolact_base_54_800000.pth --batch-sizes 1 8 16

Without --weights the model has random weights (seed 0) with its class layer rescaled to a class-logit std of 3
so that post-processing works on a full 100 detections per image, as with trained weights (predict_latency.py
explains). The image is a 640x480 coco128 image (or --image), repeated to fill a batch. Every measurement is the
median of --runs timed runs after --warmup untimed ones (cuDNN autotuning and allocator growth are not timed),
with torch.cuda.synchronize around each. A script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

import yolact
from yolact.data.images import read_image
from yolact.evaluation.benchmark import calibrate_class_layer, describe_device, median_seconds

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="yolact_base")
    parser.add_argument("--weights", type=Path, help="a checkpoint instead of random weights")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "fp16", "bf16"), default=["fp32", "fp16"])
    parser.add_argument("--cuda-graph", nargs="+", choices=("on", "off"), default=["on", "off"],
                        help="replay the network as a CUDA graph (the predictor's default on CUDA) or launch eagerly")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--image", type=Path, default=SHARED / "data" / "coco128-seg" / "images" / "000000000009.jpg")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type != "cuda" or not torch.cuda.is_available():
        parser.error("this benchmark needs a CUDA device (CPU figures: benchmarks/deploy.py)")
    torch.backends.cudnn.benchmark = True
    image = read_image(args.image)
    if args.weights is not None:
        base = yolact.load(args.weights, args.config, device=str(device), score_threshold=0.0, optimize=False)
        model, config = base.model, base.config
    else:
        torch.manual_seed(0)
        config = yolact.get_config(args.config)
        model = yolact.build_yolact(config).to(device).eval()
        plain = yolact.Predictor.from_model(model, config, device=str(device), optimize=False)
        calibrate_class_layer(model, plain.prepare([image]))
    print(f"{config.name} at {config.max_size} on {describe_device(device)}, torch {torch.__version__}; "
          f"medians of {args.runs} runs after {args.warmup}; TF32 convolutions "
          f"{'on' if torch.backends.cudnn.allow_tf32 else 'off'} (PyTorch's default for fp32)\n")
    print("| precision | CUDA graph | batch | network ms | network images/s | post-processing ms | end to end ms "
          "| end to end images/s | dets/img |")
    print("|---|---|---|---|---|---|---|---|---|")
    for precision, graph in itertools.product(args.precisions, args.cuda_graph):
        if graph == "on" and any(config.backbone.dcn_layers):
            print(f"| {precision} | on | - | {config.name}'s deformable convs cannot be captured (see Predictor) |")
            continue
        predictor = yolact.Predictor.from_model(model, config, device=str(device), score_threshold=0.0, top_k=100,
                                                precision=precision, cuda_graph=graph == "on")
        for batch_size in args.batch_sizes:
            images = [image] * batch_size
            batch = predictor.prepare(images)
            with torch.inference_mode():
                network = median_seconds(lambda p=predictor, b=batch: p.run_network(b), args.runs, args.warmup,
                                         device)
                output = predictor.run_network(batch)
                post = median_seconds(lambda p=predictor, o=output, i=images: p.postprocess(o, i), args.runs,
                                      args.warmup, device)
                e2e = median_seconds(lambda p=predictor, i=images: p.predict_arrays(i), args.runs, args.warmup,
                                     device)
                dets = np.mean([len(p) for p in predictor.predict_arrays(images)])
            print(f"| {precision} | {graph} | {batch_size} | {1e3 * network:.1f} | {batch_size / network:.0f} | "
                  f"{1e3 * post:.1f} | {1e3 * e2e:.1f} | {batch_size / e2e:.0f} | {dets:.0f} |")


if __name__ == "__main__":
    main()
