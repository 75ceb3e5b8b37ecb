"""Where a model goes wrong: each detection a true positive or a false positive with its reason, and the ground
truths it missed, at mask IoU 0.5, in the spirit of TIDE (Bolya et al., ECCV 2020).

A detection (best score first) that overlaps an unmatched ground truth of its class by IoU >= 0.5 is a true
positive, matched greedily as COCO matches. Any other is, in TIDE's order of tests (foreground IoU 0.5,
background IoU 0.1):

    localisation    IoU in [0.1, 0.5) with a ground truth of its class: the right object, poorly outlined
    classification  IoU >= 0.5 with a ground truth of another class: the right place, the wrong class
    duplicate       IoU >= 0.5 with a ground truth of its class that a better detection already took
    both            IoU in [0.1, 0.5) with a ground truth of another class
    background      IoU < 0.1 with every ground truth: nothing there

and a ground truth is missed when no detection matched it and no localisation or classification error points
at it (those errors already account for it). Detections on a crowd region of their class are ignored, as COCO
ignores them. TIDE weighs each error by the AP it costs; here they are counted, over the detections scoring at
least a threshold (the overlays show them), which is what one looks at to see what goes wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from yolact.inference.files import write_overlay
from yolact.outputs import JsonListWriter, make_dir

FOREGROUND_IOU = 0.5
BACKGROUND_IOU = 0.1
FALSE_POSITIVE_KINDS = ("localisation", "classification", "duplicate", "both", "background")
ERROR_KINDS = (*FALSE_POSITIVE_KINDS, "missed")
ERRORS_FILE = "errors.json"


@dataclass(frozen=True)
class ImageErrors:
    """One image's verdicts: ``true_positives`` (detection, ground truth), ``false_positives`` (detection, kind,
    the ground truth it is nearest to or None), ``missed`` ground truths, ``ignored`` detections (on crowds);
    indices into the image's detections and ground truths."""

    true_positives: list[tuple[int, int]] = field(default_factory=list)
    false_positives: list[tuple[int, str, int | None]] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = {"true_positive": len(self.true_positives), **dict.fromkeys(ERROR_KINDS, 0)}
        for _, kind, _ in self.false_positives:
            counts[kind] += 1
        counts["missed"] = len(self.missed)
        return counts


def classify_detections(ious: np.ndarray, detection_classes: Sequence[int], scores: Sequence[float],
                        truth_classes: Sequence[int], crowd: Sequence[bool],
                        foreground: float = FOREGROUND_IOU, background: float = BACKGROUND_IOU) -> ImageErrors:
    """The verdicts of one image from ``ious`` [D, G] (mask IoU of each detection with each ground truth; for a
    crowd, COCO's intersection over the detection's area), the detections' classes and scores and the ground
    truths' classes and crowd flags."""
    ious = np.asarray(ious, dtype=np.float64).reshape(len(detection_classes), len(truth_classes))
    classes, truths = np.asarray(detection_classes), np.asarray(truth_classes)
    crowd = np.asarray(crowd, dtype=bool)
    used = np.zeros(len(truths), dtype=bool)
    explained = np.zeros(len(truths), dtype=bool)
    result = ImageErrors()
    for d in sorted(range(len(classes)), key=lambda i: -scores[i]):
        same = (truths == classes[d]) & ~crowd
        free = same & ~used & (ious[d] >= foreground)
        if free.any():
            g = int(np.where(free, ious[d], -1).argmax())
            used[g] = True
            result.true_positives.append((d, g))
            continue
        if ((truths == classes[d]) & crowd & (ious[d] >= foreground)).any():
            result.ignored.append(d)
            continue
        other = (truths != classes[d]) & ~crowd
        same_best, same_iou = _best(ious[d], same)
        other_best, other_iou = _best(ious[d], other)
        if background <= same_iou < foreground:
            kind, nearest = "localisation", same_best
            explained[same_best] = True
        elif other_iou >= foreground:
            kind, nearest = "classification", other_best
            explained[other_best] = True
        elif same_iou >= foreground:
            kind, nearest = "duplicate", same_best
        elif background <= other_iou < foreground:
            kind, nearest = "both", other_best
        else:
            kind, nearest = "background", None
        result.false_positives.append((d, kind, nearest))
    result.missed.extend(int(g) for g in np.flatnonzero(~crowd & ~used & ~explained))
    return result


def _best(row: np.ndarray, allowed: np.ndarray) -> tuple[int | None, float]:
    if not allowed.any():
        return None, 0.0
    index = int(np.where(allowed, row, -1).argmax())
    return index, float(row[index])


