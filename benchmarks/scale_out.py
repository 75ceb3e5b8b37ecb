"""What scaling out costs and gains: ``yolact eval`` and ``yolact predict`` in one process against torchrun with
N processes, and Ray Data with N workers, on the same images, each as its own command, timed from start to
finish (start-up, model loading and pycocotools included: what a user waits for). Prints a table.

    python benchmarks/scale_out.py                      # coco128-seg val (32 images), 2 processes
    python benchmarks/scale_out.py --processes 4 --weights yolact_base_54_800000.pth --config yolact_base

Without --weights the model is yolact_resnet50 in the authors' format with random weights (shared/spec's
make_checkpoint.py, class layer scaled so that detections fill top-k). With a CUDA GPU the eval runs also go
there (torchrun: NCCL, one process per GPU). A script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from yolact.evaluation.benchmark import describe_cpu

SHARED = Path(__file__).resolve().parents[2] / "shared"
COCO128 = SHARED / "data" / "coco128-seg"

RAY_SCRIPT = """
import sys, ray
from yolact.inference.options import InferenceOptions
from yolact.integrations.ray import YolactBatchPredictor, read_folder, write_coco_results
ray.init(num_cpus=int(sys.argv[3]), include_dashboard=False, log_to_driver=False, configure_logging=False)
kwargs = {"weights": sys.argv[2], "options": InferenceOptions(device=sys.argv[5])}
rows = read_folder(sys.argv[1]).map_batches(YolactBatchPredictor, fn_constructor_kwargs=kwargs, batch_size=1,
                                            concurrency=int(sys.argv[3]), num_gpus=1 if sys.argv[5] == "cuda" else 0)
write_coco_results(rows, sys.argv[4])
"""


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def official_checkpoint(folder: Path) -> Path:
    maker = runpy.run_path(str(SHARED / "spec" / "make_checkpoint.py"))
    state = {name: maker["make_tensor"](name, shape, 0, 8.0)
             for name, shape in maker["read_keys"](SHARED / "spec" / "keys" / "yolact_resnet50.txt")}
    path = folder / "yolact_resnet50_54_800000.pth"
    torch.save(state, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--config")
    parser.add_argument("--ann", type=Path, default=COCO128 / "annotations" / "instances_val.json")
    parser.add_argument("--images", type=Path, default=COCO128 / "images")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray Data run")
    args = parser.parse_args()
    n = args.processes
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        weights = args.weights or official_checkpoint(out)
        model = ["--weights", str(weights), *(["--config", args.config] if args.config else [])]
        listed = [Path(i["file_name"]).name for i in json.loads(args.ann.read_text())["images"]]
        folder = out / "images"  # the listed images alone, so that predict and eval see the same ones
        folder.mkdir()
        for name in listed:
            (folder / name).symlink_to((args.images / name).resolve())
        count = len(listed)
        yolact, torchrun = [sys.executable, "-m", "yolact"], [sys.executable, "-m", "torch.distributed.run",
                                                             "--standalone", "--nproc_per_node", str(n)]
        evaluate = ["eval", *model, "--ann", str(args.ann), "--images", str(args.images), "--quiet"]
        predict = ["predict", str(folder), *model, "--quiet"]
        runs: list[tuple[str, float]] = []
        for device in ["cpu", *(["cuda"] if cuda else [])]:
            runs.append((f"eval, 1 process ({device})",
                         timed([*yolact, *evaluate, "--device", device, "--json", str(out / "e1.json")])))
            nproc = n if device == "cpu" else torch.cuda.device_count()
            runs.append((f"eval, torchrun x {nproc} ({'gloo' if device == 'cpu' else 'NCCL'}, {device})",
                         timed([*torchrun[:-1], str(nproc), "-m", "yolact", *evaluate, "--device", device,
                                "--json", str(out / f"e{device}.json")])))
        runs.append(("predict --json, 1 process (cpu)",
                     timed([*yolact, *predict, "--device", "cpu", "--json", str(out / "p1.json")])))
        shards = timed([*torchrun, "-m", "yolact", *predict, "--device", "cpu", "--json", str(out / "p.jsonl")])
        shards += timed([*yolact, "merge-results", *map(str, sorted(out.glob("p.shard-*.jsonl"))),
                         "--output", str(out / "merged.json")])
        runs.append((f"predict, torchrun x {n} shards + merge-results (cpu)", shards))
        if not args.no_ray:
            runs.append((f"Ray Data, {n} workers (cpu)",
                         timed([sys.executable, "-c", RAY_SCRIPT, str(folder), str(weights), str(n),
                                str(out / "ray.json"), "cpu"])))
    print(f"{count} images ({args.ann.name}), {len(os.sched_getaffinity(0))} CPU cores ({describe_cpu()}), "
          f"torch {torch.__version__}"
          + (f", {torch.cuda.get_device_name(0)}" if cuda else ""))
    print(f"{'run':58} {'seconds':>8} {'images/s':>9}")
    for name, seconds in runs:
        print(f"{name:58} {seconds:8.1f} {count / seconds:9.2f}")


if __name__ == "__main__":
    main()
