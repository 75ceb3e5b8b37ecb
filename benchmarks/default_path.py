"""What the default (``--backend auto``) costs a photo against every backend, in one interleaved run: idle, then
with a CPU-bound process running beside it. Also the first call's export into the cache.

    python benchmarks/default_path.py                       # yolact_resnet50, a 640x480 coco128 photo
    python benchmarks/default_path.py --config yolact_base --runs 15

The model is the config in the authors' format with random weights (shared/spec's make_checkpoint.py, the class
layer scaled so that 100 detections pass), so post-processing does a full image's work. Every backend is timed
end to end (``Predictor.predict_arrays``: image in, full-resolution masks out), the backends taking turns run by
run so that the machine's drift falls on all alike; the figure is the median per backend. A script that prints
figures, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import yolact
from yolact.data.images import read_image
from yolact.evaluation.benchmark import describe_cpu
from yolact.export.pipeline import ExportJob, export_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared"
PHOTO = SHARED / "data" / "coco128-seg" / "images" / "000000000009.jpg"
BUSY = "import numpy as np\na = np.random.rand(512, 512)\nwhile True:\n    a @ a"


def official_checkpoint(config: str, folder: Path) -> Path:
    maker = runpy.run_path(str(SHARED / "spec" / "make_checkpoint.py"))
    keys = SHARED / "spec" / "keys" / f"{config}.txt"
    state = {name: maker["make_tensor"](name, shape, 0, 8.0) for name, shape in maker["read_keys"](keys)}
    path = folder / f"{config}_54_800000.pth"
    torch.save(state, path)
    return path


def interleaved(predictors: dict[str, yolact.Predictor], image: np.ndarray, runs: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in predictors}
    for _ in range(runs):
        for name, predictor in predictors.items():
            start = time.perf_counter()
            predictor.predict_arrays([image])
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) * 1000 for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="yolact_resnet50")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    image = read_image(PHOTO)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["YOLACT_CACHE"] = str(folder / "cache")  # a first call that finds no entry
        weights = official_checkpoint(args.config, folder)
        options = yolact.InferenceOptions(device="cpu", score_threshold=0.15, top_k=100)
        start = time.perf_counter()
        default = yolact.load(weights, options=options)
        first_load = time.perf_counter() - start
        start = time.perf_counter()
        yolact.load(weights, options=options)
        cached_load = time.perf_counter() - start
        onnx, ir = folder / "model.onnx", folder / "model.xml"
        export_checkpoint(ExportJob(onnx, weights, format="onnx"))
        export_checkpoint(ExportJob(ir, weights, format="openvino"))
        predictors = {
            f"default (auto: {default.network.backend})": default,
            "pytorch": yolact.load(weights, options=dataclasses.replace(options, backend="pytorch")),
            "onnxruntime": yolact.load(onnx, options=dataclasses.replace(options, backend="onnxruntime")),
            "openvino": yolact.load(ir, options=dataclasses.replace(options, backend="openvino")),
        }
        detections = {name: len(p.predict_arrays([image])[0]) for name, p in predictors.items()}
        interleaved(predictors, image, args.warmup)
        idle = interleaved(predictors, image, args.runs)
        busy_process = subprocess.Popen([sys.executable, "-c", BUSY], env={**os.environ, "OMP_NUM_THREADS": "1",
                                                                           "OPENBLAS_NUM_THREADS": "1",
                                                                           "MKL_NUM_THREADS": "1"})
        try:
            time.sleep(1.0)
            busy = interleaved(predictors, image, args.runs)
        finally:
            busy_process.kill()
            busy_process.wait()
    print(f"{args.config}, a {image.shape[1]}x{image.shape[0]} photo, {detections[next(iter(detections))]} "
          f"detections; {len(os.sched_getaffinity(0))} cores ({describe_cpu()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; medians of {args.runs} interleaved runs")
    print(f"first call (export into the cache included): {first_load:.1f} s; later calls: {cached_load:.1f} s")
    print(f"{'backend':34} {'idle ms':>8} {'x best':>7} {'busy ms':>8} {'x best':>7}")
    best_idle, best_busy = min(idle.values()), min(busy.values())
    for name in predictors:
        print(f"{name:34} {idle[name]:8.0f} {idle[name] / best_idle:7.2f} {busy[name]:8.0f} "
              f"{busy[name] / best_busy:7.2f}")
    print("busy: a second process beside it, one thread of 512x512 matrix products without pause")


if __name__ == "__main__":
    main()
