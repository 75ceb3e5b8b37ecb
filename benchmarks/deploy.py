"""CPU deployment table: every preset's network in eager PyTorch, our optimised PyTorch path, ONNX Runtime and
OpenVINO (fp32, and INT8 where asked), against the machine's fp32 peak measured in the same run; end to end
(image in, full-resolution masks out) at 100 detections; INT8 detections scored against fp32's.

    python benchmarks/deploy.py --threads 2 --output runs/deploy
    python benchmarks/deploy.py --presets yolact_resnet18 --weights runs/bench/run/last.pth \\
        --agreement-images runs/bench/data/val/images --int8 yolact_resnet18

Without --weights each model has random weights (seed 0) whose class layer is rescaled to a class-logit std of 3,
so that scores clear the threshold and post-processing works on a full 100 detections, as with trained weights
(see predict_latency.py). Timings are medians over --runs after --warmup untimed runs, at batch 1.
Columns: GFLOPs of one forward; the network's median ms in each mode and its GFLOP/s against the peak's rate
measured beside it; end to end with the optimised network at 100 detections and its time over the network's;
INT8 speed-up over ONNX Runtime fp32, and box/mask AP50 of INT8 detections with fp32's as ground truth.
The machine's speed drifts by about 10 % within minutes (shared hosts), so each timed fp32 network call is paired
with a peak probe right before it (three 2048^3 products by the fastest GEMM here, their median: torch.mm,
numpy's BLAS, OpenVINO's and ONNX Runtime's MatMul are tried at the start) and the "% of peak" columns are the
median of the per-pair ratios: the network against the machine as it was at that moment. End to end alternates
with the network alone in the same way. The peak in the heading (best single product before and after the
table) is printed for reference.
A script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import yolact
from yolact.data.images import list_images, read_image
from yolact.evaluation.benchmark import calibrate_class_layer, count_flops, describe_cpu, median_seconds
from yolact.evaluation.evaluator import evaluate_agreement
from yolact.export.onnx import OnnxNetwork, export_onnx
from yolact.export.quantize import calibration_images, quantize_onnx

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _gemm_candidates(size: int, threads: int) -> dict[str, Callable[[], object]]:
    """fp32 products of two size x size matrices by every GEMM at hand: torch.mm (MKL on x86), numpy's BLAS
    (OpenBLAS in its wheels), OpenVINO's MatMul and ONNX Runtime's (MLAS). On a non-Intel CPU MKL may take a slow
    path while the runtimes' own kernels do not; the fastest of them is the machine's fp32 peak."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    a_np, b_np = a.numpy(), b.numpy()
    calls: dict[str, Callable[[], object]] = {"torch.mm": lambda: torch.mm(a, b, out=out),
                                              "numpy BLAS": lambda: np.matmul(a_np, b_np)}
    try:
        import openvino as ov
        import openvino.opset13 as ops

        parameter = ops.parameter([size, size], np.float32)
        model = ov.Model([ops.matmul(parameter, ops.constant(b_np), False, False)], [parameter])
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                          "INFERENCE_NUM_THREADS": threads})
        request = compiled.create_infer_request()
        calls["OpenVINO MatMul"] = lambda: request.infer({0: a_np})
    except ImportError:
        pass
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                                  [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])],
                                  [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])],
                                  [numpy_helper.from_array(b_np, "b")])
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        calls["ONNX Runtime MatMul"] = lambda: session.run(None, {"a": a_np})
    except ImportError:
        pass
    return calls


