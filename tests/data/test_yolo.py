"""YOLO-seg labels to COCO: checked against coco128-seg's own COCO file; malformed lines fail with file:line."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import COCO128

from yolact.data.coco import AnnotationError, load_coco
from yolact.data.coco_classes import COCO_CLASSES
from yolact.data.yolo import convert_yolo, yolo_to_coco


@pytest.fixture(scope="module")
def coco128_converted() -> dict:
    return yolo_to_coco(COCO128 / "images", COCO128 / "labels_yolo")


def test_coco128_matches_its_coco_file(shared_dir: Path, coco128_converted: dict) -> None:
    converted = coco128_converted
    reference = json.loads((COCO128 / "annotations" / "instances_all.json").read_text())
    ref_names = {c["id"]: c["name"] for c in reference["categories"]}
    names = {c["id"]: c["name"] for c in converted["categories"]}
    assert [names[i] for i in range(1, 81)] == list(COCO_CLASSES)

    assert {(i["id"], i["file_name"], i["width"], i["height"]) for i in converted["images"]} == {
        (i["id"], i["file_name"], i["width"], i["height"]) for i in reference["images"]}

    def by_image(data: dict, category_names: dict) -> dict:
        grouped = defaultdict(list)
        for ann in data["annotations"]:
            grouped[ann["image_id"]].append((category_names[ann["category_id"]], ann["bbox"], ann["area"]))
        return grouped

    ours, theirs = by_image(converted, names), by_image(reference, ref_names)
    assert len(converted["annotations"]) == len(reference["annotations"]) == 929
    for image in reference["images"]:
        mine, ref = ours[image["id"]], theirs[image["id"]]
        assert len(mine) == len(ref)
        # The same instances: every reference one has a converted one of its class within 1 px (in any order).
        unmatched = list(mine)
        for name, bbox, area in ref:
            match = next(m for m in unmatched if m[0] == name and np.allclose(m[1], bbox, atol=1.0))
            assert match[2] == pytest.approx(area, rel=0.02, abs=4)
            unmatched.remove(match)
    assert sum(1 for image in reference["images"] if not ours[image["id"]]) == 2  # background images


def test_converted_file_loads(shared_dir: Path, tmp_path: Path) -> None:
    out = convert_yolo(COCO128 / "images", COCO128 / "labels_yolo", tmp_path / "sub" / "coco128.json")
    assert out == tmp_path / "sub" / "coco128.json"
    assert [p.name for p in out.parent.iterdir()] == ["coco128.json"]  # no temporary file left
    dataset = load_coco(out, COCO128 / "images")
    assert len(dataset.image_ids) == 128 and len(dataset.categories) == 80


def write_dataset(tmp_path: Path, labels: dict[str, str], images: tuple[str, ...] = ("a.jpg", "b.png")
                  ) -> tuple[Path, Path]:
    image_dir, label_dir = tmp_path / "images", tmp_path / "labels"
    image_dir.mkdir()
    label_dir.mkdir()
    for name in images:
        cv2.imwrite(str(image_dir / name), np.zeros((50, 100, 3), dtype=np.uint8))
    for stem, text in labels.items():
        (label_dir / f"{stem}.txt").write_text(text)
    return image_dir, label_dir


def test_pixels_boxes_names_and_background(tmp_path: Path) -> None:
    image_dir, label_dir = write_dataset(tmp_path, {"a": "85 0.1 0.2 0.5 0.2 0.5 0.8\n\n2 0.5 0.5 0.2 0.4\n"})
    data = yolo_to_coco(image_dir, label_dir)
    assert [(i["id"], i["file_name"], i["width"], i["height"]) for i in data["images"]] == [
        (1, "a.jpg", 100, 50), (2, "b.png", 100, 50)]  # names are not numbers: 1-based positions
    polygon, box = data["annotations"]
    assert polygon["segmentation"] == [[10.0, 10.0, 50.0, 10.0, 50.0, 40.0]]
    assert polygon["bbox"] == [10.0, 10.0, 40.0, 30.0] and polygon["category_id"] == 86
    assert polygon["area"] == pytest.approx(40 * 30 / 2, rel=0.1)
    assert box["bbox"] == [40.0, 15.0, 20.0, 20.0] and box["category_id"] == 3  # 'class cx cy w h' lines
    assert [c["name"] for c in data["categories"]] == [f"class{i}" for i in range(86)]
    named = yolo_to_coco(image_dir, label_dir, class_names=[f"n{i}" for i in range(90)])
    assert [c["id"] for c in named["categories"]] == list(range(1, 91))


@pytest.mark.parametrize(("text", "line", "why"), [
    ("0 0.1 0.1 0.2 0.2 0.3 0.1\nx 0.1 0.1 0.2 0.2 0.3 0.1\n", 2, "class"),
    ("0 0.1 0.1 0.2 0.2 0.3\n", 1, "coordinates"),
    ("0 0.1 0.1 0.2 0.2\n0 0.1 0.1 0.2 0.2 0.3 oops\n", 2, "numbers"),
    ("1 0.1 0.1 1.5 0.2 0.3 0.1\n", 1, "normalised"),
    ("7 0.1 0.1 0.2 0.2 0.3 0.1\n", 1, "class names"),
])
def test_malformed_lines_name_file_and_line(tmp_path: Path, text: str, line: int, why: str) -> None:
    image_dir, label_dir = write_dataset(tmp_path, {"a": text})
    with pytest.raises(AnnotationError, match=why) as info:
        yolo_to_coco(image_dir, label_dir, class_names=["x", "y", "z"])
    assert f"{label_dir / 'a.txt'}:{line}:" in str(info.value)
    with pytest.raises(AnnotationError):  # nothing written
        convert_yolo(image_dir, label_dir, tmp_path / "out.json", class_names=["x", "y", "z"])
    assert not (tmp_path / "out.json").exists()
