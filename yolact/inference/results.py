"""Per-image prediction results, and every form they are written in: COCO records (RLE or polygons), polygons
with holes, YOLO-seg lines, labelme files, instance and semantic maps, supervision Detections, overlays."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from yolact.errors import YolactError
from yolact.inference.polygons import MaskPolygon, bridge_rings, mask_to_polygons

SEGMENTATIONS = ("rle", "polygon")
# labelme's file format version that these files follow (labelme 5 reads them).
LABELME_VERSION = "5.5.0"


@dataclass
class Prediction:
    """One image's detections at the original image size, sorted by descending score."""

    boxes_xyxy: np.ndarray  # [N, 4] int64 pixel corners (truncated, clamped to the image), as the authors
    scores: np.ndarray  # [N] float32
    class_ids: np.ndarray  # [N] int64, contiguous 0..num_classes-1
    class_names: list[str]  # [N]
    category_ids: np.ndarray  # [N] int64, the dataset's category ids (COCO's 1-90 for official weights)
    masks: np.ndarray  # [N, H, W] bool
    image_size: tuple[int, int]  # (height, width)
    source: str | None = None  # the file it came from, when it came from one
    # YOLACT++: the class scores, where ``scores`` are re-scored by the masks' predicted IoU (box AP ranks by
    # these, mask AP by ``scores``, as the authors evaluate). None where the two are the same.
    box_scores: np.ndarray | None = None
    # [N, 4] int64 (x1, y1, x2, y2; ends exclusive): every True pixel of mask i lies inside box i, so encoding and
    # drawing read each mask only there. None: found by scanning the masks when needed.
    mask_bounds_xyxy: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def describe(self, max_items: int = 5) -> str:
        """One line: ``photo.jpg: 3 detections: person 0.93, dog 0.88, ...``."""
        labels = [f"{n} {s:.2f}" for n, s in zip(self.class_names[:max_items], self.scores[:max_items], strict=True)]
        more = ", ..." if len(self) > max_items else ""
        head = f"{self.source or 'image'}: {len(self)} detections"
        return f"{head}: {', '.join(labels)}{more}" if labels else head

    def bounds(self) -> np.ndarray:
        """[N, 4] int64 boxes (ends exclusive) holding each mask's pixels."""
        return self.mask_bounds_xyxy if self.mask_bounds_xyxy is not None else mask_bounds(self.masks)

    def polygons(self, tolerance: float = 0.0) -> list[list[MaskPolygon]]:
        """Per instance, one :class:`MaskPolygon` per connected part of its mask (outer ring and holes, in pixel
        coordinates), largest first; exact (rasterised again, the same pixels) unless ``tolerance`` > 0
        simplifies them to within that many pixels. An empty mask has none."""
        return [mask_to_polygons(mask[y1:y2, x1:x2], tolerance, (x1, y1))
                for mask, (x1, y1, x2, y2) in zip(self.masks, self.bounds().tolist(), strict=True)]

    def to_coco(self, image_id: int, segmentation: str = "rle", tolerance: float = 0.0) -> list[dict[str, Any]]:
        """COCO results records: image_id, category_id, bbox [x, y, w, h], score, segmentation and the extra
        contiguous class_index.

        ``segmentation="rle"`` (the default): compressed RLE, counts as ASCII, exact. ``"polygon"``: COCO's polygon
        lists, one per part of the mask; COCO polygons cannot express holes, so a ring's hole comes back filled
        (and pycocotools' ``loadRes`` reads only RLE results: evaluate with RLE)."""
        if segmentation not in SEGMENTATIONS:
            raise ValueError(f"--segmentation {segmentation!r}: choose one of {', '.join(SEGMENTATIONS)}")
        if segmentation == "rle":
            segmentations: list[Any] = encode_masks(self.masks, self.mask_bounds_xyxy)
        else:
            segmentations = [[_flat(part.exterior) for part in parts] for parts in self.polygons(tolerance)]
        records = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (int(v) for v in self.boxes_xyxy[i])
            records.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(self.category_ids[i]),
                    "class_index": int(self.class_ids[i]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(self.scores[i]),
                    "segmentation": segmentations[i],
                }
            )
            if self.box_scores is not None:
                records[-1]["box_score"] = float(self.box_scores[i])
        return records

    def to_yolo(self, tolerance: float = 0.0) -> list[str]:
        """YOLO-seg label lines, ``class x1 y1 x2 y2 ...`` normalised by the image size, one per instance with a
        non-empty mask. One polygon per line: the parts of a mask are joined by zero-width bridges, and holes
        cannot be written (a ring comes back filled)."""
        height, width = self.image_size
        scale = np.array([width, height], dtype=np.float64)
        lines = []
        for class_id, parts in zip(self.class_ids.tolist(), self.polygons(tolerance), strict=True):
            if parts:
                points = np.clip(bridge_rings([part.exterior for part in parts]) / scale, 0.0, 1.0)
                lines.append(" ".join([str(class_id), *(f"{v:.6f}" for v in points.ravel())]))
        return lines

    def to_labelme(self, image_path: str | Path | None = None, relative_to: str | Path | None = None,
                   tolerance: float = 0.0) -> dict[str, Any]:
        """A labelme file's contents: one polygon shape per part of each mask, the parts of instance i sharing
        ``group_id`` i (labelme2coco joins them again), labelled with the class name, the score in
        ``description``; ``imagePath`` relative to ``relative_to`` (the folder the JSON goes in), no embedded
        image. labelme polygons cannot have holes: a ring's hole comes back filled."""
        image_path = image_path if image_path is not None else self.source
        if image_path is None:
            raise ValueError("to_labelme needs the image's path (the prediction was not made from a file)")
        shown = os.path.relpath(image_path, relative_to) if relative_to is not None else Path(image_path).name
        shapes = []
        for i, parts in enumerate(self.polygons(tolerance)):
            for part in parts:
                shapes.append({"label": self.class_names[i], "points": part.exterior.tolist(), "group_id": i,
                               "description": f"score {float(self.scores[i]):.4f}", "shape_type": "polygon",
                               "flags": {}, "mask": None})
        height, width = self.image_size
        return {"version": LABELME_VERSION, "flags": {}, "shapes": shapes,
                "imagePath": Path(shown).as_posix(), "imageData": None, "imageHeight": height, "imageWidth": width}

    def instance_map(self) -> np.ndarray:
        """[H, W] uint16: 0 for background, i + 1 where instance i (in score order) is; where masks overlap the
        better-scoring instance is kept."""
        return self._paint(np.arange(1, len(self) + 1))

    def semantic_map(self) -> np.ndarray:
        """[H, W] uint16: 0 for background, class index + 1 per pixel (the better-scoring instance where masks
        overlap)."""
        return self._paint(self.class_ids + 1)

    def _paint(self, values: np.ndarray) -> np.ndarray:
        out = np.zeros(self.image_size, dtype=np.uint16)
        bounds = self.bounds().tolist()
        # Worst first, so that the best-scoring instance ends on top.
        for i in reversed(range(len(self))):
            x1, y1, x2, y2 = bounds[i]
            window = self.masks[i, y1:y2, x1:x2]
            out[y1:y2, x1:x2][window] = values[i]
        return out

    def to_supervision(self) -> Any:
        """A ``supervision.Detections`` (xyxy, mask, confidence, class_id, and ``data["class_name"]``); needs
        ``pip install 'yolact[supervision]'``."""
        try:
            import supervision
        except ImportError:
            raise YolactError("to_supervision needs the supervision package: pip install 'yolact[supervision]'"
                              ) from None
        return supervision.Detections(xyxy=self.boxes_xyxy.astype(np.float32), mask=self.masks,
                                      confidence=self.scores.astype(np.float32), class_id=self.class_ids,
                                      data={"class_name": np.array(self.class_names, dtype=object)})

    def plot(self, image_bgr: np.ndarray | None = None) -> np.ndarray:
        """The overlay (masks, boxes, labels) on ``image_bgr``, or on the image file the prediction came from:
        BGR uint8, as ``yolact predict --output`` writes it."""
        from yolact.data.images import read_image
        from yolact.inference.drawing import draw_instances

        if image_bgr is None:
            if self.source is None:
                raise ValueError("plot needs the image (the prediction was not made from a file)")
            image_bgr = read_image(self.source)
        # draw_instances names class i by names[i]: the names of the classes present, at their indices.
        present = dict(zip(self.class_ids.tolist(), self.class_names, strict=True))
        names = [present.get(i, str(i)) for i in range(max(present, default=-1) + 1)]
        return draw_instances(image_bgr, self.boxes_xyxy, self.scores, self.class_ids, names, self.masks,
                              mask_bounds_xyxy=self.mask_bounds_xyxy)


