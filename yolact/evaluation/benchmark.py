"""Inference benchmark: per-stage latency, end-to-end throughput, peak memory, FLOPs and parameters.

:func:`run_benchmark` times the predictor's pipeline one stage at a time by calling the same library pieces that
:meth:`Predictor.predict_arrays` calls, in the same order:

    preprocess     image_to_tensor + normalize_image
    backbone+FPN   Yolact.extract_pyramid
    heads          Yolact.predict_from_pyramid (protonet + prediction head)
    NMS            Postprocessor.detect (box decoding, candidates, NMS)
    mask assembly  Postprocessor.select (score threshold, top-k), then Detections.soft_masks (sigmoid(P·Cᵀ), crop)
    re-scoring     Postprocessor.rescore: YOLACT++'s mask-IoU network on the soft masks (nothing for YOLACT)
    paste          Postprocessor.paste: masks to the image size, boxes scaled to it

An exported network (ONNX Runtime, OpenVINO; what ``--backend auto`` runs on a CPU) runs backbone, FPN and
heads in one call: their time is reported under backbone+FPN, heads 0, and a note says so.

Each stage is reported as the median and the interquartile range (p25–p75) over the runs, in milliseconds.
On CUDA the device is synchronised before every clock read, so a stage's time is its own GPU work and not
whatever was queued before it.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from yolact.data.images import as_bgr_uint8, list_images, read_image
from yolact.data.samples import sample_images
from yolact.inference.predictor import Predictor
from yolact.modeling import build_yolact

STAGES = ("preprocess", "backbone+FPN", "heads", "NMS", "mask assembly", "re-scoring", "paste")


@dataclass
class Timing:
    """Median and interquartile range (p25, p75) of a set of measurements, in milliseconds."""

    median_ms: float
    p25_ms: float
    p75_ms: float

    @classmethod
    def from_seconds(cls, seconds: Sequence[float]) -> Timing:
        ms = np.asarray(seconds, dtype=np.float64) * 1000
        p25, median, p75 = np.percentile(ms, [25, 50, 75])
        return cls(float(median), float(p25), float(p75))


@dataclass
class BenchmarkReport:
    """What :func:`run_benchmark` measured. Times in milliseconds; spread is the interquartile range p25–p75."""

    config_name: str
    input_size: int
    device: str  # e.g. "cpu (2 threads)" or "cuda:0 (NVIDIA H100 80GB HBM3)"
    threads: int  # torch.get_num_threads()
    torch_version: str
    runs: int
    warmup: int
    num_images: int
    score_threshold: float
    top_k: int
    stages: dict[str, Timing]  # in STAGES order, one image per run
    end_to_end: Timing  # predict_arrays on one image
    batch_size: int
    batch: Timing  # predict_arrays on batch_size images (per call)
    detections_per_image: float  # mean over the stage runs; mask assembly and paste scale with it
    gflops: float  # network forward at batch 1, torch's FlopCounterMode (a multiply-add counts as 2 FLOPs)
    parameters: int
    peak_memory_mib: float | None  # None where the platform cannot tell (no getrusage)
    peak_memory_kind: str  # which peak: CUDA allocator or process RSS
    notes: list[str] = field(default_factory=list)

    @property
    def stages_total_ms(self) -> float:
        return sum(t.median_ms for t in self.stages.values())

    @property
    def fps(self) -> float:
        """End-to-end images per second at batch 1 (from the median)."""
        return 1000 / self.end_to_end.median_ms if self.end_to_end.median_ms > 0 else float("inf")

    @property
    def batch_images_per_s(self) -> float:
        return self.batch_size * 1000 / self.batch.median_ms if self.batch.median_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins, ready for ``json.dump``; derived figures (FPS, shares) included."""
        data = asdict(self)
        data["stages"] = {name: {**asdict(t), "share": self._share(t)} for name, t in self.stages.items()}
        data["stages_total_ms"] = self.stages_total_ms
        data["fps"] = self.fps
        data["batch_images_per_s"] = self.batch_images_per_s
        data["spread"] = "interquartile range (p25-p75)"
        return data

    def _share(self, timing: Timing) -> float:
        total = self.stages_total_ms
        return timing.median_ms / total if total > 0 else 0.0

    def format_table(self) -> str:
        """A fixed-width table of the stages, then the summary lines."""
        rule = "-" * 62
        lines = [
            f"YOLACT benchmark: {self.config_name}, input {self.input_size}x{self.input_size}, "
            f"{self.runs} runs after {self.warmup} warm-up, {self.num_images} image(s) cycled",
            f"device: {self.device}, torch {self.torch_version}",
            "",
            f"{'stage (batch 1)':<22}{'median ms':>12}{'p25–p75 ms':>18}{'share':>10}",
            rule,
        ]
        for name, timing in self.stages.items():
            lines.append(f"{name:<22}{timing.median_ms:>12.2f}{_range(timing):>18}{self._share(timing):>10.1%}")
        lines += [
            rule,
            f"{'sum of stages':<22}{self.stages_total_ms:>12.2f}",
            f"{'end-to-end, batch 1':<22}{self.end_to_end.median_ms:>12.2f}{_range(self.end_to_end):>18}"
            f"   {self.fps:.2f} FPS",
            f"{f'end-to-end, batch {self.batch_size}':<22}{self.batch.median_ms:>12.2f}{_range(self.batch):>18}"
            f"   {self.batch_images_per_s:.2f} images/s",
            "",
            f"detections/image: {self.detections_per_image:.1f} (score > {self.score_threshold:g}, top {self.top_k})",
            f"model: {self.gflops:.2f} GFLOPs per {self.input_size}x{self.input_size} image "
            "(torch FlopCounterMode; a multiply-add counts as 2 FLOPs), "
            f"{self.parameters:,} parameters ({self.parameters / 1e6:.2f} M)",
            f"peak memory: {_mib(self.peak_memory_mib)} ({self.peak_memory_kind})",
            f"times: median and interquartile range (p25–p75) over {self.runs} runs, which includes the differences "
            "between the cycled images;",
            f"  the batch-{self.batch_size} row is one call on {self.batch_size} images; end-to-end rows also copy "
            "the results to the host",
        ]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _range(timing: Timing) -> str:
    return f"{timing.p25_ms:.2f}–{timing.p75_ms:.2f}"


