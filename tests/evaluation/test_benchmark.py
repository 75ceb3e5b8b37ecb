"""The inference benchmark: every stage measured, consistent statistics, FLOPs and parameters, table and JSON.

A tiny 128 px model and two small random images keep it fast; no test depends on how fast anything is.
"""

import dataclasses
import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import yolact
from yolact.evaluation.benchmark import STAGES, BenchmarkReport, count_flops, median_seconds, run_benchmark

SIZE = 128


@pytest.fixture(scope="module")
def predictor() -> yolact.Predictor:
    torch.manual_seed(0)
    config = dataclasses.replace(yolact.get_config("yolact_resnet50"), max_size=SIZE)
    model = yolact.build_yolact(config)
    # A freshly initialised class layer gives no anchor a score above the 0.05 candidate threshold; scaled up it
    # does, so NMS, mask assembly and paste are measured on real detections.
    with torch.no_grad():
        model.head.conf_layer.weight.mul_(300)
    return yolact.Predictor.from_model(model, config, device="cpu", score_threshold=0.0)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # On a machine shared with other busy processes, torch's multi-threaded CPU kernels can be tens of times
    # slower than a single thread; one thread keeps these tests fast everywhere.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def report(predictor: yolact.Predictor, images: list[np.ndarray]) -> BenchmarkReport:
    return run_benchmark(predictor, images, runs=2, warmup=1, batch_size=2, progress=False)


def test_every_stage_is_measured_in_order(report: BenchmarkReport) -> None:
    assert list(report.stages) == list(STAGES)
    for name, timing in [*report.stages.items(), ("end-to-end", report.end_to_end), ("batch", report.batch)]:
        assert math.isfinite(timing.median_ms) and timing.median_ms >= 0, name
        assert timing.p25_ms <= timing.median_ms <= timing.p75_ms, name


def test_throughput_and_counts_follow_from_the_timings(report: BenchmarkReport) -> None:
    assert report.fps == pytest.approx(1000 / report.end_to_end.median_ms)
    assert report.batch_images_per_s == pytest.approx(2 * 1000 / report.batch.median_ms)
    assert report.stages_total_ms == pytest.approx(sum(t.median_ms for t in report.stages.values()))
    assert (report.runs, report.warmup, report.batch_size, report.num_images) == (2, 1, 2, 2)
    assert report.detections_per_image == 100  # the top-k
    assert not report.notes
    assert report.peak_memory_mib > 0 and "CPU" in report.peak_memory_kind


def test_device_and_model_are_described(report: BenchmarkReport, predictor: yolact.Predictor) -> None:
    assert report.device == "cpu (1 thread)" and report.threads == 1
    assert report.torch_version == torch.__version__
    assert report.config_name == "yolact_resnet50" and report.input_size == SIZE
    assert report.parameters == sum(p.numel() for p in predictor.model.parameters())


def test_flops_are_counted_and_scale_with_the_input_area(report: BenchmarkReport, predictor: yolact.Predictor
                                                         ) -> None:
    flops = count_flops(predictor.model, SIZE)
    assert report.gflops == pytest.approx(flops / 1e9) and report.gflops > 0
    # Convolutions dominate, and their cost grows with the number of pixels: twice the side, about 4x the FLOPs.
    assert count_flops(predictor.model, 2 * SIZE) / flops == pytest.approx(4, rel=0.2)


def test_table_names_every_stage_and_the_summary(report: BenchmarkReport) -> None:
    table = report.format_table()
    for name in STAGES:
        assert name in table
    for text in ("FPS", "images/s", "GFLOPs", "parameters", "peak memory", "p25–p75", "cpu"):
        assert text in table


def test_dict_is_json_serialisable(report: BenchmarkReport) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert list(data["stages"]) == list(STAGES)
    assert data["parameters"] == report.parameters
    assert sum(stage["share"] for stage in data["stages"].values()) == pytest.approx(1)


def test_bad_arguments_are_refused(predictor: yolact.Predictor, images: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="at least one image"):
        run_benchmark(predictor, [], progress=False)
    with pytest.raises(ValueError, match="runs >= 1"):
        run_benchmark(predictor, images, runs=0, progress=False)


def test_an_empty_workload_is_pointed_out(images: list[np.ndarray]) -> None:
    torch.manual_seed(0)
    config = dataclasses.replace(yolact.get_config("yolact_resnet50"), max_size=SIZE)
    plain = yolact.Predictor.from_model(yolact.build_yolact(config), config, device="cpu")  # random: no detections
    report = run_benchmark(plain, images, runs=1, warmup=0, batch_size=1, progress=False)
    assert report.detections_per_image == 0
    assert any("no detections" in note for note in report.notes)
    assert "note: no detections" in report.format_table()


def test_benchmark_job_on_a_checkpoint(make_official_checkpoint, tmp_path) -> None:
    import cv2

    from yolact.evaluation.job import BenchmarkJob, run_benchmark_job
    from yolact.inference.options import InferenceOptions

    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    out = tmp_path / "bench.json"
    report = run_benchmark_job(BenchmarkJob(make_official_checkpoint("yolact_resnet50"), None,
                                            InferenceOptions(device="cpu"), folder, runs=1, warmup=0, batch_size=2,
                                            json=out, progress=False))
    table = report.format_table()
    assert all(stage in table for stage in STAGES) and "GFLOPs" in table
    assert json.loads(out.read_text())["config_name"] == "yolact_resnet50"


def test_median_seconds_warms_up_then_times_each_run() -> None:
    calls = []
    seconds = median_seconds(lambda: calls.append(1), runs=5, warmup=2)
    assert len(calls) == 7 and 0 <= seconds < 0.1
