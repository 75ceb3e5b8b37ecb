"""``yolact eval`` and ``yolact benchmark`` as library calls: outputs checked first, then the model loaded as the
options say, then the work (:func:`run_evaluation`, :func:`run_benchmark_job`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from yolact import distributed
from yolact.config import YolactConfig
from yolact.data.coco import CocoDataset, load_coco
from yolact.evaluation.benchmark import BenchmarkReport, load_benchmark_images, run_benchmark
from yolact.evaluation.distributed import evaluate_across_processes
from yolact.evaluation.errors import ERRORS_FILE, ErrorAnalysis
from yolact.evaluation.evaluator import EvalResult, evaluate_predictor
from yolact.inference.options import InferenceOptions
from yolact.inference.predictor import load
from yolact.inference.shards import Shard
from yolact.io import write_json
from yolact.outputs import OutputError, check_files_apart, check_output_dir, check_output_file

SUMMARY_FILE = "summary.json"
# COCO's own protocol: every detection counts (AP integrates over the scores), at most 100 per image.
EVAL_OPTIONS = InferenceOptions(score_threshold=0.0, top_k=100)


@dataclass(frozen=True)
class EvalJob:
    """Box and mask AP of ``weights`` on a COCO dataset (``annotations`` and its ``images``); ``json`` gets every
    detection as a COCO results list, ``metrics`` every figure; ``max_images`` limits it to the first N by id.
    ``errors``: a folder for the error analysis (:mod:`yolact.evaluation.errors`) of the detections scoring at
    least ``errors_min_score``."""

    weights: Path
    annotations: Path
    images: Path
    config: YolactConfig | str | None = None
    options: InferenceOptions = EVAL_OPTIONS
    json: Path | None = None
    metrics: Path | None = None
    max_images: int | None = None
    errors: Path | None = None
    errors_min_score: float = 0.3
    progress: bool = True


@dataclass
class EvalReport:
    """``result`` is None in the processes of a torchrun group other than rank 0, which report it."""

    result: EvalResult | None
    device: torch.device
    errors: ErrorAnalysis | None = None
    processes: int = 1
    backend: str = "pytorch"


def run_evaluation(job: EvalJob) -> EvalReport:
    """Evaluate as ``job`` says; the detections are saved as each image finishes, the metrics at the end."""
    inputs = [job.annotations, job.images, job.weights]
    for flag, path in (("--json", job.json), ("--save-metrics", job.metrics)):
        if path is not None:
            check_output_file(path, flag, inputs)
    if job.json is not None and job.metrics is not None and job.json.resolve() == job.metrics.resolve():
        raise OutputError("--json and --save-metrics name the same file; give two different files")
    if job.errors is not None and Shard.from_environment() is not None:  # more than one process
        raise OutputError("--errors runs in one process; run that evaluation without torchrun")
    dataset = load_coco(job.annotations, job.images)
    if job.errors is not None:
        names = [Path(dataset.coco.imgs[i]["file_name"]).name for i in dataset.image_ids[: job.max_images]]
        planned = [*names, ERRORS_FILE, SUMMARY_FILE]
        check_output_dir(job.errors, "--errors", inputs, planned_names=planned)
        check_files_apart([("--json", job.json), ("--save-metrics", job.metrics)], [("--errors", job.errors, planned)])
    if distributed.launched_by_torchrun() and job.errors is None:
        return _run_across_processes(job, dataset)
    predictor = load(job.weights, job.config, job.options)
    analysis = on_image = None
    if job.errors is not None:
        categories = {c["id"]: c["name"] for c in dataset.coco.dataset["categories"]}
        analysis = ErrorAnalysis(job.errors, categories, job.errors_min_score)

        def on_image(image_id: int, image: np.ndarray, path: Path, records: list[dict]) -> None:
            annotations = dataset.coco.loadAnns(dataset.coco.getAnnIds(imgIds=[image_id]))
            analysis.add(image_id, image, path, records, annotations)

    try:
        result = evaluate_predictor(predictor, dataset, job.json, progress=job.progress, limit=job.max_images,
                                    on_image=on_image)
    finally:
        if analysis is not None:
            analysis.close()
    if analysis is not None:
        write_json(job.errors / SUMMARY_FILE, analysis.summary(), indent=2)
    if job.metrics is not None:
        write_json(job.metrics, result.to_dict(), indent=2)
    return EvalReport(result, predictor.device, analysis, backend=predictor.network.backend)


def _run_across_processes(job: EvalJob, dataset: CocoDataset) -> EvalReport:
    distributed.init(job.options.device)
    try:
        predictor = load(job.weights, job.config, job.options)
        result = evaluate_across_processes(predictor, dataset, job.json, job.progress, job.max_images)
        if result is not None and job.metrics is not None:
            write_json(job.metrics, result.to_dict(), indent=2)
        return EvalReport(result, predictor.device, processes=distributed.world_size(),
                          backend=predictor.network.backend)
    finally:
        distributed.cleanup()


@dataclass(frozen=True)
class BenchmarkJob:
    """Latency and throughput of ``weights`` on ``images`` (default: the bundled samples); ``json`` gets the
    report; ``threads`` sets torch's CPU threads first."""

    weights: Path
    config: YolactConfig | str | None = None
    options: InferenceOptions = field(default_factory=InferenceOptions)
    images: Path | None = None
    runs: int = 20
    warmup: int = 3
    batch_size: int = 4
    threads: int | None = None
    json: Path | None = None
    progress: bool = True


def run_benchmark_job(job: BenchmarkJob) -> BenchmarkReport:
    if job.json is not None:
        check_output_file(job.json, "--json", [job.weights, *([job.images] if job.images else [])])
    if job.threads:
        torch.set_num_threads(job.threads)
    images = load_benchmark_images(job.images)  # a bad folder is one line before the model loads (or exports)
    predictor = load(job.weights, job.config, job.options)
    report = run_benchmark(predictor, images, runs=job.runs, warmup=job.warmup,
                           batch_size=job.batch_size, progress=job.progress)
    if job.json is not None:
        write_json(job.json, report.to_dict(), indent=2)
    return report
