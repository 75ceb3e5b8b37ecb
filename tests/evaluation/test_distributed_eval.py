"""``yolact eval`` across processes: the records and figures of one process, exactly."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from conftest import COCO128
from pycocotools import mask as mask_utils

import yolact
from yolact.data.coco import load_coco
from yolact.evaluation.distributed import evaluate_across_processes
from yolact.evaluation.evaluator import evaluate_predictor

IMAGES = COCO128 / "images"
MODEL = ["--device", "cpu", "--top-k", "30"]


def _subset(path: Path, count: int) -> dict:
    data = json.loads((COCO128 / "annotations" / "instances_val.json").read_text())
    data["images"] = data["images"][:count]
    # A listed image missing on disk: skipped in whichever process holds it, and counted once.
    data["images"].insert(2, {"id": 999999, "file_name": "missing.jpg", "width": 640, "height": 480})
    ids = {i["id"] for i in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    path.write_text(json.dumps(data))
    return data


def _pseudo_ground_truth(data: dict, checkpoint: Path, path: Path) -> None:
    """``data`` with the model's own confident detections as its annotations, so that AP is far from 0 (random
    weights score 0 on the real ones) and every record's rank and overlap counts."""
    predictor = yolact.load(checkpoint, device="cpu", score_threshold=0.3, top_k=30)
    names = {c["name"]: c["id"] for c in data["categories"]}
    annotations = []
    for image in data["images"]:
        if image["id"] == 999999:
            continue
        prediction = predictor(str(IMAGES / image["file_name"]))
        for record in prediction.to_coco(image["id"]):
            category = names.get(predictor.class_names[record["class_index"]])
            if category is None:  # a COCO class this subset's category list leaves out
                continue
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": category,
                                "bbox": record["bbox"], "segmentation": record["segmentation"],
                                "area": float(mask_utils.area(record["segmentation"])), "iscrowd": 0})
    path.write_text(json.dumps({**data, "annotations": annotations}))


def _eval(command: list[str], out: Path, name: str, ann: Path, checkpoint: Path) -> str:
    result = subprocess.run(
        [*command, "-m", "yolact", "eval", "--weights", str(checkpoint), "--ann", str(ann), "--images", str(IMAGES),
         *MODEL, "--per-class", "--quiet", "--json", str(out / f"{name}.json"),
         "--save-metrics", str(out / f"{name}_metrics.json")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_torchrun_two_processes_give_the_one_process_records_and_figures(make_official_checkpoint,
                                                                         tmp_path: Path) -> None:
    checkpoint = make_official_checkpoint("yolact_resnet50")
    ann = tmp_path / "pseudo.json"
    _pseudo_ground_truth(_subset(tmp_path / "subset.json", 8), checkpoint, ann)
    one = _eval([sys.executable], tmp_path, "one", ann, checkpoint)
    two = _eval([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], tmp_path,
                "two", ann, checkpoint)
    metrics = json.loads((tmp_path / "one_metrics.json").read_text())
    assert metrics["bbox"]["AP"] > 0.3 and metrics["segm"]["AP"] > 0.3 and metrics["num_skipped"] == 1
    assert (tmp_path / "two_metrics.json").read_text() == (tmp_path / "one_metrics.json").read_text()
    assert json.loads((tmp_path / "two.json").read_text()) == json.loads((tmp_path / "one.json").read_text())
    assert re.search(r"images evaluated on cpu( \(\w+\))? x 2 processes", two)

    def table(stdout: str) -> list[str]:
        lines = stdout.splitlines()
        return lines[next(i for i, line in enumerate(lines) if "images evaluated" in line) + 1:]

    assert table(two)[:-1] == table(one)[:-1]  # printed once; the last line names the metrics file


def test_a_group_of_one_gives_the_one_process_result(make_official_checkpoint, tmp_path: Path) -> None:
    _subset(tmp_path / "subset.json", 2)
    dataset = load_coco(tmp_path / "subset.json", IMAGES)
    predictor = yolact.load(make_official_checkpoint("yolact_resnet50"), device="cpu", score_threshold=0.0,
                            top_k=20)
    alone = evaluate_predictor(predictor, dataset, tmp_path / "alone.json", progress=False)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        grouped = evaluate_across_processes(predictor, dataset, tmp_path / "grouped.json", progress=False)
    finally:
        dist.destroy_process_group()
    assert grouped is not None
    assert grouped.to_dict() == alone.to_dict() and grouped.skipped == alone.skipped
    assert (tmp_path / "grouped.json").read_bytes() == (tmp_path / "alone.json").read_bytes()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torchrun_evaluates_with_nccl_on_cuda(make_official_checkpoint, tmp_path: Path) -> None:
    checkpoint = make_official_checkpoint("yolact_resnet50")
    ann = tmp_path / "subset.json"
    _subset(ann, 8)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "yolact",
         "eval", "--weights", str(checkpoint), "--ann", str(ann), "--images", str(IMAGES), "--device", "cuda",
         "--quiet", "--save-metrics", str(tmp_path / "m.json")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "on cuda:0" in result.stdout and json.loads((tmp_path / "m.json").read_text())["num_images"] == 8