class PeakProbe:
    """The machine's fp32 peak, as the fastest of several GEMMs (:func:`_gemm_candidates`), chosen once at the
    start: its rate right now (:meth:`gflops`) or at its best (:meth:`peak`). Convolutions run as GEMMs, so this
    is the ceiling a network can approach, and "% of peak" means the same on Intel and AMD CPUs."""

    def __init__(self, threads: int, size: int = 2048) -> None:
        self.flops = 2 * size**3
        candidates = _gemm_candidates(size, threads)
        self.candidates: dict[str, float] = {}
        for name, call in candidates.items():
            call()
            self.candidates[name] = max(self._rate(call) for _ in range(5))
        self.name = max(self.candidates, key=self.candidates.__getitem__)
        self._call = candidates[self.name]

    def _rate(self, call: Callable[[], object]) -> float:
        start = time.perf_counter()
        call()
        return self.flops / (time.perf_counter() - start) / 1e9

    def rates(self, repeats: int) -> list[float]:
        """GFLOP/s of ``repeats`` products by the fastest GEMM, one after another."""
        return [self._rate(self._call) for _ in range(repeats)]

    def gflops(self) -> float:
        """The median of three products: the rate to pair with a network run."""
        return float(np.median(self.rates(3)))

    def peak(self) -> float:
        """The best of eight products."""
        return max(self.rates(8))

    def describe(self) -> str:
        return ", ".join(f"{name} {rate:.0f}" for name, rate in sorted(self.candidates.items(),
                                                                      key=lambda kv: -kv[1]))


def paired_timing(call: Callable[[], object], runs: int, warmup: int, gflops: float,
                  probe: PeakProbe) -> tuple[float, float]:
    """(median seconds of ``call()``, median over runs of its GFLOP/s over the peak GEMM's rate probed just before
    it)."""
    for _ in range(warmup):
        call()
    seconds, fractions = [], []
    for _ in range(runs):
        peak = probe.gflops()
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
        fractions.append(gflops / seconds[-1] / peak)
    return float(np.median(seconds)), float(np.median(fractions))


def alternated(call: Callable[[], object], reference: Callable[[], object], runs: int,
               warmup: int) -> tuple[float, float]:
    """(median seconds of ``call()``, median over runs of its time over ``reference()``'s, the two run in turn):
    end to end against the network alone, both timed at the same moment."""
    for _ in range(warmup):
        call()
    seconds, ratios = [], []
    for _ in range(runs):
        start = time.perf_counter()
        reference()
        middle = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - middle)
        ratios.append(seconds[-1] / (middle - start))
    return float(np.median(seconds)), float(np.median(ratios))


def build(preset: str, weights: Path | None, image: np.ndarray) -> yolact.Predictor:
    if weights is not None:
        # Our checkpoints carry their config (a trained model may have other classes than the preset).
        return yolact.load(weights, device="cpu", score_threshold=0.0, top_k=100, optimize=False)
    torch.manual_seed(0)
    config = yolact.get_config(preset)
    predictor = yolact.Predictor.from_model(yolact.build_yolact(config), config, device="cpu", score_threshold=0.0,
                                            top_k=100, optimize=False)
    calibrate_class_layer(predictor.model, predictor.prepare([image]))
    return predictor


