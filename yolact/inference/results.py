"""Per-image prediction results and their COCO results-format records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


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

    def to_coco(self, image_id: int) -> list[dict[str, Any]]:
        """COCO results records: image_id, category_id, bbox [x, y, w, h], score, segmentation (compressed RLE,
        counts as ASCII) and the extra contiguous class_index."""
        rles = encode_masks(self.masks, self.mask_bounds_xyxy)
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
                    "segmentation": rles[i],
                }
            )
            if self.box_scores is not None:
                records[-1]["box_score"] = float(self.box_scores[i])
        return records


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