def image_errors(kept: Sequence[dict[str, Any]], annotations: Sequence[dict[str, Any]], height: int,
                 width: int) -> ImageErrors:
    """The verdicts of one image's COCO results records ``kept`` (RLE, dataset category ids) against its COCO
    ``annotations``; indices refer to ``kept`` and ``annotations``."""
    truth = [_rle(a["segmentation"], height, width) for a in annotations]
    crowd = [bool(a.get("iscrowd", 0)) for a in annotations]
    detections = [{"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode("ascii")}
                  for r in kept]
    ious = mask_utils.iou(detections, truth, crowd) if detections and truth else np.zeros((len(kept), len(truth)))
    return classify_detections(np.asarray(ious), [r["category_id"] for r in kept], [r["score"] for r in kept],
                               [a["category_id"] for a in annotations], crowd)


def _rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


# Colours (BGR): true positives green, false positives red, missed ground truths amber.
_COLOURS = {"true_positive": (60, 180, 75), "false_positive": (48, 48, 230), "missed": (0, 170, 255)}


def draw_errors(image_bgr: np.ndarray, kept: Sequence[dict[str, Any]], annotations: Sequence[dict[str, Any]],
                errors: ImageErrors, category_names: dict[int, str]) -> np.ndarray:
    """The image with each kept detection's mask and box coloured by verdict and labelled (``FP localisation
    person 0.41``), and each missed ground truth outlined (``missed car``)."""
    out = image_bgr.copy()
    height, width = out.shape[:2]

    def paint(segmentation: Any, colour: tuple[int, int, int], label: str, outline_only: bool = False) -> None:
        mask = mask_utils.decode(_rle(segmentation, height, width)).astype(bool)
        if not outline_only:
            out[mask] = (0.55 * out[mask] + 0.45 * np.array(colour)).astype(np.uint8)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, 2 if outline_only else 1)
        ys, xs = np.nonzero(mask)
        if len(xs):
            origin = (int(xs.min()), max(int(ys.min()) - 4, 12))
            cv2.putText(out, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)

    for d, _ in errors.true_positives:
        r = kept[d]
        paint(r["segmentation"], _COLOURS["true_positive"],
              f"TP {category_names.get(r['category_id'], r['category_id'])} {r['score']:.2f}")
    for d, kind, _ in errors.false_positives:
        r = kept[d]
        paint(r["segmentation"], _COLOURS["false_positive"],
              f"FP {kind} {category_names.get(r['category_id'], r['category_id'])} {r['score']:.2f}")
    for g in errors.missed:
        a = annotations[g]
        paint(a["segmentation"], _COLOURS["missed"], f"missed {category_names.get(a['category_id'], '?')}",
              outline_only=True)
    return out


class ErrorAnalysis:
    """Collects the verdicts of a dataset's images as evaluation runs: per image an overlay (``folder/<image
    file name>``) and a line of ``folder/errors.json``, each written as the image finishes."""

    def __init__(self, folder: Path, category_names: dict[int, str], min_score: float = 0.3) -> None:
        self.folder = make_dir(folder)
        self.category_names = category_names
        self.min_score = min_score
        self.totals = {"true_positive": 0, **dict.fromkeys(ERROR_KINDS, 0)}
        self.images = 0
        self._log = JsonListWriter(folder / ERRORS_FILE)

    def add(self, image_id: int, image_bgr: np.ndarray, path: Path, records: Sequence[dict[str, Any]],
            annotations: Sequence[dict[str, Any]]) -> None:
        kept = [r for r in records if r["score"] >= self.min_score]
        height, width = image_bgr.shape[:2]
        errors = image_errors(kept, annotations, height, width)
        write_overlay(self.folder / path.name, draw_errors(image_bgr, kept, annotations, errors,
                                                            self.category_names))
        counts = errors.counts()
        for key, value in counts.items():
            self.totals[key] += value
        self.images += 1
        self._log.extend([{"image_id": image_id, "file_name": path.name, **counts,
                           "false_positives": [{"score": kept[d]["score"], "category_id": kept[d]["category_id"],
                                                "kind": kind} for d, kind, _ in errors.false_positives],
                           "missed_ids": [annotations[g].get("id") for g in errors.missed]}])

    def close(self) -> None:
        self._log.close()

    def summary(self) -> dict[str, Any]:
        """The counts over every image so far, and each false-positive kind's share of the false positives."""
        false_positives = sum(self.totals[k] for k in FALSE_POSITIVE_KINDS)
        return {"images": self.images, "min_score": self.min_score, "iou": FOREGROUND_IOU, **self.totals,
                "false_positive_share": {k: self.totals[k] / false_positives if false_positives else 0.0
                                         for k in FALSE_POSITIVE_KINDS}}

    def format_table(self) -> str:
        summary = self.summary()
        lines = [f"errors at mask IoU {FOREGROUND_IOU} over detections scoring >= {self.min_score:g} "
                 f"({self.images} images):", f"  true positives  {summary['true_positive']}"]
        for kind in FALSE_POSITIVE_KINDS:
            lines.append(f"  {kind:<15} {summary[kind]:>5}  ({100 * summary['false_positive_share'][kind]:.0f} % "
                         "of false positives)")
        lines.append(f"  missed          {summary['missed']:>5}")
        return "\n".join(lines)