def _mib(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f} MiB"


def _sync(device: torch.device) -> None:
    # CUDA kernels run asynchronously: without this a clock read measures launch time, not work.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clock(device: torch.device) -> float:
    _sync(device)
    return time.perf_counter()


def median_seconds(call: Callable[[], object], runs: int, warmup: int,
                   device: torch.device | str = "cpu") -> float:
    """Median wall time of ``call()`` over ``runs`` timed calls after ``warmup`` untimed ones (CUDA synchronised
    around each timed call)."""
    device = torch.device(device)
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(runs):
        start = _clock(device)
        call()
        seconds.append(_clock(device) - start)
    return float(np.median(seconds))


def count_flops(model: torch.nn.Module, input_size: int, device: torch.device | str = "cpu") -> int:
    """FLOPs of one network forward at batch 1 on an ``input_size`` square input, by torch's FlopCounterMode."""
    # Values do not change the count of a conv network, so zeros will do.
    images = torch.zeros(1, 3, input_size, input_size, device=device)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(images)
    return counter.get_total_flops()


def calibrate_class_layer(model: torch.nn.Module, batch: torch.Tensor, target_std: float = 3.0) -> None:
    """Rescale a randomly initialised model's class layer so that its class logits on ``batch`` have standard
    deviation ``target_std``: scores then clear the thresholds and NMS, mask assembly and paste get a full
    workload, as with trained weights. One scale hits the target exactly (the logits are linear in the layer)."""
    with torch.inference_mode():
        std = model(batch).class_logits.std().item()
        model.head.conf_layer.weight.mul_(target_std / std)
        model.head.conf_layer.bias.mul_(target_std / std)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe_device(device: torch.device) -> str:
    """``"cpu (2 threads)"`` or ``"cuda:0 (<GPU name>)"``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    threads = torch.get_num_threads()
    return f"{device.type} ({threads} thread{'s' if threads != 1 else ''})"


def describe_cpu() -> str:
    """The CPU's model name and whether it has AMX (oneDNN's fastest path on Intel): speed and rounding differ
    between CPUs, so every figure says which one it comes from."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine())
    return f"{name}, {'with' if ' amx_tile' in info else 'without'} AMX"


def load_benchmark_images(folder: str | Path | None = None) -> list[np.ndarray]:
    """The images in ``folder`` as BGR uint8 arrays, or the bundled sample images when ``folder`` is None."""
    paths = sample_images() if folder is None else list_images(folder)
    if not paths:
        raise ValueError(f"no images found in {folder or 'the bundled samples'}")
    return [read_image(path) for path in paths]


