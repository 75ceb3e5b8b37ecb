"""The PyTorch CPU path layer by layer: the optimised network (BatchNorm folded, channels-last) without and with
oneDNN's post-op fusion (each backbone conv with its ReLU, and a bottleneck's residual add and ReLU), timed in
turns in one run, then the fused network's ops by time, with their input shapes.

    python benchmarks/pytorch_path.py                     # yolact_resnet50 at 550, 2 threads
    python benchmarks/pytorch_path.py --config yolact_base --runs 12

Random weights with non-trivial BatchNorm statistics (values do not change a conv network's speed). The two
networks alternate run by run so that the machine's drift falls on both; figures are medians. A script that prints
figures, not a test.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

import yolact
from yolact.evaluation.benchmark import describe_cpu
from yolact.modeling.inference import optimize_for_inference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="yolact_resnet50")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=12, help="how many op kinds and shapes to list")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = yolact.get_config(args.config)
    model = yolact.build_yolact(config).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    networks = {"folded": optimize_for_inference(model), "folded + oneDNN post-ops": optimize_for_inference(
        model, onednn=True)}
    x = torch.randn(1, 3, config.max_size, config.max_size).contiguous(memory_format=torch.channels_last)
    seconds: dict[str, list[float]] = defaultdict(list)
    with torch.inference_mode():
        want, got = (net(x) for net in networks.values())
        largest = max(float((a - b).abs().max()) for a, b in zip(want[:5], got[:5], strict=True))
        for net in networks.values():
            net(x)
        for _ in range(args.runs):
            for name, net in networks.items():
                start = time.perf_counter()
                net(x)
                seconds[name].append(time.perf_counter() - start)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiled:
            networks["folded + oneDNN post-ops"](x)
    print(f"{args.config} at {config.max_size}, batch 1, {args.threads} threads, CPU {describe_cpu()}, "
          f"torch {torch.__version__}; {args.runs} runs in turns\n")
    base = float(np.median(seconds["folded"]))
    for name, values in seconds.items():
        median = float(np.median(values))
        print(f"{name:28s} {1e3 * median:8.1f} ms  {median / base:5.2f}x folded")
    print(f"largest output difference between the two: {largest:.2e}\n")
    events = sorted(profiled.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    print("fused network, ops by self time (one forward):")
    for event in events[:args.top]:
        shapes = str(event.input_shapes[:2]) if event.input_shapes else ""
        print(f"  {100 * event.self_cpu_time_total / total:5.1f} %  {event.self_cpu_time_total / 1e3:7.1f} ms  "
              f"x{event.count:<3d} {event.key:38s} {shapes[:60]}")


if __name__ == "__main__":
    main()
