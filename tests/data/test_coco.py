import json
from pathlib import Path

import pytest
from conftest import COCO128

from yolact.data.coco import AnnotationError, load_coco

ANN = COCO128 / "annotations" / "instances_all.json"
IMAGES = COCO128 / "images"


def write(tmp_path: Path, data: object, name: str = "ann.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def minimal() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4],
                         "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]}],
        "categories": [{"id": 3, "name": "car"}],
    }


def test_coco128_loads(shared_dir) -> None:
    dataset = load_coco(ANN, IMAGES)
    assert len(dataset.image_ids) == 128 and len(dataset.categories) == 80
    assert len(dataset.used_category_ids()) == 71
    assert dataset.image_path(9) == IMAGES / "000000000009.jpg"


def test_implied_fields_are_filled(tmp_path: Path) -> None:
    dataset = load_coco(write(tmp_path, minimal()), tmp_path)
    ann = dataset.coco.anns[5]
    assert ann["iscrowd"] == 0 and ann["area"] == pytest.approx(16, abs=4)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("categories"), "missing list 'categories'"),
        (lambda d: d["images"][0].pop("file_name"), r"images\[0\] \(id 1\) has no 'file_name'"),
        (lambda d: d["annotations"][0].pop("bbox"), r"annotations\[0\] \(id 5\) has no 'bbox'"),
        (lambda d: d["annotations"][0].update(category_id=99), "category id 99, which is not in 'categories'"),
        (lambda d: d["annotations"][0].update(image_id=7), "image id 7, which is not in 'images'"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2]), "malformed bbox"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3]]), "malformed segmentation"),
        (lambda d: d["images"].append(dict(d["images"][0])), "repeats an image id"),
    ],
)
def test_malformed_records_are_named(tmp_path: Path, mutate, message: str) -> None:
    data = minimal()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(AnnotationError, match=message) as info:
        load_coco(path, tmp_path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_not_json_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(AnnotationError, match=r"broken\.json: not valid JSON \(line 1"):
        load_coco(broken, tmp_path)
    with pytest.raises(AnnotationError, match="no such annotation file"):
        load_coco(tmp_path / "nope.json", tmp_path)
    with pytest.raises(AnnotationError, match="no such image folder"):
        load_coco(write(tmp_path, minimal()), tmp_path / "nope")
