"""Predict on image files: overlays, one COCO results JSON, a progress bar, and bad files skipped, not fatal."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from tqdm import tqdm

from yolact.data.images import list_images, read_image
from yolact.engine.predictor import Predictor
from yolact.engine.results import Prediction, image_ids_for
from yolact.engine.visualize import draw_instances
from yolact.errors import ImageReadError, YolactError
from yolact.io import atomic_write


@dataclass
class PredictSummary:
    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one message per image that could not be read
    num_detections: int = 0


def resolve_sources(source: str | Path) -> list[Path]:
    """An image file -> [it]; a folder -> its images sorted by name. Raises a one-line error otherwise."""
    path = Path(source)
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise YolactError(f"{path}: no images in this folder (looked for .jpg, .jpeg, .png, .bmp, .tif, .webp)")
        return images
    if path.is_file():
        return [path]
    raise YolactError(f"{path}: no such file or folder; give an image file or a folder of images")


def predict_files(
    predictor: Predictor,
    paths: list[Path],
    output_dir: Path | None = None,
    json_path: Path | None = None,
    progress: bool = True,
    report: Callable[[str], None] = tqdm.write,
) -> PredictSummary:
    """Run ``predictor`` on every path; write overlays to ``output_dir`` (same file names) and all detections to
    ``json_path`` as one COCO results list. Unreadable images are reported through ``report`` and skipped."""
    summary = PredictSummary()
    records: list[dict] = []
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
    image_ids = image_ids_for(paths)
    bar = tqdm(paths, desc="predict", unit="img", disable=not progress or len(paths) < 2)
    for path, image_id in zip(bar, image_ids, strict=True):
        try:
            image = read_image(path)
        except ImageReadError as exc:
            summary.skipped.append(str(exc))
            report(f"skipped {exc}")
            continue
        prediction = predictor.predict_arrays([image], [str(path)])[0]
        summary.predictions.append(prediction)
        summary.num_detections += len(prediction)
        if json_path is not None:
            records.extend(prediction.to_coco(image_id))
        if output_dir is not None:
            overlay = draw_instances(
                image, prediction.boxes_xyxy, prediction.scores, prediction.class_ids, predictor.class_names,
                prediction.masks, mask_bounds_xyxy=prediction.mask_bounds_xyxy,
            )
            out = output_dir / path.name
            if not cv2.imwrite(str(out), overlay):
                cv2.imwrite(str(out.with_suffix(".jpg")), overlay)
    if json_path is not None:
        atomic_write(json_path, lambda f: f.write(json.dumps(records).encode()))
    return summary
