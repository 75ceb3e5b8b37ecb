"""Synthetic instance-segmentation scenes for tests, benchmarks and the demo.

Three classes of distinct shape and colour (reddish ellipses "circle", greenish rotated rectangles "square",
bluish triangles "triangle"), object sizes spanning 5x, objects overlapping in a painter's order (the masks are
the visible parts), on textured backgrounds (noise, gradients, stripes), with pixel noise over everything. A
scene is a pure function of its generator; a few milliseconds per 256 x 256 image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from yolact.io import write_json
from yolact.outputs import check_output_dir

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle")
# Per-class colour centres (BGR) and the spread of each instance's colour around them: classes stay separable
# by colour as well as by shape.
_CLASS_COLOURS = np.array([(45, 45, 200), (60, 185, 60), (200, 100, 35)], dtype=np.float64)
_COLOUR_SPREAD = 35.0
# An instance whose visible part is less than this fraction of its shape is left out of the scene entirely
# (not drawn), so no drawn object is missing from the annotations.
_MIN_VISIBLE = 0.3


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Float BGR background: uniform noise, a linear gradient, or stripes, in muted colours."""
    kind = int(rng.integers(3))
    # Greyish with a mild tint, so that backgrounds do not compete with the classes' colours.
    base = rng.uniform(70, 190) + rng.uniform(-20, 20, size=3)
    if kind == 0:  # blotchy noise: coarse noise upsampled, mostly in brightness
        grid = (max(2, height // 16), max(2, width // 16))
        coarse = rng.normal(0.0, 20.0, size=(*grid, 1)) + rng.normal(0.0, 6.0, size=(*grid, 3))
        return base + cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy) / max(height, width)
    if kind == 1:  # gradient between two colours
        other = rng.uniform(70, 190) + rng.uniform(-20, 20, size=3)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        return base + t[..., None] * (other - base)
    period = rng.uniform(0.04, 0.2)  # stripes, as a fraction of the image side
    stripes = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * t / period))
    return base + (stripes[..., None] - 0.5) * rng.uniform(20, 60)


def _shape_mask(rng: np.random.Generator, cls: int, center: np.ndarray, extent: float, height: int,
                width: int) -> np.ndarray:
    """A filled shape of class ``cls`` with its largest extent about ``extent`` pixels, as a uint8 mask."""
    mask = np.zeros((height, width), dtype=np.uint8)
    angle = rng.uniform(0, 180)
    cx, cy = float(center[0]), float(center[1])
    if cls == 0:  # ellipse, axis ratio 0.7-1
        axes = (max(1, round(extent / 2)), max(1, round(extent / 2 * rng.uniform(0.7, 1.0))))
        cv2.ellipse(mask, (round(cx), round(cy)), axes, angle, 0, 360, 1, thickness=-1)
    elif cls == 1:  # rectangle, side ratio 0.7-1, rotated
        ratio = rng.uniform(0.7, 1.0)
        side = extent / np.sqrt(1 + ratio**2)  # the diagonal is the extent
        box = cv2.boxPoints(((cx, cy), (side, side * ratio), angle))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
    else:  # triangle: three points near equilateral, rotated
        radius = extent / np.sqrt(3)
        theta = np.deg2rad(angle) + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.25, 0.25, 3)
        points = np.stack([cx + radius * np.cos(theta), cy + radius * np.sin(theta)], axis=1)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask


