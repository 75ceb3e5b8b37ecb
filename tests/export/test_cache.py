"""The export cache behind ``--backend auto``: one entry per checkpoint content, built once under concurrency,
rebuilt when damaged."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import COCO128, SMALL_CLASSES

import yolact
from yolact.checkpoint import load_checkpoint, save_checkpoint
from yolact.export.cache import cache_root, cached_export, clear_cache, list_cache
from yolact.inference.network import choose_backend
from yolact.inference.options import InferenceOptions

pytest.importorskip("openvino", reason="pip install 'yolact[openvino]'")
IMAGE = COCO128 / "images" / "000000000009.jpg"
OPTIONS = InferenceOptions(device="cpu", score_threshold=0.0, top_k=10)


def _small(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    config = dataclasses.replace(yolact.get_config("yolact_resnet18"), max_size=96, num_classes=3)
    return save_checkpoint(path, yolact.build_yolact(config).state_dict(), config, SMALL_CLASSES, [1, 2, 3])


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("YOLACT_CACHE", str(root))
    return root


def test_auto_runs_openvino_from_one_export_and_gives_pytorchs_detections(cache: Path, tmp_path: Path,
                                                                          capfd: pytest.CaptureFixture[str]) -> None:
    weights = _small(tmp_path / "small.pth", 0)
    first = yolact.load(weights, options=OPTIONS)
    assert first.network.backend == "openvino" and "exported small.pth" in capfd.readouterr().err
    second = yolact.load(weights, options=OPTIONS)
    assert "exported" not in capfd.readouterr().err and len(list_cache(cache)) == 1
    plain = yolact.load(weights, options=dataclasses.replace(OPTIONS, backend="pytorch"))
    a, b, c = (p(IMAGE) for p in (first, second, plain))
    assert (a.boxes_xyxy == b.boxes_xyxy).all() and (a.scores == b.scores).all()
    assert (a.boxes_xyxy == c.boxes_xyxy).all() and abs(a.scores - c.scores).max() < 1e-5
    assert a.class_names == c.class_names


def test_two_processes_starting_at_once_build_one_entry(cache: Path, tmp_path: Path) -> None:
    weights = _small(tmp_path / "small.pth", 0)
    command = [sys.executable, "-m", "yolact", "predict", str(IMAGE), "--weights", str(weights), "--device", "cpu",
               "--quiet", "--score-threshold", "0"]
    runs = [subprocess.Popen([*command, "--json", str(tmp_path / f"{i}.json")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            for i in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    assert sum("exported small.pth" in err for _, err in outputs) == 1  # the other waited, then read it
    assert len(list_cache(cache)) == 1
    assert not [p for p in (cache / "openvino").iterdir() if p.name.startswith(".")]  # no staging folder left
    assert json.loads((tmp_path / "0.json").read_text()) == json.loads((tmp_path / "1.json").read_text())


def test_a_truncated_entry_is_rebuilt_with_a_one_line_notice(cache: Path, tmp_path: Path,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    weights = _small(tmp_path / "small.pth", 0)
    yolact.load(weights, options=OPTIONS)
    (entry,) = list_cache(cache)
    weights_file = Path(entry["folder"]) / "model.bin"
    # A cut copy put in its place (a write into the file itself would pull the pages from under the runtime
    # that maps it, in this process).
    cut = weights_file.with_name("cut.bin")
    cut.write_bytes(weights_file.read_bytes()[: weights_file.stat().st_size // 2])
    os.replace(cut, weights_file)
    capfd.readouterr()
    predictor = yolact.load(weights, options=OPTIONS)
    notices = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert "is damaged (model.bin has" in notices[0] and "exporting again" in notices[0]
    assert len(predictor(IMAGE)) == 10 and len(list_cache(cache)) == 1


def test_an_unreadable_record_is_rebuilt(cache: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    weights = _small(tmp_path / "small.pth", 0)
    yolact.load(weights, options=OPTIONS)
    (Path(list_cache(cache)[0]["folder"]) / "entry.json").write_text("{not json")
    capfd.readouterr()
    yolact.load(weights, options=OPTIONS)
    assert "record is missing or unreadable" in capfd.readouterr().err


def test_another_checkpoint_under_the_same_name_gets_its_own_entry(cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    scores = []
    for seed in (0, 1):
        _small(path, seed)
        scores.append(yolact.load(path, options=OPTIONS)(IMAGE).scores)
    assert len(list_cache(cache)) == 2 and not torch.equal(torch.as_tensor(scores[0]), torch.as_tensor(scores[1]))


def test_no_cache_leaves_the_cache_empty(cache: Path, tmp_path: Path) -> None:
    weights = _small(tmp_path / "small.pth", 0)
    predictor = yolact.load(weights, options=dataclasses.replace(OPTIONS, cache=False))
    assert predictor.network.backend == "openvino" and len(predictor(IMAGE)) == 10
    assert not cache.exists() or not list_cache(cache)


def test_clear_removes_every_entry(cache: Path, tmp_path: Path) -> None:
    for seed in (0, 1):
        yolact.load(_small(tmp_path / f"m{seed}.pth", seed), options=OPTIONS)
    count, size = clear_cache()
    assert count == 2 and size > 0 and list_cache() == [] and cache_root() == cache


def test_the_key_follows_content_and_config(tmp_path: Path) -> None:
    weights = _small(tmp_path / "small.pth", 0)
    config = load_checkpoint(weights).config.to_dict()
    built = []

    def build(output: Path) -> Path:
        built.append(output)
        output.write_bytes(b"onnx")
        return output

    first = cached_export(weights, config, "onnx", build, root=tmp_path / "c")
    again = cached_export(weights, config, "onnx", build, root=tmp_path / "c")
    other = cached_export(weights, {**config, "max_size": 128}, "onnx", build, root=tmp_path / "c")
    assert first.seconds is not None and again.seconds is None and first.path == again.path != other.path
    assert len(built) == 2


def test_auto_chooses_by_file_device_and_options(tmp_path: Path) -> None:
    weights = _small(tmp_path / "small.pth", 0)
    assert choose_backend(tmp_path / "m.onnx", OPTIONS) == "onnxruntime"
    assert choose_backend(tmp_path / "m.xml", OPTIONS) == "openvino"
    assert choose_backend(weights, OPTIONS) == "openvino"
    assert choose_backend(weights, dataclasses.replace(OPTIONS, compile=True)) == "pytorch"
    assert choose_backend(load_checkpoint(weights), OPTIONS) == "pytorch"  # a model in memory
    assert choose_backend(weights, dataclasses.replace(OPTIONS, backend="pytorch")) == "pytorch"