def _flat(points: np.ndarray) -> list[float]:
    return [float(v) for v in points.ravel()]


def mask_bounds(masks: np.ndarray) -> np.ndarray:
    """Boolean masks [N, H, W] -> the tightest boxes [N, 4] int64 (x1, y1, x2, y2; ends exclusive) around their
    True pixels; (0, 0, 0, 0) for an empty mask."""
    masks = np.asarray(masks, dtype=bool)
    rows, columns = masks.any(axis=2), masks.any(axis=1)
    bounds = np.stack(
        (
            columns.argmax(axis=1),
            rows.argmax(axis=1),
            masks.shape[2] - columns[:, ::-1].argmax(axis=1),
            masks.shape[1] - rows[:, ::-1].argmax(axis=1),
        ),
        axis=1,
    ).astype(np.int64)
    bounds[~rows.any(axis=1)] = 0
    return bounds


def encode_masks(masks: np.ndarray, bounds_xyxy: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Boolean masks [N, H, W] -> compressed COCO RLEs ``{"size": [H, W], "counts": str}``, the strings
    pycocotools' ``encode`` gives.

    ``bounds_xyxy`` [N, 4] (ends exclusive) holds each mask's True pixels (the predictor's
    ``Prediction.mask_bounds_xyxy``; found by :func:`mask_bounds` when None). COCO runs go down the columns; the
    runs are counted only inside the box, where a mask can change value, and pycocotools compresses them: the
    same RLE as encoding the whole image, many times faster for detections that cover a small part of it (video
    at 100 detections a frame).
    """
    masks = np.asarray(masks, dtype=bool)
    if len(masks) == 0:
        return []
    _, height, width = masks.shape
    bounds = mask_bounds(masks) if bounds_xyxy is None else np.asarray(bounds_xyxy)
    rles = []
    for mask, (x1, y1, x2, y2) in zip(masks, bounds.tolist(), strict=True):
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        runs = _column_runs(mask[y1:y2, x1:x2], x1, y1, height, width)
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": runs}, height, width)
        rles.append({"size": [height, width], "counts": rle["counts"].decode("ascii")})
    return rles


def _column_runs(window: np.ndarray, x1: int, y1: int, height: int, width: int) -> list[int]:
    """COCO's alternating run lengths (zeros first) of a [height, width] mask that is False outside ``window``,
    its rows y1.. and columns x1.. ."""
    rows, columns = window.shape
    total = height * width
    if rows == 0 or columns == 0:
        return [total]
    # Column-major with a False pixel above and below each column: a run can then only start inside the window
    # or just below it, and every start maps to its index in the whole image.
    padded = np.zeros((columns, rows + 2), dtype=bool)
    padded[:, 1:-1] = window.T
    flat = padded.ravel()
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    if starts.size == 0:
        return [total]
    column, row = np.divmod(starts, rows + 2)
    positions = (x1 + column) * height + (y1 + row - 1)
    # A window as tall as the image: a run that ends at the foot of one column and one that starts at the top of
    # the next are one run (the two starts fall on the same pixel).
    repeated = positions[1:] == positions[:-1]
    if repeated.any():
        drop = np.zeros(positions.size, dtype=bool)
        drop[1:] |= repeated
        drop[:-1] |= repeated
        positions = positions[~drop]  # a mask's first start never repeats: never empty
    if positions[-1] == total:  # a run of ones ends at the image's last pixel: no zeros run follows
        positions = positions[:-1]
    return np.diff(positions, prepend=0, append=total).tolist()