def make_scene(rng: np.random.Generator, size: tuple[int, int] = (256, 256), num_objects: tuple[int, int] = (3, 8),
               extent_range: tuple[float, float] = (0.08, 0.4), noise: float = 6.0,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: (image BGR uint8 [H, W, 3], visible masks uint8 [G, H, W], labels int64 [G] in 0..2).

    ``num_objects`` (inclusive range) shapes are drawn back to front, each with a largest extent log-uniform in
    ``extent_range`` x min(H, W) (default 0.08-0.4: a 5x range); about half of them are placed next to an earlier
    one so that occlusions are common. Masks are the visible parts (pairwise disjoint); shapes less than 30 %
    visible are left out altogether. Instances are ordered back to front.
    """
    height, width = size
    short = min(height, width)
    count = int(rng.integers(num_objects[0], num_objects[1] + 1))
    shapes: list[np.ndarray] = []
    classes: list[int] = []
    centers: list[np.ndarray] = []
    for _ in range(count):
        cls = int(rng.integers(len(CLASS_NAMES)))
        extent = short * float(np.exp(rng.uniform(np.log(extent_range[0]), np.log(extent_range[1]))))
        if centers and rng.random() < 0.5:  # near an earlier object: overlap likely
            center = centers[int(rng.integers(len(centers)))] + rng.normal(0, extent / 2, size=2)
        else:
            center = rng.uniform([0, 0], [width, height])
        center = np.clip(center, [extent / 4, extent / 4], [width - extent / 4, height - extent / 4])
        shape = _shape_mask(rng, cls, center, extent, height, width)
        if shape.any():
            shapes.append(shape)
            classes.append(cls)
            centers.append(center)
    colours = [np.clip(_CLASS_COLOURS[c] + rng.uniform(-_COLOUR_SPREAD, _COLOUR_SPREAD, 3), 0, 255) for c in classes]

    # Front to back: a shape is kept if enough of it shows past the kept shapes in front of it. Dropping a shape
    # only uncovers those behind it, so one pass decides.
    covered = np.zeros((height, width), dtype=bool)
    kept = []
    for i in reversed(range(len(shapes))):
        visible = shapes[i].astype(bool) & ~covered
        if visible.sum() >= _MIN_VISIBLE * shapes[i].sum():
            kept.append((i, visible))
            covered |= visible
    kept.reverse()

    image = _background(rng, height, width)
    for i, visible in kept:
        image[visible] = colours[i]
    image += rng.normal(0.0, noise, size=image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    masks = np.stack([v for _, v in kept]).astype(np.uint8) if kept else np.zeros((0, height, width), np.uint8)
    labels = np.array([classes[i] for i, _ in kept], dtype=np.int64)
    return image, masks, labels


def write_synthetic_coco(folder: str | Path, num_images: int, seed: int, size: tuple[int, int] = (256, 256),
                         image_format: str = "jpg", num_objects: tuple[int, int] = (3, 8),
                         extent_range: tuple[float, float] = (0.08, 0.4)) -> tuple[Path, Path]:
    """Write ``num_images`` scenes to ``folder/images`` and their COCO instances to ``folder/annotations.json``.

    Image i (ids 1..N, files ``000001.jpg`` ...) comes from the generator (seed, i), so a given seed always gives
    the same images whatever ``num_images``. Segmentations are compressed RLE; bbox and area are pycocotools'
    (the mask's tight extent and pixel count); categories "circle", "square", "triangle" have ids 1, 2, 3.
    ``image_format`` "png" writes lossless images. Returns (annotation path, images dir).
    """
    folder = check_output_dir(folder, "--output")
    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    suffix = "." + image_format.lower().lstrip(".")
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix in (".jpg", ".jpeg") else []
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        image, masks, labels = make_scene(np.random.default_rng([seed, image_id]), size, num_objects, extent_range)
        file_name = f"{image_id:06d}{suffix}"
        ok, data = cv2.imencode(suffix, image, params)
        if not ok:
            raise ValueError(f"OpenCV cannot encode {suffix!r} images; use jpg or png")
        (images_dir / file_name).write_bytes(data.tobytes())
        images.append({"id": image_id, "file_name": file_name, "width": size[1], "height": size[0]})
        for mask, label in zip(masks, labels, strict=True):
            rle = mask_utils.encode(np.asfortranarray(mask))
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                "area": float(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "iscrowd": 0,
            })
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASS_NAMES)]
    data = {"images": images, "annotations": annotations, "categories": categories}
    path = folder / "annotations.json"
    write_json(path, data)
    return path, images_dir
