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
from yolact.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES

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
    # The same records under the ids the images get alone (the numbers in their names), to compare with runs on
    # the good images only.
    by_name = None if records is None else [{**r, "image_id": {1: 9, 2: 25}[r["image_id"]]} for r in records]
    return {"code": code, "out": out, "err": err, "records": records, "by_name": by_name, "output": output,
            "bad": bad}


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


@pytest.mark.parametrize("module", ["yolact", "yolact.cli"])
def test_help_through_the_module_entry_point(module: str) -> None:
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "usage: yolact" in proc.stdout
    assert "predict" in proc.stdout and "export" in proc.stdout


def test_help_imports_no_torch() -> None:
    # `yolact --help` parses and prints without the heavy imports, so that it answers at once.
    code = ("import sys\nfrom yolact.cli import main\n"
            "for command in ([], ['predict'], ['train'], ['eval'], ['export'], ['benchmark'], ['serve'], ['view']):\n"
            "    assert main([*command, '--help']) == 0\n"
            "heavy = sorted(m for m in ('torch', 'torchvision', 'cv2', 'numpy', 'pycocotools') if m in sys.modules)\n"
            "print('heavy:', heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "heavy: []"


def test_only_the_cli_knows_the_cli() -> None:
    # The library never parses arguments: no module of it imports yolact.cli, and only this file drives main.
    package = Path(__file__).resolve().parents[1] / "yolact"
    importers = [p.name for p in package.rglob("*.py") if p.name not in ("cli.py", "__main__.py")
                 and "yolact.cli" in p.read_text()]
    assert importers == []
    drivers = [str(p.relative_to(Path(__file__).parent)) for p in Path(__file__).parent.rglob("*.py")
               if p.name != "test_cli.py" and "from yolact.cli import main" in p.read_text()]
    assert drivers == []


def test_predict_folder_exit_code_and_json(folder_run: dict) -> None:
    assert folder_run["code"] == 0, folder_run["err"]
    assert "Traceback" not in folder_run["out"] + folder_run["err"]
    records = folder_run["records"]
    assert records is not None
    # broken.jpg's name has no number, so every image is numbered by its position in name order (nothing is
    # written for the bad files), and the summary says so.
    assert {r["image_id"] for r in records} == {1, 2}
    assert "image ids by position in name order" in folder_run["out"]
    for image_id in (1, 2):
        assert 0 < len(detections_of(records, image_id)) <= TOP_K
    sizes = {1: SIZES[9], 2: SIZES[25]}
    for record in records:
        assert {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(record)
        assert record["segmentation"]["size"] == sizes[record["image_id"]]  # ids belong to the right image
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
        best = sorted(detections_of(folder_run["by_name"], image_id), key=lambda r: -r["score"])[:3]
        assert sorted(mine, key=lambda r: -r["score"]) == best


def test_predict_score_threshold(capsys: pytest.CaptureFixture[str], checkpoint: Path, folder_run: dict,
                                 tmp_path: Path) -> None:
    records = predict_json(capsys, IMAGE_25, checkpoint, tmp_path / "d.json", "--score-threshold", "0.9")
    assert len(records) > 0
    assert all(r["score"] > 0.9 for r in records)
    # compared with the default threshold's best TOP_K on this image: those above 0.9 stay, the others go
    default = detections_of(folder_run["by_name"], 25)
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


# ------------------------------------------------------------------------------------------------- bad input table
# Every case: exit 2, exactly one line on stderr (file descriptors included: OpenCV writes there itself), no
# traceback, and the inputs' bytes unchanged. Paths are relative to a fresh folder holding: imgs/ (two small
# photos), photo.jpg, link.json -> imgs/a.jpg, adir/, afile, ann.json, labels/a.txt, and the weights as w.pth.
BAD_INPUT_CASES = [
    # outputs that would overwrite inputs
    (["predict", "imgs", "--output", "imgs"], "input folder"),
    (["predict", "imgs", "--output", "imgs/sub"], "input folder"),
    (["predict", "photo.jpg", "--output", "."], "would overwrite the input"),
    (["predict", "imgs", "--json", "imgs/a.jpg"], "input"),
    (["predict", "imgs", "--json", "link.json"], "is an input"),
    (["predict", "imgs", "--json", "w.pth"], "is an input"),
    (["predict", "clip.mp4", "--output", "clip.mp4"], "is an input"),
    (["eval", "--ann", "ann.json", "--images", "imgs", "--json", "ann.json"], "is an input"),
    (["eval", "--ann", "ann.json", "--images", "imgs", "--save-metrics", "imgs/b.png"], "input folder"),
    (["export", "--format", "yolact", "--output", "w.pth"], "is an input"),
    (["convert", "--images", "imgs", "--labels", "labels", "--output", "labels/a.txt"], "input folder"),
    (["train", "--train-ann", "ann.json", "--train-images", "imgs", "--output", "imgs/run", "--iterations", "1"],
     "input folder"),
    (["train", "--train-ann", "ann.json", "--train-images", "imgs", "--weights", "last.pth", "--output", "."],
     "would overwrite the input"),
    # outputs of the wrong kind or in places that cannot be created
    (["predict", "imgs", "--json", "adir"], "is a folder"),
    (["predict", "imgs", "--json", "afile/x.json"], "is a file, not a folder"),
    (["predict", "imgs", "--output", "afile"], "is a file, not a folder"),
    (["predict", "imgs", "--output", "afile/sub"], "is a file, not a folder"),
    (["eval", "--ann", "ann.json", "--images", "imgs", "--save-metrics", "adir"], "is a folder"),
    (["eval", "--ann", "ann.json", "--images", "imgs", "--json", "m.json", "--save-metrics", "m.json"],
     "same file"),
    (["export", "--format", "yolact", "--output", "adir"], "is a folder"),
    (["export", "--format", "official", "--output", "afile/x.pth"], "is a file, not a folder"),
    (["train", "--train-ann", "ann.json", "--train-images", "imgs", "--output", "afile", "--iterations", "1"],
     "is a file, not a folder"),
    (["synthetic", "--output", "afile"], "is a file, not a folder"),
    (["benchmark", "--json", "adir"], "is a folder"),
    # flags out of range, checked as they are parsed
    (["predict", "imgs", "--device", "gpu"], "not a device"),
    (["eval", "--ann", "ann.json", "--images", "imgs", "--device", "cuda:x"], "not a device"),
    (["predict", "imgs", "--score-threshold", "2"], "between 0 and 1"),
    (["predict", "imgs", "--score-threshold", "-1"], "between 0 and 1"),
    (["predict", "imgs", "--score-threshold", "nan"], "not a finite number"),
    (["predict", "imgs", "--top-k", "0"], "at least 1"),
    (["predict", "imgs", "--batch", "-3"], "at least 1"),
    (["eval", "--ann", "ann.json", "--images", "imgs", "--top-k", "x"], "not an integer"),
    (["train", "--train-ann", "ann.json", "--train-images", "imgs", "--batch-size", "0"], "at least 1"),
    (["train", "--train-ann", "ann.json", "--train-images", "imgs", "--batch-size", "-2"], "at least 1"),
    (["train", "--train-ann", "ann.json", "--train-images", "imgs", "--iterations", "0"], "at least 1"),
    (["train", "--train-ann", "ann.json", "--train-images", "imgs", "--lr=-1e-3"], "at least"),
    (["train", "--train-ann", "ann.json", "--train-images", "imgs", "--workers", "-1"], "at least 0"),
    (["train", "--train-ann", "ann.json", "--train-images", "imgs", "--epochs", "0"], "at least"),
    (["synthetic", "--output", "new", "--num-images", "0"], "at least 1"),
    (["benchmark", "--runs", "0"], "at least 1"),
    # other bad input
    (["predict", "7"], "camera 7 cannot be opened"),
    (["predict", "imgs", "--json", "d.json", "--image-ids", "ann_other.json"], "has no image named"),
    (["predict", "imgs", "--json", "d.json", "--image-ids", "afile"], "not a COCO JSON file"),
    (["train", "--resume", "adir"], "no checkpoint in this folder"),
    (["train", "--resume", "w.pth"], "no training state"),
    (["train", "--iterations", "1"], "give the train"),
    (["predict", "clip.mp4", "--streams", "0"], "--streams: 0 is out of range"),
    # exported models and INT8 export
    (["predict", "imgs", "--backend", "onnxruntime", "--weights", "afile"], "ONNX Runtime cannot load it"),
    (["predict", "imgs", "--backend", "openvino", "--weights", "afile"], "OpenVINO cannot read it"),
    (["predict", "imgs", "--weights", "m.onnx", "--backend", "pytorch"],
     "an exported model; run it with --backend onnxruntime or openvino"),
    (["predict", "imgs", "--weights", "m.onnx"], "ONNX Runtime cannot load it"),  # auto: by the suffix
    (["predict", "imgs", "--backend", "onnxruntime", "--no-cuda-graph"], "--no-cuda-graph applies to the pytorch"),
    (["predict", "imgs", "--backend", "onnxruntime", "--device", "cuda"], "runs on the CPU; leave --device out"),
    (["predict", "imgs", "--backend", "onnxruntime", "--precision", "bf16"], "leave --precision out"),
    (["predict", "imgs", "--precision", "fp16", "--device", "cpu"], "fp16 inference needs a CUDA device"),
    (["export", "--format", "onnx", "--int8", "--output", "m.onnx"], "--int8 needs --calibration DIR"),
    (["export", "--format", "yolact", "--int8", "--calibration", "imgs", "--output", "m.pth"],
     "add --format onnx or --format openvino"),
    (["export", "--format", "onnx", "--int8", "--calibration", "adir", "--output", "m.onnx"],
     "no images to calibrate on"),
    (["export", "--format", "onnx", "--int8", "--calibration", "nope", "--output", "m.onnx"], "no such folder"),
    # results in other forms, and labelme folders
    (["predict", "imgs", "--save-txt", "imgs"], "input folder"),
    (["predict", "imgs", "--save-labelme", "afile"], "is a file, not a folder"),
    (["predict", "imgs", "--save-masks", "m", "--save-masks-semantic", "m"], "give each form its own folder"),
    (["predict", "imgs", "--output", "o", "--save-txt", "o"], "give each form its own folder"),
    (["predict", "clip.mp4", "--save-labelme", "lm"], "--save-labelme applies to images"),
    (["predict", "imgs", "--classes", "unicorn"], "not a class of this model"),
    (["predict", "imgs", "--classes", ","], "names no class"),
    (["predict", "imgs", "--polygon-tolerance", "-1"], "at least 0"),
    (["predict", "imgs", "--json", "d.json", "--segmentation", "mask"], "invalid choice"),
    (["convert", "--from", "labelme", "adir", "--output", "c.json"], "no labelme .json files"),
    (["convert", "--from", "labelme", "ann.json", "--output", "c.json"], "no such labelme folder"),
    (["convert", "--from", "labelme", "--output", "c.json"], "takes the labelme folder"),
    (["convert", "--from", "labelme", "adir", "--output", "adir/x.json"], "inside the labelme folder"),
    (["predict", "imgs", "--save-txt", "t", "--json", "t/a.txt"], "--save-txt writes that file too"),
    (["eval", "--ann", "ann.json", "--images", "imgs", "--errors", "e", "--save-metrics", "e/summary.json"],
     "--errors writes that file too"),
    (["eval", "--ann", "ann.json", "--images", "imgs", "--errors", "e", "--json", "e/errors.json"],
     "--errors writes that file too"),
    (["eval", "--ann", "ann.json", "--images", "imgs", "--errors", "imgs"], "input folder"),
    (["eval", "--ann", "ann.json", "--images", "imgs", "--errors", "afile"], "is a file, not a folder"),
    (["eval", "--ann", "ann.json", "--images", "imgs", "--errors", "e", "--errors-min-score", "2"],
     "between 0 and 1"),
    # serve and view
    (["serve", "--port", "70000"], "out of range"),
    (["serve", "--max-batch", "0"], "at least 1"),
    (["serve", "--max-wait-ms", "-1"], "out of range"),
    (["serve", "--max-upload-mb", "0"], "at least"),
    (["serve", "--host", "203.0.113.9", "--port", "0"], "cannot listen on 203.0.113.9:0"),
    (["serve", "--config", "nope"], "invalid choice"),
    (["view", "nope.json", "--images", "imgs"], "no such file"),
    (["view", "afile", "--images", "imgs"], "not a JSON file"),
    (["view", "adir", "--images", "imgs"], "a folder; give a JSON file"),
    (["view", "ann.json", "--images", "nope"], "no such folder"),
    (["view", "ann.json", "--images", "imgs", "--ann", "afile"], "not a JSON file"),
    (["view", "ann.json", "--images", "imgs", "--compare", "link.json"], "not a JSON file"),
    (["view", "ann.json", "--images", "adir"], "no image files found"),
    (["view", "ann.json", "--images", "imgs", "--port", "-1"], "out of range"),
    # shards
    (["predict", "imgs", "--shard", "3/2"], "0 <= I < N"),
    (["predict", "imgs", "--shard", "one"], "give I/N"),
    (["predict", "imgs", "--shard", "1/2"], "give --json FILE"),
    (["predict", "clip.mp4", "--shard", "0/2", "--json", "d.jsonl"], "apply to folders of images"),
    (["merge-results", "afile", "--output", "o.json"], "cut short"),
    (["merge-results", "nope.jsonl", "--output", "o.json"], "no such shard file"),
    (["merge-results", "ann.json", "--output", "ann.json"], "is an input"),
    (["merge-results", "ann.json", "--output", "o.json"], "not a shard line"),
]


@pytest.fixture()
def bad_input_folder(tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    small = cv2.resize(cv2.imread(str(IMAGE_9)), (96, 72))
    cv2.imwrite(str(imgs / "a.jpg"), small)
    cv2.imwrite(str(imgs / "b.png"), small)
    cv2.imwrite(str(tmp_path / "photo.jpg"), small)
    (tmp_path / "link.json").symlink_to(imgs / "a.jpg")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "m.onnx").write_bytes(b"not a model either")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    images = [{"id": 1, "file_name": "a.jpg", "width": 96, "height": 72}]
    annotations = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "iscrowd": 0, "area": 900,
                    "segmentation": [[10, 10, 40, 10, 40, 40, 10, 40]]}]
    categories = [{"id": 1, "name": "person"}]
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                   "categories": categories}))
    (tmp_path / "ann_other.json").write_text(json.dumps({"images": [{**images[0], "file_name": "zzz.jpg"}],
                                                         "annotations": [], "categories": categories}))
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (96, 72))
    for _ in range(3):
        writer.write(small)
    writer.release()
    (tmp_path / "w.pth").symlink_to(checkpoint)  # the session's checkpoint: checked by size and time below
    (tmp_path / "last.pth").symlink_to(checkpoint)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _hash_tree(folder: Path) -> dict[str, str]:
    import hashlib

    tree = {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}
    weights = (folder / "w.pth").stat()
    tree["w.pth"] = f"{weights.st_size} {weights.st_mtime_ns}"
    return tree


