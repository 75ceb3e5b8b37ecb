"""YOLO-seg datasets (Ultralytics' layout) converted to COCO instances.

A YOLO-seg dataset is a folder of images and a folder of labels with one ``<image stem>.txt`` per image, one
instance per line: ``class x1 y1 x2 y2 ...``, a polygon in coordinates normalised by the image's width and height
(at least 3 points). A line with exactly 4 coordinates is a YOLO detection box ``class cx cy w h`` and becomes a
rectangle. An image without a label file (or with an empty one) is a background image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from yolact.data.coco import MAX_ID, AnnotationError, read_utf8, short_repr
from yolact.data.coco_classes import COCO_CLASSES
from yolact.data.images import list_images, read_image
from yolact.io import write_json
from yolact.outputs import check_output_file

# Normalised coordinates may overshoot [0, 1] by rounding; beyond this the file is not what it claims to be.
_COORD_TOLERANCE = 1e-3
# Without class names, class ids up to the largest become names class0..classN: a bound keeps one corrupt id from
# making millions of them (LVIS, the largest common label set, has 1203 classes).
MAX_UNNAMED_CLASSES = 10_000


def _read_label_text(path: Path) -> str:
    return read_utf8(path, "this label file")


def _class_id(token: str, where: str, num_classes: int | None) -> int:
    # isascii: str.isdigit also accepts digits such as '²' that int() rejects.
    if not (token.isascii() and token.isdigit()):
        raise AnnotationError(f"{where}: the class must be a non-negative integer, got {short_repr(token)}")
    digits = token.lstrip("0") or "0"
    shown = digits if len(digits) <= 20 else f"{digits[:10]}... ({len(digits)} digits)"
    # Python refuses int() of thousands of digits; anything of more than 18 is beyond every limit here anyway.
    class_id = int(digits) if len(digits) <= 18 else MAX_ID
    if num_classes is not None and class_id >= num_classes:
        raise AnnotationError(f"{where}: class {shown} but only {num_classes} class names were given")
    if num_classes is None and class_id >= MAX_UNNAMED_CLASSES:
        raise AnnotationError(f"{where}: class {shown} is not below {MAX_UNNAMED_CLASSES}; give the class names "
                              "(names: in the dataset YAML) or fix the line")
    return class_id


def _parse_label_file(path: Path, num_classes: int | None) -> list[tuple[int, list[float]]]:
    """(class id, normalised polygon [x1, y1, x2, y2, ...]) per line; AnnotationError names file and line."""
    instances = []
    # Lines end at \n, \r\n or \r only, as editors number them (str.splitlines also splits at \f, \x1c, ...).
    text = _read_label_text(path).replace("\r\n", "\n").replace("\r", "\n")
    for number, line in enumerate(text.split("\n"), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        class_id = _class_id(fields[0], where, num_classes)
        try:
            coords = [float(v) for v in fields[1:]]
        except ValueError:
            raise AnnotationError(f"{where}: coordinates must be numbers: {short_repr(line.strip())}") from None
        if not all(math.isfinite(v) for v in coords):
            raise AnnotationError(f"{where}: coordinates must be finite numbers: {short_repr(line.strip())}")
        box = len(coords) == 4
        if box:  # a detection label: centre x, centre y, width, height
            cx, cy, w, h = coords
            if w < 0 or h < 0:
                raise AnnotationError(f"{where}: a box 'class cx cy w h' needs a width and height of at least 0")
            coords = [cx - w / 2, cy - h / 2, cx + w / 2, cy - h / 2, cx + w / 2, cy + h / 2, cx - w / 2, cy + h / 2]
        elif len(coords) < 6 or len(coords) % 2:
            raise AnnotationError(f"{where}: expected 'class x1 y1 x2 y2 x3 y3 ...' (a polygon of at least 3 "
                                  f"points, or 'class cx cy w h'), got {len(coords)} coordinates")
        if any(not (-_COORD_TOLERANCE <= v <= 1 + _COORD_TOLERANCE) for v in coords):
            what = "the box reaches outside the image: " if box else ""
            raise AnnotationError(f"{where}: {what}coordinates must be normalised to [0, 1] by the image size")
        # A polygon of zero area is kept, as COCO keeps such annotations; training drops boxes under 4 px.
        instances.append((class_id, [min(max(v, 0.0), 1.0) for v in coords]))
    return instances


def _image_ids(images: list[Path]) -> list[int]:
    """The number in every file name (``000000000009.jpg`` -> 9) when all are distinct numbers, else 1..N."""
    # ASCII digits only (int() rejects some that str.isdigit accepts, such as '²'), and ids that fit COCO's.
    if all(p.stem.isascii() and p.stem.isdigit() for p in images):
        ids = [int(p.stem) for p in images]
        if len(set(ids)) == len(ids) and max(ids, default=0) <= MAX_ID:
            return ids
    return list(range(1, len(images) + 1))


def default_class_names(max_class_id: int) -> list[str]:
    """COCO's 80 names when every class id is below 80 (Ultralytics' COCO exports), else class0 .. classN."""
    if max_class_id < len(COCO_CLASSES):
        return list(COCO_CLASSES)
    return [f"class{i}" for i in range(max_class_id + 1)]


def yolo_to_coco(images_dir: str | Path, labels_dir: str | Path, class_names: Sequence[str] | None = None
                 ) -> dict[str, Any]:
    """A COCO instances dict for a YOLO-seg dataset.

    Images: every image file directly in ``images_dir`` (sorted by name; width and height read from the file, as
    :func:`read_image` decodes it), ids from the file names (see :func:`_image_ids`). Annotations: polygons in
    pixels, bbox = the polygon's extent, area = pycocotools' mask area, iscrowd 0. Categories: ``class_names``
    (default :func:`default_class_names`) with ids 1..N, class c -> category c + 1. Label files without an image
    are ignored.
    """
    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    if not images_dir.is_dir():
        raise AnnotationError(f"{images_dir}: no such image folder")
    if not labels_dir.is_dir():
        raise AnnotationError(f"{labels_dir}: no such label folder")
    image_paths = list_images(images_dir)
    num_classes = len(class_names) if class_names is not None else None
    labels = {}
    for path in image_paths:
        label_path = labels_dir / f"{path.stem}.txt"
        labels[path] = _parse_label_file(label_path, num_classes) if label_path.is_file() else []

    images, annotations = [], []
    for image_id, path in zip(_image_ids(image_paths), image_paths, strict=True):
        height, width = read_image(path).shape[:2]
        images.append({"id": image_id, "file_name": path.name, "width": width, "height": height})
        for class_id, coords in labels[path]:
            polygon = [round(v * (width if i % 2 == 0 else height), 2) for i, v in enumerate(coords)]
            xs, ys = polygon[0::2], polygon[1::2]
            x0, y0 = min(xs), min(ys)
            area = mask_utils.area(mask_utils.merge(mask_utils.frPyObjects([polygon], height, width)))
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": class_id + 1,
                "segmentation": [polygon], "area": float(area),
                "bbox": [x0, y0, round(max(xs) - x0, 2), round(max(ys) - y0, 2)], "iscrowd": 0,
            })

    if class_names is None:
        class_names = default_class_names(max((a["category_id"] - 1 for a in annotations), default=0))
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def convert_yolo(images_dir: str | Path, labels_dir: str | Path, out_json: str | Path,
                 class_names: Sequence[str] | None = None) -> Path:
    """Write :func:`yolo_to_coco`'s dict to ``out_json`` atomically (a crash leaves no partial file), after
    checking that it can be written and is none of the inputs."""
    check_output_file(out_json, "--output", [images_dir, labels_dir])
    return write_json(out_json, yolo_to_coco(images_dir, labels_dir, class_names))
