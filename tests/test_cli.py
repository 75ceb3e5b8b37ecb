"""The ``yolact`` command, run in-process through ``yolact.cli.main`` (plus one real subprocess for the entry
point): predict on files and folders, bad inputs reported in one line, and export between formats."""

import ast
import contextlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import COCO128, SPEC

from yolact.cli import main

IMAGE_9 = COCO128 / "images" / "000000000009.jpg"  # 480 x 640
IMAGE_25 = COCO128 / "images" / "000000000025.jpg"  # 426 x 640
SIZES = {9: [480, 640], 25: [426, 640]}
TOP_K = 10  # fewer full-resolution masks to paste and encode: faster


class NotATensor:
    """Pickled into a checkpoint, it must be refused (weights_only loading), not executed."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def read_key_list(config: str) -> list[tuple[str, tuple[int, ...]]]:
    keys = []
    for line in (SPEC / "keys" / f"{config}.txt").read_text().splitlines():
        if line.strip():
            name, shape = line.split(" ", 1)
            keys.append((name, tuple(ast.literal_eval(shape))))
    return keys


def run_captured(args: list[str]) -> tuple[int, str, str]:
    """main(args) with stdout and stderr captured (for module-scoped fixtures, where capsys is unavailable)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error" in lines[0]
    for needle in needles:
        assert needle in lines[0]


def detections_of(records: list[dict], image_id: int) -> list[dict]:
    return [r for r in records if r["image_id"] == image_id]


@pytest.fixture(scope="module")
def checkpoint(make_official_checkpoint: Callable[..., Path]) -> Path:
    return make_official_checkpoint("yolact_resnet50")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def good_folder(workdir: Path) -> Path:
    folder = workdir / "good"
    folder.mkdir()
    shutil.copy(IMAGE_9, folder)
    shutil.copy(IMAGE_25, folder)
    return folder


@pytest.fixture(scope="module")
def folder_run(checkpoint: Path, workdir: Path) -> dict:
    """predict on a folder holding two good images, a corrupt one and an empty one."""
    source = workdir / "mixed"
    source.mkdir()
    shutil.copy(IMAGE_9, source)
    shutil.copy(IMAGE_25, source)
    (source / "broken.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (source / "empty.png").write_bytes(b"")
    output, json_path = workdir / "overlays", workdir / "mixed.json"
    code, out, err = run_captured(["predict", str(source), "--weights", str(checkpoint), "--device", "cpu",
                                   "--top-k", str(TOP_K), "--json", str(json_path), "--output", str(output)])
    records = json.loads(json_path.read_text()) if json_path.exists() else None
    bad = ["broken.jpg", "empty.png"]
    return {"code": code, "out": out, "err": err, "records": records, "output": output, "bad": bad}


@pytest.fixture(scope="module")
def single_run(checkpoint: Path, workdir: Path) -> list[dict]:
    """The JSON of predict on image 9 with the default options but --top-k TOP_K."""
    json_path = workdir / "single.json"
    code = run_captured(["predict", str(IMAGE_9), "--weights", str(checkpoint), "--device", "cpu", "--quiet",
                         "--top-k", str(TOP_K), "--json", str(json_path)])[0]
    assert code == 0
    records = json.loads(json_path.read_text())
    assert len(records) == TOP_K
    return records


def predict_json(capsys: pytest.CaptureFixture[str], source: Path, weights: Path, json_path: Path,
                 *extra: str) -> list[dict]:
    code, _, err = run(capsys, ["predict", str(source), "--weights", str(weights), "--device", "cpu", "--quiet",
                                "--json", str(json_path), *extra])
    assert code == 0, err
    return json.loads(json_path.read_text())


def test_help_through_the_module_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "yolact.cli", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "usage: yolact" in proc.stdout
    assert "predict" in proc.stdout and "export" in proc.stdout


def test_predict_folder_exit_code_and_json(folder_run: dict) -> None:
    assert folder_run["code"] == 0, folder_run["err"]
    assert "Traceback" not in folder_run["out"] + folder_run["err"]
    records = folder_run["records"]
    assert records is not None
    assert {r["image_id"] for r in records} == {9, 25}  # the number in each file name; nothing for bad files
    for image_id in (9, 25):
        assert 0 < len(detections_of(records, image_id)) <= TOP_K
    for record in records:
        assert {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(record)
        assert record["segmentation"]["size"] == SIZES[record["image_id"]]  # ids belong to the right image
        assert isinstance(record["segmentation"]["counts"], str)
        assert len(record["bbox"]) == 4 and all(isinstance(v, int) for v in record["bbox"])
        assert record["score"] > 0.15


def test_predict_folder_reports_each_skipped_file_in_one_line(folder_run: dict) -> None:
    lines = (folder_run["out"] + "\n" + folder_run["err"]).splitlines()
    for name in folder_run["bad"]:
        naming = [line for line in lines if name in line and "skipped" in line]
        assert len(naming) == 1, lines
    for good in (IMAGE_9.name, IMAGE_25.name):
        assert not any(good in line and "skipped" in line for line in lines)


def test_predict_folder_writes_overlays_for_good_images_only(folder_run: dict) -> None:
    output: Path = folder_run["output"]
    assert sorted(p.name for p in output.iterdir()) == [IMAGE_9.name, IMAGE_25.name]
    for original in (IMAGE_9, IMAGE_25):
        overlay = cv2.imread(str(output / original.name))
        source = cv2.imread(str(original))
        assert overlay is not None and overlay.shape == source.shape
        assert np.abs(overlay.astype(int) - source.astype(int)).mean() > 1  # something was drawn


def test_predict_missing_source(capsys: pytest.CaptureFixture[str], checkpoint: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    code, _, err = run(capsys, ["predict", str(missing), "--weights", str(checkpoint), "--device", "cpu"])
    assert_one_line_error(code, err, str(missing))


def _missing(path: Path, checkpoint: Path) -> None:
    pass


def _truncated(path: Path, checkpoint: Path) -> None:
    data = checkpoint.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path: Path, checkpoint: Path) -> None:
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 100_000, dtype=np.uint8).tobytes())