@pytest.mark.parametrize(("args", "needle"), BAD_INPUT_CASES, ids=[" ".join(a) for a, _ in BAD_INPUT_CASES])
def test_bad_input_is_one_line_exit_2_and_touches_no_input(args: list[str], needle: str, bad_input_folder: Path,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    # The weights for the commands that need them; train starts from scratch unless the case says otherwise.
    unweighted = args[0] in ("synthetic", "convert", "train", "view", "merge-results") or "--weights" in args
    weights = [] if unweighted else ["--weights", "w.pth"]
    if args[0] == "train" and "--device" not in args:  # bounded, should a case not fail as it must
        args = [*args, "--device", "cpu", "--workers", "0", "--quiet", "--checkpoint-every", "1"]
        args += [] if "--iterations" in args or "--epochs" in args else ["--iterations", "1"]
    before = _hash_tree(bad_input_folder)
    capfd.readouterr()
    code = main([*args, *weights])
    captured = capfd.readouterr()
    assert_one_line_error(code, captured.err, needle)
    assert "Traceback" not in captured.out
    assert _hash_tree(bad_input_folder) == before


# --------------------------------------------------------------------------- real OS failures, in subprocesses
def _cli(args: list[str], cwd: Path, preexec=None, prefix: tuple[str, ...] = ()  # type: ignore[no-untyped-def]
         ) -> subprocess.Popen:
    import os

    env = {**os.environ, "MPLCONFIGDIR": str(cwd / ".mpl")}
    return subprocess.Popen([*prefix, sys.executable, "-m", "yolact.cli", *args], cwd=cwd, env=env,
                            preexec_fn=preexec, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


READ_ONLY_CASES = [
    (["predict", "imgs", "--weights", "w.pth", "--output", "ro/out"], "ro is not writable"),
    (["predict", "imgs", "--weights", "w.pth", "--output", "ro"], "not writable"),
    (["predict", "imgs", "--weights", "w.pth", "--json", "ro/d.json"], "ro is not writable"),
    (["predict", "clip.mp4", "--weights", "w.pth", "--output", "ro/clip.mp4"], "ro is not writable"),
    (["eval", "--ann", "ann.json", "--images", "imgs", "--weights", "w.pth", "--save-metrics", "ro/m.json"],
     "ro is not writable"),
    (["train", "--train-ann", "ann.json", "--train-images", "imgs", "--output", "ro/run", "--iterations", "1"],
     "ro is not writable"),
    (["export", "--weights", "w.pth", "--format", "official", "--output", "ro/x.pth"], "ro is not writable"),
    (["predict", "imgs", "--weights", "w.pth", "--shard", "0/2", "--json", "ro/d.jsonl"], "ro is not writable"),
    (["merge-results", "ann.json", "--output", "ro/all.json"], "ro is not writable"),
]


@pytest.mark.slow
def test_read_only_folders_are_refused_before_any_work(tmp_path: Path) -> None:
    import os

    folder = tmp_path
    (folder / "imgs").mkdir()
    small = cv2.resize(cv2.imread(str(IMAGE_9)), (96, 72))
    cv2.imwrite(str(folder / "imgs" / "a.jpg"), small)
    writer = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (96, 72))
    writer.write(small)
    writer.release()
    (folder / "ann.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 96,
                                                             "height": 72}], "annotations": [],
                                                 "categories": [{"id": 1, "name": "person"}]}))
    (folder / "w.pth").write_bytes(b"never loaded: the outputs are checked first")
    (folder / "ro").mkdir()
    os.chmod(folder / "ro", 0o555)
    # root writes anywhere: as root the commands run without the capabilities that override file permissions.
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without util-linux's setpriv to drop the override capabilities")
        prefix = (setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--")
    procs = [(_cli(args, folder, prefix=prefix), needle) for args, needle in READ_ONLY_CASES]
    try:
        for proc, needle in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 2, err
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert needle in err and "choose a folder you can write to" in err, err
        assert not any((folder / "ro").iterdir())
    finally:
        os.chmod(folder / "ro", 0o755)  # so that pytest can clean up


@pytest.mark.slow
def test_a_full_disk_keeps_the_images_finished_before_it(checkpoint: Path, tmp_path: Path) -> None:
    import resource
    import signal

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name, image in (("a.jpg", IMAGE_9), ("b.jpg", IMAGE_25), ("c.jpg", IMAGE_9)):
        shutil.copy(image, imgs / name)
    args = ["predict", "imgs", "--weights", str(checkpoint), "--device", "cpu", "--top-k", "3", "--quiet",
            "--json", "all.json"]
    whole = _cli(args, tmp_path)
    assert whole.wait(timeout=300) == 0, whole.stderr.read()  # type: ignore[union-attr]
    records = json.loads((tmp_path / "all.json").read_text())
    first = [r for r in records if r["image_id"] == 1]
    assert first and len(first) < len(records)
    # The file as it stands after the first image, plus one byte: the second image's write cannot fit.
    limit = len(("[\n" + ",\n".join(json.dumps(r) for r in first) + "\n]").encode()) + 1

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = _cli([*args[:-1], "part.json"], tmp_path, small_disk)
    _, err = full.communicate(timeout=300)
    assert full.returncode == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "File too large" in err and "part.json" in err and "1 image before the failure" in err, err
    assert json.loads((tmp_path / "part.json").read_text()) == first


@pytest.mark.slow
def test_ctrl_c_leaves_every_finished_image_saved(checkpoint: Path, tmp_path: Path) -> None:
    import signal
    import time

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for index in range(40):
        shutil.copy(IMAGE_25, imgs / f"img{index:02d}.jpg")
    proc = _cli(["predict", "imgs", "--weights", str(checkpoint), "--device", "cpu", "--top-k", "3", "--quiet",
                 "--json", "d.json", "--output", "out"], tmp_path)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        path = tmp_path / "d.json"
        if path.exists() and path.stat().st_size > 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    records = json.loads((tmp_path / "d.json").read_text())  # valid JSON, whenever the interrupt came
    saved = len({r["image_id"] for r in records})
    assert f"saved: detections of {saved} image" in err, err
    assert 1 <= saved < 40 and len(list((tmp_path / "out").iterdir())) >= saved


def test_yolact_debug_shows_the_traceback(bad_input_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from yolact.outputs import OutputError

    monkeypatch.setenv("YOLACT_DEBUG", "1")
    with pytest.raises(OutputError, match="input folder"):
        main(["predict", "imgs", "--weights", "w.pth", "--output", "imgs"])


def test_image_ids_from_a_coco_file_load_with_loadres(capsys: pytest.CaptureFixture[str], checkpoint: Path,
                                                      tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    shutil.copy(IMAGE_9, imgs / "cat1.jpg")
    shutil.copy(IMAGE_25, imgs / "dog1.jpg")
    # Without --image-ids the two "1"s would collide: positions are used, and the summary says so.
    code, out, _ = run(capsys, ["predict", str(imgs), "--weights", str(checkpoint), "--device", "cpu", "--quiet",
                                "--top-k", "3", "--json", str(tmp_path / "pos.json")])
    assert code == 0 and "by position in name order" in out
    assert {r["image_id"] for r in json.loads((tmp_path / "pos.json").read_text())} == {1, 2}
    images = [{"id": 70, "file_name": "sub/cat1.jpg", "width": 640, "height": 480},
              {"id": 71, "file_name": "dog1.jpg", "width": 640, "height": 426}]
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    code, out, _ = run(capsys, ["predict", str(imgs), "--weights", str(checkpoint), "--device", "cpu", "--quiet",
                                "--top-k", "3", "--json", str(tmp_path / "ids.json"), "--image-ids", str(ann),
                                "--score-threshold", "0"])
    assert code == 0 and f"ids from {ann}" in out
    records = json.loads((tmp_path / "ids.json").read_text())
    assert {r["image_id"] for r in records} == {70, 71}
    coco = COCO(str(ann))
    person = [r for r in records if r["category_id"] == 1]
    if person:  # loadRes checks every image id against the annotation file
        assert len(coco.loadRes(person).getAnnIds()) == len(person)


def test_train_max_expand_below_1_is_refused_as_it_is_parsed(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    # From tests/training/test_trainer.py (its resume test now runs through the library): the flag's parsing.
    synthetic = tmp_path  # nothing is read: the flag is refused first
    common = ["train", "--train-ann", str(synthetic / "annotations.json"), "--train-images", str(synthetic / "images"),
              "--batch-size", "2", "--device", "cpu", "--workers", "0", "--quiet", "--output", str(tmp_path)]
    assert main([*common, "--iterations", "1", "--max-expand", "0.5"]) != 0
    assert "--max-expand: 0.5 is out of range: give a zoom-out ratio at least 1" in capsys.readouterr().err


def test_predict_forms_then_correct_in_labelme_then_train(capsys: pytest.CaptureFixture[str], checkpoint: Path,
                                                          good_folder: Path, tmp_path: Path) -> None:
    # The loop a user runs without a script: predict into labelme files, (correct them,) convert, train.
    out = tmp_path / "out"
    code, text, err = run(capsys, ["predict", str(good_folder), "--weights", str(checkpoint), "--device", "cpu",
                                   "--score-threshold", "0", "--top-k", "3", "--quiet", "--save-txt", str(out / "txt"),
                                   "--save-labelme", str(out / "labelme"), "--save-masks", str(out / "masks"),
                                   "--save-masks-semantic", str(out / "semantic"), "--json", str(out / "d.json"),
                                   "--segmentation", "polygon"])
    assert code == 0, err
    assert "txt in" in text and "labelme in" in text
    images = sorted(p for p in good_folder.iterdir() if p.suffix in (".jpg", ".png"))
    for form, suffix in (("txt", ".txt"), ("labelme", ".json"), ("masks", ".png"), ("semantic", ".png")):
        assert sorted(p.name for p in (out / form).iterdir()) == sorted(p.stem + suffix for p in images), form
    records = json.loads((out / "d.json").read_text())
    assert records and all(isinstance(r["segmentation"], list) for r in records)
    instance = cv2.imread(str(out / "masks" / f"{images[0].stem}.png"), cv2.IMREAD_UNCHANGED)
    assert instance.dtype == np.uint16 and instance.max() <= 3
    assert main(["convert", "--from", "labelme", str(out / "labelme"), "--output", str(out / "train.json")]) == 0
    converted = json.loads((out / "train.json").read_text())
    assert len(converted["images"]) == len(images) and converted["annotations"]
    # imagePath is relative to the labelme folder, so that folder is the image root.
    assert main(["train", "--train-ann", str(out / "train.json"), "--train-images", str(out / "labelme"),
                 "--iterations", "1", "--batch-size", "2", "--device", "cpu", "--workers", "0", "--quiet",
                 "--output", str(out / "run")]) == 0
    assert (out / "run" / "last.pth").is_file()
    capsys.readouterr()


def test_predict_classes_keeps_only_those(capsys: pytest.CaptureFixture[str], checkpoint: Path, good_folder: Path,
                                          tmp_path: Path) -> None:
    records = predict_json(capsys, good_folder, checkpoint, tmp_path / "all.json", "--score-threshold", "0")
    kept = sorted({r["category_id"] for r in records})[:2]
    names = [COCO_CLASSES[COCO_CATEGORY_IDS.index(c)] for c in kept]
    only = predict_json(capsys, good_folder, checkpoint, tmp_path / "some.json", "--score-threshold", "0",
                        "--classes", ",".join(names))
    assert only and {r["category_id"] for r in only} <= set(kept)


def test_eval_errors_writes_overlays_and_counts_that_add_up(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path) -> None:
    # A model trained here, briefly, on generated scenes, analysed on scenes it has not seen.
    assert main(["synthetic", "--output", str(tmp_path / "train"), "--num-images", "8", "--size", "96"]) == 0
    assert main(["synthetic", "--output", str(tmp_path / "val"), "--num-images", "3", "--size", "96", "--seed",
                 "1"]) == 0
    assert main(["train", "--train-ann", str(tmp_path / "train" / "annotations.json"), "--train-images",
                 str(tmp_path / "train" / "images"), "--iterations", "8", "--batch-size", "2", "--device", "cpu",
                 "--workers", "0", "--quiet", "--output", str(tmp_path / "run")]) == 0
    ann = tmp_path / "val" / "annotations.json"
    data = json.loads(ann.read_text())
    errors, dets = tmp_path / "errors", tmp_path / "dets.json"
    capsys.readouterr()
    code, out, err = run(capsys, ["eval", "--weights", str(tmp_path / "run" / "last.pth"), "--ann", str(ann),
                                  "--images", str(tmp_path / "val" / "images"), "--device", "cpu", "--top-k", "20",
                                  "--quiet", "--json", str(dets), "--errors", str(errors), "--errors-min-score",
                                  "0.05"])
    assert code == 0, err
    assert "errors at mask IoU 0.5" in out and "background" in out
    per_image = json.loads((errors / "errors.json").read_text())
    summary = json.loads((errors / "summary.json").read_text())
    assert len(per_image) == 3 and summary["images"] == 3
    kinds = ("true_positive", "localisation", "classification", "duplicate", "both", "background")
    for kind in (*kinds, "missed"):
        assert summary[kind] == sum(image[kind] for image in per_image), kind
    # Every detection at or above the score was judged once (the scenes have no crowds).
    judged = sum(summary[k] for k in kinds)
    assert judged == sum(1 for r in json.loads(dets.read_text()) if r["score"] >= 0.05)
    for image in data["images"]:
        assert (errors / image["file_name"]).is_file()


def test_merge_results_writes_one_list_in_shard_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def line(image_id: int, scores: list[float]) -> str:
        records = [{"image_id": image_id, "category_id": 1, "bbox": [0, 0, 1, 1], "score": s} for s in scores]
        return json.dumps({"image_id": image_id, "file_name": f"{image_id}.jpg", "records": records}) + "\n"

    (tmp_path / "d.shard-0001-of-0002.jsonl").write_text(line(3, [0.5]) + line(4, []))
    (tmp_path / "d.shard-0000-of-0002.jsonl").write_text(line(1, [0.9, 0.2]) + line(2, [0.7]))
    code, out, err = run(capsys, ["merge-results", *map(str, sorted(tmp_path.glob("*.jsonl"), reverse=True)),
                                  "--output", str(tmp_path / "all.json")])
    assert code == 0, err
    assert "4 detections of 4 image(s) from 2 shard file(s)" in out
    merged = json.loads((tmp_path / "all.json").read_text())
    assert [(r["image_id"], r["score"]) for r in merged] == [(1, 0.9), (1, 0.2), (2, 0.7), (3, 0.5)]


def test_eval_errors_is_refused_across_processes(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Checked before the model loads or the process group forms: one line, and nothing waits on the other ranks.
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = run(capsys, ["eval", "--weights", str(tmp_path / "none.pth"), "--ann",
                                str(COCO128 / "annotations" / "instances_val.json"), "--images",
                                str(COCO128 / "images"), "--errors", str(tmp_path / "errors")])
    assert_one_line_error(code, err, "--errors", "without torchrun")


def test_convert_sbd_then_eval_prints_ap70(capsys: pytest.CaptureFixture[str], sbd_folder: Path,
                                           make_official_checkpoint, tmp_path: Path) -> None:
    ann = tmp_path / "sbd_val.json"
    code, out, _ = run(capsys, ["convert", "--from", "sbd", str(sbd_folder), "--split", "val", "--output", str(ann)])
    assert code == 0 and "wrote" in out and len(json.loads(ann.read_text())["annotations"]) == 6
    weights = make_official_checkpoint("yolact_resnet50_pascal", filename="yolact_resnet50_pascal_23_120000.pth")
    metrics = tmp_path / "metrics.json"
    code, out, _ = run(capsys, ["eval", "--weights", str(weights), "--ann", str(ann), "--images",
                                str(sbd_folder / "img"), "--device", "cpu", "--quiet", "--save-metrics", str(metrics)])
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("AP, %")).split()
    assert header[2:6] == ["AP", "AP50", "AP70", "AP75"]
    figures = json.loads(metrics.read_text())
    assert figures["segm"]["AP70"] == figures["ap_by_iou"]["segm"]["0.70"] and len(figures["ap_by_iou"]["bbox"]) == 10


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--split", "val"], ("--from sbd takes the SBD folder",)),
        (["SBD"], ("--from sbd takes the SBD folder", "--split")),
        (["SBD", "--split", "test"], ("--split", "invalid choice")),
    ],
)
def test_convert_sbd_bad_arguments(capsys: pytest.CaptureFixture[str], sbd_folder: Path, tmp_path: Path,
                                   args: list[str], needles: tuple[str, ...]) -> None:
    args = [str(sbd_folder) if a == "SBD" else a for a in args]
    code, _, err = run(capsys, ["convert", "--from", "sbd", *args, "--output", str(tmp_path / "a.json")])
    assert_one_line_error(code, err, *needles)


def test_convert_sbd_bad_mat_is_one_line(capsys: pytest.CaptureFixture[str], sbd_folder: Path,
                                         tmp_path: Path) -> None:
    import shutil

    folder = Path(shutil.copytree(sbd_folder, tmp_path / "dataset"))
    name = (folder / "val.txt").read_text().split()[0]
    (folder / "inst" / f"{name}.mat").write_bytes(b"not a mat file")
    code, _, err = run(capsys, ["convert", "--from", "sbd", str(folder), "--split", "val", "--quiet", "--output",
                                str(tmp_path / "a.json")])
    assert_one_line_error(code, err, f"{name}.mat", "cannot read it as a MATLAB file")
    assert not (tmp_path / "a.json").exists()


@pytest.mark.slow
def test_train_on_an_sbd_folder_with_the_pascal_preset(capsys: pytest.CaptureFixture[str], sbd_folder: Path,
                                                       tmp_path: Path) -> None:
    code, out, _ = run(capsys, ["train", "--data", str(sbd_folder), "--config", "yolact_resnet50_pascal",
                                "--iterations", "1", "--batch-size", "2", "--device", "cpu", "--workers", "0",
                                "--quiet", "--output", str(tmp_path / "run")])
    assert code == 0, out
    checkpoint = tmp_path / "run" / "last.pth"
    code, _, _ = run(capsys, ["predict", str(sbd_folder / "img"), "--weights", str(checkpoint), "--device", "cpu",
                              "--score-threshold", "0", "--top-k", "5", "--json", str(tmp_path / "d.json"), "--quiet"])
    assert code == 0
    from yolact.checkpoint import load_checkpoint
    from yolact.data.class_lists import PASCAL_CLASSES

    loaded = load_checkpoint(checkpoint)
    assert loaded.config.name == "yolact_resnet50_pascal" and loaded.class_names == PASCAL_CLASSES
    assert {r["category_id"] for r in json.loads((tmp_path / "d.json").read_text())} <= set(range(1, 21))
