"""What ``yolact view`` serves: images by index from one folder, results grouped by image id."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolact.errors import YolactError
from yolact.serve.gallery import open_gallery


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("000000000009.jpg", "000000000025.png"):
        cv2.imwrite(str(images / name), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "outside.png"), np.zeros((8, 8, 3), np.uint8))
    records = [{"image_id": 9, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.2},
               {"image_id": 9, "category_id": 3, "bbox": [0, 0, 2, 2], "score": 0.8},
               {"image_id": 77, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.5}]
    (tmp_path / "dets.json").write_text(json.dumps(records))
    return tmp_path


def test_images_are_numbered_as_predict_numbers_them_and_records_sorted_by_score(folder: Path) -> None:
    gallery = open_gallery(folder / "dets.json", folder / "images")
    assert [(i.path.name, i.image_id) for i in gallery.images] == [("000000000009.jpg", 9), ("000000000025.png", 25)]
    assert [r["score"] for r in gallery.results[0][9]] == [0.8, 0.2]
    assert gallery.unmatched == 1 and gallery.categories[1] == "person"
    assert gallery.image(2) is None and gallery.image(-1) is None


def test_an_annotation_file_cannot_point_outside_the_folder(folder: Path) -> None:
    truth = {"images": [{"id": 9, "file_name": "000000000009.jpg"}, {"id": 5, "file_name": "../outside.png"},
                        {"id": 6, "file_name": str(folder / "outside.png")}],
             "categories": [{"id": 1, "name": "cat"}], "annotations": [
                 {"image_id": 9, "category_id": 1, "bbox": [1, 1, 3, 3], "segmentation": [[1, 1, 4, 1, 4, 4]]}]}
    (folder / "gt.json").write_text(json.dumps(truth))
    gallery = open_gallery(folder / "dets.json", folder / "images", folder / "gt.json")
    assert [i.image_id for i in gallery.images] == [9]
    assert gallery.categories == {1: "cat"} and len(gallery.ground_truth[9]) == 1


@pytest.mark.parametrize(("content", "needle"), [
    ("{", "not a JSON file"), ('{"a": 1}', "not a COCO results list"),
    ('[{"image_id": "9", "category_id": 1, "bbox": [0, 0, 1, 1]}]', "record 0 lacks"),
    ('[{"image_id": 9, "category_id": 1, "bbox": [0, 0]}]', "4-number bbox")])
def test_bad_results_files_are_named_in_one_line(folder: Path, content: str, needle: str) -> None:
    (folder / "bad.json").write_text(content)
    with pytest.raises(YolactError, match=needle):
        open_gallery(folder / "bad.json", folder / "images")
