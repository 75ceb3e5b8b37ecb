"""Every form a Prediction is written in, read back by the tool that reads it: COCO polygons (pycocotools), YOLO-seg
lines (our loader), labelme files (our converter), 16-bit mask PNGs (OpenCV), supervision Detections."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from yolact.data.labelme import labelme_to_coco
from yolact.data.yolo import yolo_to_coco
from yolact.inference.drawing import draw_instances
from yolact.inference.results import Prediction

HEIGHT, WIDTH = 60, 80
NAMES = ["person", "car", "dog"]


def masks() -> np.ndarray:
    """A ring (a hole), two disjoint squares (two parts), and a shape touching the image's border."""
    out = np.zeros((3, HEIGHT, WIDTH), np.uint8)
    cv2.circle(out[0], (20, 20), 15, 1, -1)
    cv2.circle(out[0], (20, 20), 6, 0, -1)
    out[1, 40:50, 40:50] = 1
    out[1, 5:15, 60:75] = 1
    out[2, 45:, 0:30] = 1
    return out.astype(bool)


def prediction(source: str | None = None) -> Prediction:
    m = masks()
    boxes = np.array([[5, 5, 36, 36], [40, 5, 75, 50], [0, 45, 30, 60]], np.int64)
    return Prediction(boxes, np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 1, 2]), NAMES,
                      np.array([1, 2, 3]), m, (HEIGHT, WIDTH), source=source)


def filled(mask: np.ndarray) -> np.ndarray:
    """The mask with its holes filled (what a format without holes can hold)."""
    out = mask.astype(np.uint8).copy()
    contours, _ = cv2.findContours(out, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, 1, -1)
    return out.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def decode_coco(segmentation: list, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))).astype(bool)


def test_polygons_hold_every_part_and_hole() -> None:
    parts = prediction().polygons()
    assert [len(p) for p in parts] == [1, 2, 1] and len(parts[0][0].holes) == 1


def test_coco_polygons_give_the_masks_back_holes_filled() -> None:
    records = prediction().to_coco(7, segmentation="polygon")
    for record, mask in zip(records, masks(), strict=True):
        assert record["image_id"] == 7 and isinstance(record["segmentation"], list)
        np.testing.assert_array_equal(decode_coco(record["segmentation"]), filled(mask))
    assert len(records[1]["segmentation"]) == 2  # one polygon per part
    rle = prediction().to_coco(7)  # the default stays RLE, exact
    assert all(isinstance(r["segmentation"], dict) for r in rle)
    with pytest.raises(ValueError, match="choose one of rle, polygon"):
        prediction().to_coco(7, segmentation="mask")


def test_yolo_lines_read_back_by_our_loader(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    lines = prediction().to_yolo()
    assert [line.split()[0] for line in lines] == ["0", "1", "2"]
    (tmp_path / "labels" / "a.txt").write_text("\n".join(lines) + "\n")
    coco = yolo_to_coco(tmp_path / "images", tmp_path / "labels", NAMES)
    assert [a["category_id"] for a in coco["annotations"]] == [1, 2, 3]
    for annotation, mask in zip(coco["annotations"], masks(), strict=True):
        # One polygon per line: parts bridged, holes filled (the format has no holes).
        assert iou(decode_coco(annotation["segmentation"]), filled(mask)) >= 0.95


def test_labelme_files_convert_back_to_the_same_instances(tmp_path: Path) -> None:
    image = tmp_path / "images" / "a.jpg"
    image.parent.mkdir()
    cv2.imwrite(str(image), np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    folder = tmp_path / "labelme"
    folder.mkdir()
    record = prediction(str(image)).to_labelme(relative_to=folder)
    assert record["imagePath"] == "../images/a.jpg" and record["imageData"] is None
    assert (record["imageHeight"], record["imageWidth"]) == (HEIGHT, WIDTH)
    assert [s["group_id"] for s in record["shapes"]] == [0, 1, 1, 2]  # the squares: two shapes, one instance
    assert all(s["shape_type"] == "polygon" for s in record["shapes"])
    (folder / "a.json").write_text(json.dumps(record))
    coco = labelme_to_coco(folder, NAMES)
    assert coco["images"][0]["file_name"] == "../images/a.jpg"
    assert [a["category_id"] for a in coco["annotations"]] == [1, 2, 3]
    for annotation, mask in zip(coco["annotations"], masks(), strict=True):
        np.testing.assert_array_equal(decode_coco(annotation["segmentation"]), filled(mask))


def test_instance_and_semantic_pngs_decode_bit_for_bit() -> None:
    result = prediction()
    ok, png = cv2.imencode(".png", result.instance_map())
    decoded = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
    assert ok and decoded.dtype == np.uint16
    for i, mask in enumerate(masks()):
        np.testing.assert_array_equal(decoded == i + 1, mask)
    assert ((decoded == 0) == ~masks().any(axis=0)).all()
    semantic = result.semantic_map()
    assert set(np.unique(semantic)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(semantic == 2, masks()[1])


def test_where_masks_overlap_the_better_score_is_kept() -> None:
    result = prediction()
    result.masks[2, 20:30, 10:20] = True  # the worst instance over part of the best one's ring
    both = result.masks[0] & result.masks[2]
    assert both.any() and (result.instance_map()[both] == 1).all()


def test_supervision_detections_hold_the_same_fields() -> None:
    pytest.importorskip("supervision")
    result = prediction()
    detections = result.to_supervision()
    np.testing.assert_array_equal(detections.xyxy, result.boxes_xyxy)
    np.testing.assert_array_equal(detections.mask, result.masks)
    np.testing.assert_array_equal(detections.confidence, result.scores)
    np.testing.assert_array_equal(detections.class_id, result.class_ids)
    assert list(detections.data["class_name"]) == NAMES and len(detections) == 3


def test_plot_is_the_overlay_predict_draws(tmp_path: Path) -> None:
    image = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), image)
    result = prediction(str(path))
    expected = draw_instances(image, result.boxes_xyxy, result.scores, result.class_ids, NAMES, result.masks)
    np.testing.assert_array_equal(result.plot(), expected)
    np.testing.assert_array_equal(result.plot(image), expected)