def bench_preset(preset: str, args: argparse.Namespace, image: np.ndarray, folder: Path,
                 probe: PeakProbe) -> dict[str, Any]:
    plain = build(preset, args.weights, image)
    config, model = plain.config, plain.model
    row: dict[str, Any] = {"preset": preset, "size": config.max_size,
                           "gflops": count_flops(model, config.max_size) / 1e9}
    batch = plain.prepare([image])
    optimised = yolact.Predictor.from_model(model, config, plain.class_names, plain.network.category_ids,
                                            plain.options, optimize=True)
    batch_cl = optimised.prepare([image])
    ms: dict[str, float] = {}
    of_peak: dict[str, float] = {}

    def time_fp32(mode: str, call: Callable[[], object]) -> None:
        seconds, of_peak[mode] = paired_timing(call, args.runs, args.warmup, row["gflops"], probe)
        ms[mode] = 1e3 * seconds

    with torch.inference_mode():
        time_fp32("eager", lambda: model(batch))
        time_fp32("optimised", lambda: optimised.run_network(batch_cl))
        if args.compile:
            compiled = yolact.Predictor.from_model(model, config, device="cpu", compile=True)
            compiled.run_network(batch_cl)  # compilation, not timed
            time_fp32("compiled", lambda: compiled.run_network(batch_cl))
        if args.bf16:
            half = yolact.Predictor.from_model(model, config, device="cpu", precision="bf16")
            ms["torch_bf16"] = 1e3 * median_seconds(lambda: half.run_network(batch_cl), args.runs, args.warmup)
        row["e2e_ms"], row["e2e_over_network"] = alternated(lambda: optimised.predict_arrays([image]),
                                                            lambda: optimised.run_network(batch_cl), args.runs,
                                                            args.warmup)
        row["e2e_ms"] *= 1e3
        row["detections"] = len(optimised.predict_arrays([image])[0])
    category_ids = plain.network.category_ids
    fp32_path = export_onnx(model, config, folder / f"{preset}.onnx", plain.class_names, category_ids)
    networks: dict[str, Callable[[torch.Tensor], Any]] = {"onnxruntime": OnnxNetwork(fp32_path, args.threads)}
    if args.openvino:
        from yolact.export.openvino import OpenVinoNetwork, export_openvino, export_openvino_from_model

        # Deformable convs reach OpenVINO through its PyTorch frontend (its ONNX reader has no DeformConv).
        ir_path = (export_openvino_from_model(model, config, folder / f"{preset}.xml", plain.class_names,
                                              category_ids) if config.backbone.dcn_layers
                   else export_openvino(fp32_path, folder / f"{preset}.xml"))
        networks["openvino"] = OpenVinoNetwork(ir_path, args.threads)
        if args.bf16:
            networks["openvino_bf16"] = OpenVinoNetwork(ir_path, args.threads, precision="bf16")
    int8_path = None
    if preset in args.int8:
        int8_path = quantize_onnx(fp32_path, folder / f"{preset}_int8.onnx", args.calibration_paths, progress=False)
        networks["onnxruntime_int8"] = OnnxNetwork(int8_path, args.threads)
        if args.openvino and not config.backbone.dcn_layers:
            networks["openvino_int8"] = OpenVinoNetwork(int8_path, args.threads)
    for name, network in networks.items():
        if name in FP32_MODES:
            time_fp32(name, lambda n=network: n(batch))
        else:
            ms[name] = 1e3 * median_seconds(lambda n=network: n(batch), args.runs, args.warmup)
    row["ms"] = ms
    row["of_peak"] = of_peak
    row["gflops_per_s"] = {name: row["gflops"] / (value / 1e3) for name, value in ms.items()}
    if int8_path is not None and args.agreement_paths:
        agreement_images = [read_image(p) for p in args.agreement_paths]
        reference = optimised.predict(agreement_images)
        for name in ("onnxruntime_int8", "openvino_int8"):
            if name not in networks:
                continue
            exported = dataclasses.replace(optimised.network, run=networks[name], model=None, module=None,
                                           channels_last=False)
            candidate = yolact.Predictor(exported, optimised.options).predict(agreement_images)
            result = evaluate_agreement(reference, candidate, plain.class_names, args.min_score)
            row.setdefault("int8_agreement", {})[name] = {"box_AP50": result.bbox["AP50"],
                                                          "mask_AP50": result.segm["AP50"],
                                                          "box_AP": result.bbox["AP"], "mask_AP": result.segm["AP"]}
    return row


FP32_MODES = ("eager", "optimised", "compiled", "onnxruntime", "openvino")