def _process_peak_rss_mib() -> float | None:
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _time_stages(predictor: Predictor, image: np.ndarray) -> tuple[list[float], int]:
    """One image through the pipeline stage by stage -> (seconds per stage in STAGES order, final detections)."""
    module, device, post = predictor.network.module, predictor.device, predictor.postprocessor
    height, width = image.shape[:2]
    marks = [_clock(device)]
    batch = predictor.prepare([image])
    marks.append(_clock(device))
    if module is None:  # exported: one call for backbone, FPN and heads
        output = predictor.network.run(batch)
        marks += [_clock(device)] * 2
    else:
        pyramid = module.extract_pyramid(batch)
        marks.append(_clock(device))
        output = module.predict_from_pyramid(pyramid)
        marks.append(_clock(device))
    detections = post.detect(output)[0]
    marks.append(_clock(device))
    kept = post.select(detections)
    soft_masks = kept.soft_masks()
    marks.append(_clock(device))
    ranked = post.rescore(kept, soft_masks)
    marks.append(_clock(device))
    post.paste(ranked, width, height)
    marks.append(_clock(device))
    return [b - a for a, b in pairwise(marks)], int(ranked.scores.shape[0])


def _time_call(predictor: Predictor, images: list[np.ndarray]) -> float:
    start = _clock(predictor.device)
    predictor.predict_arrays(images)
    return _clock(predictor.device) - start


def run_benchmark(
    predictor: Predictor,
    images: Sequence[np.ndarray],
    runs: int = 20,
    warmup: int = 3,
    batch_size: int = 4,
    progress: bool = True,
) -> BenchmarkReport:
    """Benchmark ``predictor`` on ``images`` (BGR uint8, cycled through): per-stage and end-to-end latency at
    batch 1, throughput at ``batch_size``, peak memory, GFLOPs and parameters.

    Each of the three measurements (stages, batch 1, batch ``batch_size``) gets ``warmup`` untimed runs first, so
    lazy initialisation, allocator growth and cuDNN autotuning are not timed.
    """
    if runs < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(f"need runs >= 1, warmup >= 0 and batch_size >= 1; got {runs}, {warmup}, {batch_size}")
    if not images:
        raise ValueError("run_benchmark needs at least one image")
    images = [as_bgr_uint8(image, name=f"image {i}") for i, image in enumerate(images)]
    device, cfg = predictor.device, predictor.config
    batch_images = [images[i % len(images)] for i in range(batch_size)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    stage_seconds: list[list[float]] = []
    detections: list[int] = []
    single_seconds: list[float] = []
    batch_seconds: list[float] = []
    with torch.inference_mode(), tqdm(total=3 * (warmup + runs), desc="benchmark", disable=not progress) as bar:
        bar.set_postfix_str("stages")
        for i in range(warmup + runs):
            seconds, count = _time_stages(predictor, images[i % len(images)])
            if i >= warmup:
                stage_seconds.append(seconds)
                detections.append(count)
            bar.update()
        bar.set_postfix_str("batch 1")
        for i in range(warmup + runs):
            seconds = _time_call(predictor, [images[i % len(images)]])
            if i >= warmup:
                single_seconds.append(seconds)
            bar.update()
        bar.set_postfix_str(f"batch {batch_size}")
        for i in range(warmup + runs):
            seconds = _time_call(predictor, batch_images)
            if i >= warmup:
                batch_seconds.append(seconds)
            bar.update()

    # Peak memory first: the FLOP count below is a forward of its own.
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
        peak_kind = "CUDA: torch.cuda.max_memory_allocated during the benchmark"
    else:
        peak_mib = _process_peak_rss_mib()
        peak_kind = "CPU: peak resident set size of the whole process so far, getrusage ru_maxrss"
    # FLOPs and parameters do not depend on the weights: an exported network's are those of its config's model.
    model = predictor.model if predictor.model is not None else build_yolact(cfg).eval()
    flops = count_flops(model, cfg.max_size, device if predictor.model is not None else "cpu")
    notes = []
    if predictor.model is None:
        notes.append(f"exported network ({predictor.network.backend}): backbone+FPN holds backbone, FPN and heads")
    if not any(detections):
        notes.append("no detections: NMS, mask assembly and paste timed an empty workload (random weights?)")

    per_stage = np.asarray(stage_seconds)  # [runs, stages]
    return BenchmarkReport(
        config_name=cfg.name,
        input_size=cfg.max_size,
        device=describe_device(device),
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        runs=runs,
        warmup=warmup,
        num_images=len(images),
        score_threshold=predictor.options.score_threshold,
        top_k=predictor.options.top_k,
        stages={name: Timing.from_seconds(per_stage[:, j]) for j, name in enumerate(STAGES)},
        end_to_end=Timing.from_seconds(single_seconds),
        batch_size=batch_size,
        batch=Timing.from_seconds(batch_seconds),
        detections_per_image=float(np.mean(detections)),
        gflops=flops / 1e9,
        parameters=count_parameters(model),
        peak_memory_mib=peak_mib,
        peak_memory_kind=peak_kind,
        notes=notes,
    )
