"""Per-image prediction results and their COCO results-format records."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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
        rles = encode_masks(self.masks)
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


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """Boolean masks [N, H, W] -> compressed COCO RLEs ``{"size": [H, W], "counts": str}``, the strings
    pycocotools' ``encode`` gives.

    COCO runs go down the columns. A mask's runs are counted only over the columns it touches, the empty columns
    on either side added as one run each, and pycocotools compresses them: the same RLE as encoding the whole
    image, several times faster for detections that cover a small part of it (video at 100 detections a frame).
    """
    masks = np.asarray(masks, dtype=bool)
    if len(masks) == 0:
        return []
    _, height, width = masks.shape
    columns = masks.any(axis=1)  # [N, W]
    rles = []
    for mask, used in zip(masks, columns, strict=True):
        xs = np.flatnonzero(used)
        if xs.size == 0:
            runs = [height * width]
        else:
            x1, x2 = int(xs[0]), int(xs[-1]) + 1
            flat = mask[:, x1:x2].T.ravel()  # column-major, as COCO counts
            bounds = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]))
            runs = ([0] if flat[0] else []) + np.diff(bounds).tolist()  # runs alternate, zeros first
            runs[0] += x1 * height
            trailing = (width - x2) * height
            if trailing:
                if len(runs) % 2:  # the last run is zeros: extend it
                    runs[-1] += trailing
                else:
                    runs.append(trailing)
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": runs}, height, width)
        rles.append({"size": [height, width], "counts": rle["counts"].decode("ascii")})
    return rles


def image_ids_for(paths: Sequence[str | Path]) -> list[int]:
    """COCO image ids for files: the number in each file name (``000000000009.jpg`` -> 9; the last number when
    there are several), or the file's 1-based position when its name has no number."""
    ids = []
    for position, path in enumerate(paths, start=1):
        found = re.findall(r"\d+", Path(path).stem)
        ids.append(int(found[-1]) if found else position)
    return ids