def _pickled_object(path: Path, checkpoint: Path) -> None:
    torch.save({"model": NotATensor(), "note": "not weights"}, path)


@pytest.mark.parametrize("make_bad", [_missing, _truncated, _random_bytes, _pickled_object],
                         ids=["missing", "truncated", "random-bytes", "pickled-object"])
def test_predict_bad_weights(capsys: pytest.CaptureFixture[str], checkpoint: Path, tmp_path: Path,
                             make_bad: Callable[[Path, Path], None]) -> None:
    weights = tmp_path / "yolact_resnet50_1_1000.pth"
    make_bad(weights, checkpoint)
    code, _, err = run(capsys, ["predict", str(IMAGE_9), "--weights", str(weights), "--device", "cpu"])
    assert_one_line_error(code, err, str(weights))


def test_predict_wrong_config_names_backbone_and_fix(capsys: pytest.CaptureFixture[str], checkpoint: Path) -> None:
    code, _, err = run(capsys, ["predict", str(IMAGE_9), "--weights", str(checkpoint), "--config", "yolact_base",
                                "--device", "cpu"])
    assert_one_line_error(code, err, str(checkpoint), "ResNet-50", "--config yolact_resnet50")


def test_predict_ambiguous_unnamed_checkpoint_asks_for_config(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                              make_official_checkpoint: Callable[..., Path]) -> None:
    weights = tmp_path / "weights.pth"
    shutil.copy(make_official_checkpoint("yolact_base"), weights)  # base, im400 and im700 share their keys
    code, _, err = run(capsys, ["predict", str(IMAGE_9), "--weights", str(weights), "--device", "cpu"])
    assert_one_line_error(code, err, str(weights), "--config")


def test_predict_unnamed_checkpoint_with_unique_preset(capsys: pytest.CaptureFixture[str], checkpoint: Path,
                                                       single_run: list[dict], tmp_path: Path) -> None:
    weights = tmp_path / "weights.pth"
    shutil.copy(checkpoint, weights)
    records = predict_json(capsys, IMAGE_9, weights, tmp_path / "d.json", "--top-k", str(TOP_K))
    assert records == single_run


def test_predict_top_k(capsys: pytest.CaptureFixture[str], checkpoint: Path, good_folder: Path,
                       folder_run: dict, tmp_path: Path) -> None:
    records = predict_json(capsys, good_folder, checkpoint, tmp_path / "d.json", "--top-k", "3")
    for image_id in (9, 25):
        mine = detections_of(records, image_id)
        assert 0 < len(mine) <= 3
        # the best three of the --top-k TOP_K run
        best = sorted(detections_of(folder_run["records"], image_id), key=lambda r: -r["score"])[:3]
        assert sorted(mine, key=lambda r: -r["score"]) == best


def test_predict_score_threshold(capsys: pytest.CaptureFixture[str], checkpoint: Path, folder_run: dict,
                                 tmp_path: Path) -> None:
    records = predict_json(capsys, IMAGE_25, checkpoint, tmp_path / "d.json", "--score-threshold", "0.9")
    assert len(records) > 0
    assert all(r["score"] > 0.9 for r in records)
    # compared with the default threshold's best TOP_K on this image: those above 0.9 stay, the others go
    default = detections_of(folder_run["records"], 25)
    assert any(r["score"] <= 0.9 for r in default)
    for record in default:
        assert (record in records) == (record["score"] > 0.9)


def test_export_ours_then_predict_gives_identical_json(capsys: pytest.CaptureFixture[str], checkpoint: Path,
                                                       single_run: list[dict], workdir: Path) -> None:
    ours = workdir / "ours.pth"
    code, _, err = run(capsys, ["export", "--weights", str(checkpoint), "--format", "yolact", "--output", str(ours)])
    assert code == 0, err
    assert isinstance(torch.load(ours, map_location="cpu", weights_only=True), dict)
    records = predict_json(capsys, IMAGE_9, ours, workdir / "ours.json", "--top-k", str(TOP_K))
    assert records == single_run


def test_export_official_layout(capsys: pytest.CaptureFixture[str], checkpoint: Path, workdir: Path) -> None:
    ours = workdir / "ours_for_official.pth"
    flat = workdir / "flat.pth"
    assert run(capsys, ["export", "--weights", str(checkpoint), "--format", "yolact", "--output", str(ours)])[0] == 0
    code, _, err = run(capsys, ["export", "--weights", str(ours), "--format", "official", "--output", str(flat)])
    assert code == 0, err
    state = torch.load(flat, map_location="cpu", weights_only=True)
    expected = read_key_list("yolact_resnet50")
    assert [(k, tuple(v.shape)) for k, v in state.items()] == expected
    original = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for key, value in state.items():
        assert torch.equal(value, original[key]), key


def test_export_random_init(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "r.pth"
    code, _, err = run(capsys, ["export", "--random-init", "--config", "yolact_resnet50", "--output", str(out)])
    assert code == 0, err
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert [(k, tuple(v.shape)) for k, v in state.items()] == read_key_list("yolact_resnet50")


def test_export_random_init_needs_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "r.pth"
    code, _, err = run(capsys, ["export", "--random-init", "--output", str(out)])
    assert_one_line_error(code, err, "--config")
    assert not out.exists()
