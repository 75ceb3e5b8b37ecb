"""COCO-format instance annotations, checked record by record so that bad files fail with one clear line."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from yolact.errors import YolactError


class AnnotationError(YolactError):
    """An annotation file is missing, not JSON, or has a malformed record."""


IMAGE_FIELDS = ("id", "file_name", "width", "height")
ANNOTATION_FIELDS = ("image_id", "category_id", "bbox", "segmentation")


@dataclass
class CocoDataset:
    """A COCO instances file and the folder of its images."""

    annotation_path: Path
    images_dir: Path
    coco: COCO  # pycocotools' index over the validated records

    @property
    def image_ids(self) -> list[int]:
        return sorted(self.coco.getImgIds())

    @property
    def categories(self) -> list[dict[str, Any]]:
        return [self.coco.cats[i] for i in sorted(self.coco.cats)]

    def image_path(self, image_id: int) -> Path:
        return self.images_dir / self.coco.imgs[image_id]["file_name"]

    def used_category_ids(self) -> set[int]:
        return {ann["category_id"] for ann in self.coco.dataset["annotations"]}


def _record_name(kind: str, index: int, record: Any) -> str:
    if isinstance(record, dict) and "id" in record:
        return f"{kind}[{index}] (id {record['id']})"
    return f"{kind}[{index}]"


def validate_coco(data: Any, path: Path) -> dict[str, Any]:
    """Check the structure pycocotools relies on; fill in what COCO lets be implied (iscrowd, area, ids)."""
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise AnnotationError(f"{path}: missing list '{key}' (a COCO instances file has images, annotations "
                                  "and categories)")
    for i, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            raise AnnotationError(f"{path}: {_record_name('categories', i, category)} needs 'id' and 'name'")
    category_ids = {c["id"] for c in data["categories"]}
    if len(category_ids) != len(data["categories"]):
        raise AnnotationError(f"{path}: duplicate category ids in 'categories'")
    images: dict[int, dict] = {}
    for i, image in enumerate(data["images"]):
        missing = [f for f in IMAGE_FIELDS if not isinstance(image, dict) or f not in image]
        if missing:
            raise AnnotationError(f"{path}: {_record_name('images', i, image)} has no '{missing[0]}'")
        if image["id"] in images:
            raise AnnotationError(f"{path}: {_record_name('images', i, image)} repeats an image id")
        images[image["id"]] = image
    next_id = 1 + max((a.get("id", 0) for a in data["annotations"] if isinstance(a, dict)), default=0)
    for i, ann in enumerate(data["annotations"]):
        where = _record_name("annotations", i, ann)
        missing = [f for f in ANNOTATION_FIELDS if not isinstance(ann, dict) or f not in ann]
        if missing:
            raise AnnotationError(f"{path}: {where} has no '{missing[0]}'")
        if ann["image_id"] not in images:
            raise AnnotationError(f"{path}: {where} refers to image id {ann['image_id']}, which is not in 'images'")
        if ann["category_id"] not in category_ids:
            raise AnnotationError(f"{path}: {where} has category id {ann['category_id']}, which is not in "
                                  "'categories'; add it there or fix the record")
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            raise AnnotationError(f"{path}: {where} has a malformed bbox {bbox!r}; expected [x, y, width, height]")
        if not _valid_segmentation(ann["segmentation"]):
            raise AnnotationError(f"{path}: {where} has a malformed segmentation; expected polygons "
                                  "[[x1, y1, x2, y2, ...], ...] or an RLE {'size': [h, w], 'counts': ...}")
        ann.setdefault("iscrowd", 0)
        if "id" not in ann:
            ann["id"] = next_id
            next_id += 1
        if "area" not in ann:
            image = images[ann["image_id"]]
            ann["area"] = float(mask_utils.area(_to_rle(ann["segmentation"], image["height"], image["width"])))
    return data


def _valid_segmentation(segmentation: Any) -> bool:
    if isinstance(segmentation, dict):
        return "size" in segmentation and "counts" in segmentation
    return (
        isinstance(segmentation, list)
        and len(segmentation) > 0
        and all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segmentation)
    )


def _to_rle(segmentation: Any, height: int, width: int) -> dict:
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def coco_from_dict(data: dict[str, Any]) -> COCO:
    """A pycocotools COCO index over ``data``, without its console chatter."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_coco(annotation_path: str | Path, images_dir: str | Path) -> CocoDataset:
    """Read and check a COCO instances file; raise :class:`AnnotationError` naming the file and the record."""
    path = Path(annotation_path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such annotation file; check --ann")
    if not Path(images_dir).is_dir():
        raise AnnotationError(f"{images_dir}: no such image folder; check --images")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise AnnotationError(f"{path}: not a UTF-8 text file; is this the annotation JSON?") from None
    return CocoDataset(path, Path(images_dir), coco_from_dict(validate_coco(data, path)))