def format_table(rows: list[dict[str, Any]]) -> str:
    modes = [m for m in ("eager", "optimised", "compiled", "onnxruntime", "openvino", "torch_bf16", "openvino_bf16",
                         "onnxruntime_int8", "openvino_int8") if any(m in r["ms"] for r in rows)]
    head = "| preset | GFLOPs | " + " | ".join(f"{m} ms" for m in modes) + \
        " | optimised GFLOP/s (% of peak) | best fp32 GFLOP/s (% of peak) | e2e ms at 100 dets" \
        " (x network) | int8 speed-up |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["preset"], f"{r['gflops']:.1f}"]
        cells += [f"{r['ms'][m]:.0f}" if m in r["ms"] else "-" for m in modes]
        rate = r["gflops_per_s"]["optimised"]
        cells.append(f"{rate:.0f} ({100 * r['of_peak']['optimised']:.0f} %)")
        fp32 = {m: r["gflops"] * 1000 / r["ms"][m] for m in FP32_MODES if m in r["ms"]}
        best = max(fp32, key=fp32.__getitem__)
        cells.append(f"{fp32[best]:.0f} ({100 * r['of_peak'][best]:.1f} %, {best})")
        cells.append(f"{r['e2e_ms']:.0f} ({r['e2e_over_network']:.2f}x, {r['detections']} dets)")
        speedup = r["ms"]["onnxruntime"] / r["ms"]["onnxruntime_int8"] if "onnxruntime_int8" in r["ms"] else None
        cells.append(f"{speedup:.2f}x" if speedup else "-")
        lines.append("| " + " | ".join(cells) + " |")
    for r in rows:
        for name, scores in r.get("int8_agreement", {}).items():
            lines.append(f"\n{r['preset']} {name} against fp32 detections: box AP50 {scores['box_AP50']:.3f}, "
                         f"mask AP50 {scores['mask_AP50']:.3f}, box AP {scores['box_AP']:.3f}, "
                         f"mask AP {scores['mask_AP']:.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=sorted(yolact.config.PRESETS), metavar="NAME")
    parser.add_argument("--weights", type=Path, help="a checkpoint for the (single) preset instead of random weights")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every backend (default: 2)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--image", type=Path, default=SHARED / "data" / "coco128-seg" / "images" / "000000000009.jpg",
                        help="the timed image (default: a 640x480 coco128 image)")
    parser.add_argument("--int8", nargs="*", default=["yolact_resnet50"], metavar="NAME",
                        help="presets to quantise to INT8 (default: yolact_resnet50)")
    parser.add_argument("--calibration", type=Path, default=SHARED / "data" / "coco128-seg" / "images")
    parser.add_argument("--calibration-images", type=int, default=16)
    parser.add_argument("--agreement-images", type=Path, help="folder of images on which INT8 detections are "
                        "scored against fp32's (default: 16 coco128 images not used for calibration)")
    parser.add_argument("--min-score", type=float, default=0.3, help="fp32 detections kept as ground truth")
    parser.add_argument("--no-openvino", dest="openvino", action="store_false", help="skip OpenVINO")
    parser.add_argument("--bf16", action="store_true",
                        help="also time bf16: PyTorch autocast and OpenVINO's bf16 inference precision (AMX CPUs)")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile of the optimised network (tens of seconds to compile each)")
    parser.add_argument("--output", type=Path, default=Path("runs/deploy"))
    args = parser.parse_args()
    if args.weights is not None and len(args.presets) != 1:
        parser.error("--weights belongs to one preset: give exactly one --presets NAME")
    torch.set_num_threads(args.threads)
    args.calibration_paths = calibration_images(args.calibration, args.calibration_images)
    if args.agreement_images is not None:
        args.agreement_paths = list_images(args.agreement_images)[:50]
    else:
        used = set(args.calibration_paths)
        args.agreement_paths = [p for p in list_images(args.calibration) if p not in used][:16]
    image = read_image(args.image)
    probe = PeakProbe(args.threads)
    peak_before = probe.peak()
    rows = []
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for preset in args.presets:
            print(f"{preset} ...", flush=True)
            rows.append(bench_preset(preset, args, image, Path(folder), probe))
            # Each row as it comes, so that a long run that stops keeps what it measured.
            with (args.output / "rows.jsonl").open("a") as log:
                log.write(json.dumps(rows[-1]) + "\n")
    peak = max(peak_before, probe.peak())
    print(f"\nCPU {describe_cpu()}, {args.threads} threads, torch {torch.__version__}; fp32 peak {peak:.0f} GFLOP/s "
          f"({probe.name}, the fastest 2048^3 GEMM here, best of 8, before and after; each GEMM's best at the start, "
          f"GFLOP/s: {probe.describe()}); image {args.image.name} ({image.shape[1]}x{image.shape[0]}); medians of "
          f"{args.runs} runs after {args.warmup}; % of peak: median over runs of the network's rate against the "
          "peak GEMM's probed just before each run\n")
    print(format_table(rows))
    report = {"peak_gflops": peak, "peak_gemm": probe.name, "gemm_gflops": probe.candidates, "cpu": describe_cpu(),
              "threads": args.threads, "torch": torch.__version__, "rows": rows}
    (args.output / "deploy.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{args.output / 'deploy.json'}")


if __name__ == "__main__":
    main()
