"""labelme folders converted to COCO instances, as labelme's own labelme2coco groups them.

A labelme file (``<image>.json``) holds ``shapes``: polygons, rectangles or circles with a ``label`` and an
optional ``group_id``. The shapes of one label that share a group id are one instance (its parts); a shape
without a group id is an instance of its own. Labels ``__ignore__`` and ``_background_`` are not instances.
Files written by ``yolact predict --save-labelme`` are of this kind, so predictions corrected in labelme train
again without a script.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from yolact.data.coco import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, AnnotationError, near_image_side, read_utf8, short_repr
from yolact.io import write_json
from yolact.outputs import OutputError, check_output_file

NOT_INSTANCES = ("__ignore__", "_background_")
SHAPE_TYPES = ("polygon", "rectangle", "circle")


def _points(shape: dict, where: str) -> list[tuple[float, float]]:
    points = shape.get("points")
    if not isinstance(points, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                     and math.isfinite(v) for v in p) for p in points):
        raise AnnotationError(f"{where}: 'points' must be a list of [x, y] numbers")
    return [(float(x), float(y)) for x, y in points]


def _polygon(shape: dict, where: str, height: int, width: int) -> list[float]:
    """A shape as one COCO polygon (flat x, y list), as labelme2coco writes it; it must lie near its image."""
    kind = shape.get("shape_type") or "polygon"
    if kind not in SHAPE_TYPES:
        raise AnnotationError(f"{where}: a {short_repr(kind)} shape is not an instance outline; use "
                              f"{', '.join(SHAPE_TYPES)} (or label it __ignore__)")
    points = _points(shape, where)
    if kind == "rectangle":
        if len(points) != 2:
            raise AnnotationError(f"{where}: a rectangle has 2 points (two corners), not {len(points)}")
        (x1, x2), (y1, y2) = sorted((points[0][0], points[1][0])), sorted((points[0][1], points[1][1]))
        return _near_image([x1, y1, x2, y1, x2, y2, x1, y2], where, height, width)
    if kind == "circle":
        if len(points) != 2:
            raise AnnotationError(f"{where}: a circle has 2 points (centre and one on the circle), not {len(points)}")
        (cx, cy), (px, py) = points
        radius = math.hypot(px - cx, py - cy)
        _near_image([cx - radius, cy - radius, cx + radius, cy + radius], where, height, width)
        # Segments within a pixel of the arc (at least 12).
        count = max(int(math.pi / math.acos(1 - 1 / radius)) if radius > 1 else 12, 12)
        angles = 2 * math.pi * np.arange(count) / count
        return np.stack((cx + radius * np.sin(angles), cy + radius * np.cos(angles)), axis=1).ravel().tolist()
    if len(points) < 3:
        raise AnnotationError(f"{where}: a polygon needs at least 3 points, has {len(points)}")
    return _near_image([v for point in points for v in point], where, height, width)


def _near_image(polygon: list[float], where: str, height: int, width: int) -> list[float]:
    xs, ys = polygon[0::2], polygon[1::2]
    if not (near_image_side(min(xs), max(xs), width) and near_image_side(min(ys), max(ys), height)):
        raise AnnotationError(f"{where}: the shape lies far outside its {width}x{height} image; fix its points or "
                              "imageWidth and imageHeight")
    return polygon


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_utf8(path, "this labelme file"))
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); is it a labelme file?"
                              ) from None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise AnnotationError(f"{path}: not a labelme file (no 'shapes' list)")
    for key in ("imageHeight", "imageWidth"):
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_IMAGE_SIDE:
            raise AnnotationError(f"{path}: '{key}' must be the image's size in pixels (1 to {MAX_IMAGE_SIDE}), got "
                                  f"{short_repr(value)}")
    if data["imageHeight"] * data["imageWidth"] > MAX_IMAGE_PIXELS:
        raise AnnotationError(f"{path}: a {data['imageWidth']}x{data['imageHeight']} image has more pixels than "
                              "OpenCV reads; fix imageWidth and imageHeight")
    if not isinstance(data.get("imagePath"), str) or not data["imagePath"]:
        raise AnnotationError(f"{path}: 'imagePath' must name the image file")
    return data


def labelme_to_coco(folder: str | Path, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """A COCO instances dict for every ``*.json`` labelme file in ``folder`` (sorted by name; image ids 1..N,
    ``file_name`` the file's ``imagePath``). Categories: ``class_names`` with ids 1..N (a label outside them is an
    error), or every label in order of first appearance. Segmentations are the shapes' polygons (a circle as a
    polygon within a pixel of it); bbox and area are pycocotools' of their union."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(f"{folder}: no such labelme folder")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise AnnotationError(f"{folder}: no labelme .json files in this folder")
    names: list[str] = list(class_names) if class_names is not None else []
    images, annotations = [], []
    for image_id, path in enumerate(files, start=1):
        data = _read_file(path)
        height, width = data["imageHeight"], data["imageWidth"]
        images.append({"id": image_id, "file_name": Path(data["imagePath"]).as_posix(), "width": width,
                       "height": height})
        instances: dict[tuple[str, Any], list[list[float]]] = {}
        for index, shape in enumerate(data["shapes"]):
            where = f"{path}: shape {index}"
            if not isinstance(shape, dict) or not isinstance(shape.get("label"), str) or not shape["label"]:
                raise AnnotationError(f"{where}: a shape needs a 'label' (the class name)")
            label = shape["label"]
            if label in NOT_INSTANCES:
                continue
            if label not in names:
                if class_names is not None:
                    raise AnnotationError(f"{where}: label {short_repr(label)} is not one of the --names given")
                names.append(label)
            group = shape.get("group_id")
            if group is not None and (not isinstance(group, int) or isinstance(group, bool)):
                raise AnnotationError(f"{where}: 'group_id' must be a whole number or null, got {short_repr(group)}")
            key = (label, ("shape", index) if group is None else ("group", group))
            instances.setdefault(key, []).append(_polygon(shape, where, height, width))
        for (label, _), polygons in instances.items():
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": names.index(label) + 1,
                "segmentation": polygons, "area": float(mask_utils.area(rle)),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0,
            })
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def convert_labelme(folder: str | Path, out_json: str | Path, class_names: Sequence[str] | None = None) -> Path:
    """Write :func:`labelme_to_coco`'s dict to ``out_json`` atomically, after checking that it can be written and
    is none of the inputs."""
    check_output_file(out_json, "--output", [folder])
    if Path(out_json).resolve().parent == Path(folder).resolve():
        raise OutputError(f"--output {out_json}: inside the labelme folder, where it would be read as a labelme file "
                          "next time; write it elsewhere (an input folder is read, not written)")
    return write_json(out_json, labelme_to_coco(folder, class_names))
