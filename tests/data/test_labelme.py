"""labelme folders to COCO, grouped as labelme2coco groups them, on the shared real labelme files."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED
from pycocotools import mask as mask_utils

from yolact.data.coco import AnnotationError
from yolact.data.labelme import convert_labelme, labelme_to_coco

LABELME = SHARED / "data" / "labelme-voc-instseg"


def decode(annotation: dict, height: int, width: int) -> np.ndarray:
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(annotation["segmentation"], height,
                                                                     width))).astype(bool)


def test_the_shared_labelme_files_give_the_reference_instances(tmp_path: Path) -> None:
    out = convert_labelme(LABELME / "labelme_json", tmp_path / "ann.json")
    ours = json.loads(out.read_text())
    reference = json.loads((LABELME / "annotations" / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in ours["categories"]}
    reference_names = {c["id"]: c["name"] for c in reference["categories"]}
    assert "__ignore__" not in names.values()
    assert len(ours["annotations"]) == len(reference["annotations"]) == 12
    by_file = {image["file_name"]: image for image in reference["images"]}
    for image in ours["images"]:
        ref_image = by_file[image["file_name"]]
        size = (ref_image["height"], ref_image["width"])
        assert (image["height"], image["width"]) == size
        mine = [(names[a["category_id"]], decode(a, *size)) for a in ours["annotations"]
                if a["image_id"] == image["id"]]
        for ann in (a for a in reference["annotations"] if a["image_id"] == ref_image["id"]):
            truth = decode(ann, *size)
            best = max(((m & truth).sum() / (m | truth).sum() for name, m in mine
                        if name == reference_names[ann["category_id"]]), default=0.0)
            assert best >= 0.99, (image["file_name"], reference_names[ann["category_id"]], best)


def write(folder: Path, shapes: list, name: str = "a.json", **fields) -> None:
    folder.mkdir(exist_ok=True)
    record = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": "a.jpg", "imageData": None,
              "imageHeight": 40, "imageWidth": 50, **fields}
    (folder / name).write_text(json.dumps(record))


def shape(label: str, points: list, group_id=None, shape_type: str = "polygon") -> dict:
    return {"label": label, "points": points, "group_id": group_id, "shape_type": shape_type, "flags": {}}


SQUARE = [[2, 2], [10, 2], [10, 10], [2, 10]]
OTHER = [[20, 20], [30, 20], [30, 30], [20, 30]]


def test_shapes_sharing_a_group_are_one_instance(tmp_path: Path) -> None:
    write(tmp_path, [shape("cat", SQUARE, 1), shape("cat", OTHER, 1), shape("cat", SQUARE), shape("dog", OTHER, 1),
                     shape("__ignore__", SQUARE), shape("cat", [[0, 0], [8, 4]], shape_type="rectangle"),
                     shape("dog", [[25, 10], [25, 15]], shape_type="circle")])
    coco = labelme_to_coco(tmp_path)
    assert [c["name"] for c in coco["categories"]] == ["cat", "dog"]
    parts = [len(a["segmentation"]) for a in coco["annotations"]]
    assert parts == [2, 1, 1, 1, 1]  # cat group 1 (two parts), cat alone, dog group 1, the rectangle, the circle
    assert coco["annotations"][3]["bbox"] == [0.0, 0.0, 8.0, 4.0]
    assert abs(coco["annotations"][4]["area"] - np.pi * 25) < 12  # a polygon within a pixel of the circle
    assert labelme_to_coco(tmp_path, ["dog", "cat"])["annotations"][0]["category_id"] == 2


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"version": "5"}', "not a labelme file"),
    ({"shapes": [shape("cat", [[1, 2]])]}, "a polygon needs at least 3 points"),
    ({"shapes": [shape("cat", [[1, "x"], [2, 3], [4, 5]])]}, "'points' must be a list of"),
    ({"shapes": [shape("cat", SQUARE, shape_type="line")]}, "a 'line' shape is not an instance outline"),
    ({"shapes": [shape("cat", SQUARE, group_id=[1])]}, "'group_id' must be a whole number or null"),
    ({"shapes": [shape("", SQUARE)]}, "a shape needs a 'label'"),
    ({"shapes": [], "imageHeight": 0}, "'imageHeight' must be the image's size"),
    ({"shapes": [], "imagePath": 3}, "'imagePath' must name the image file"),
])
def test_bad_labelme_files_are_one_line_errors(tmp_path: Path, content, message: str) -> None:
    if isinstance(content, str):
        tmp_path.joinpath("a.json").write_text(content)
    else:
        write(tmp_path, **content)
    with pytest.raises(AnnotationError, match=message) as error:
        labelme_to_coco(tmp_path)
    assert "a.json" in str(error.value) and "\n" not in str(error.value)


def test_a_label_outside_the_names_given_is_refused(tmp_path: Path) -> None:
    write(tmp_path, [shape("cat", SQUARE)])
    with pytest.raises(AnnotationError, match="label 'cat' is not one of the --names given"):
        labelme_to_coco(tmp_path, ["dog"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnnotationError, match=r"no labelme \.json files"):
        labelme_to_coco(tmp_path / "empty")


def test_shapes_far_outside_the_image_are_refused(tmp_path: Path) -> None:
    write(tmp_path, [shape("cat", [[0, 0], [1e300, 0], [0, 1e300]])])
    with pytest.raises(AnnotationError, match="lies far outside its 50x40 image"):
        labelme_to_coco(tmp_path)
    write(tmp_path, [shape("cat", [[10, 10], [1e300, 10]], shape_type="circle")])
    with pytest.raises(AnnotationError, match="lies far outside"):
        labelme_to_coco(tmp_path)
