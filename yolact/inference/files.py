"""Predict on image files: overlays and COCO results saved as each image finishes, a progress bar, and bad files
skipped, not fatal."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from yolact.data.images import list_images, read_image
from yolact.errors import ImageReadError, YolactError
from yolact.inference.drawing import draw_instances
from yolact.inference.forms import ImageForms
from yolact.inference.predictor import Predictor
from yolact.inference.results import Prediction
from yolact.inference.shards import ShardWriter
from yolact.io import atomic_write
from yolact.outputs import (
    JsonListWriter,
    OutputError,
    WorkInterrupted,
    check_output_dir,
    check_output_file,
    make_dir,
    os_error_line,
)


@dataclass
class PredictSummary:
    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one message per image that could not be read
    num_detections: int = 0
    image_id_rule: str = ""
    resumed: int = 0  # images a --resume found done


def resolve_sources(source: str | Path) -> list[Path]:
    """An image file -> [it]; a folder -> its images sorted by name. Raises a one-line error otherwise."""
    path = Path(source)
    if path.is_dir():
        try:
            images = list_images(path)
        except OSError as exc:
            raise YolactError(f"cannot list the images: {os_error_line(exc)}") from None
        if not images:
            raise YolactError(f"{path}: no images in this folder (looked for .jpg, .jpeg, .png, .bmp, .tif, .webp)")
        return images
    if path.is_file():
        return [path]
    raise YolactError(f"{path}: no such file or folder; give an image file or a folder of images")


def check_predict_outputs(source: str | Path, paths: Sequence[Path], output: Path | None, json_path: Path | None,
                          other_inputs: Sequence[Path | None] = (), video_output: Path | None = None,
                          forms: ImageForms | None = None) -> None:
    """Check every output of a prediction run before the model is loaded: writable, of the right kind, and
    never one of the inputs (``source``, its images ``paths``, ``other_inputs`` such as the weights), the
    per-image ``forms`` included."""
    inputs = [Path(source), *paths, *(p for p in other_inputs if p is not None)]
    if forms is not None:
        forms.check(inputs, [p.name for p in paths], taken=[None if video_output is not None else output],
                    files=[("--json", json_path), ("--output", video_output)])
    if video_output is not None:
        check_output_file(video_output, "--output", inputs)
    elif output is not None:
        check_output_dir(output, "--output", inputs, planned_names=[p.name for p in paths])
    if json_path is not None:
        check_output_file(json_path, "--json", inputs)
        if video_output is not None and Path(json_path).resolve() == Path(video_output).resolve():
            raise OutputError(f"--json {json_path}: is also the --output video; give two different files")


def write_overlay(out: Path, overlay: np.ndarray) -> Path:
    """Encode ``overlay`` in the format its suffix names (JPEG when OpenCV cannot write that one) and write it
    atomically; a failure is an :class:`OutputError` naming the file."""
    ok, data = cv2.imencode(out.suffix, overlay)
    if not ok:
        out = out.with_suffix(".jpg")
        ok, data = cv2.imencode(".jpg", overlay)
    if not ok:
        raise OutputError(f"{out}: OpenCV cannot encode this overlay image")
    try:
        atomic_write(out, lambda f: f.write(data.tobytes()))
    except OSError as exc:
        raise OutputError(os_error_line(exc)) from None
    return out


def predict_files(
    predictor: Predictor,
    paths: list[Path],
    output_dir: Path | None = None,
    json_path: Path | None = None,
    progress: bool = True,
    report: Callable[[str], None] = tqdm.write,
    image_ids: ImageIds | None = None,
    keep_predictions: bool = True,
    forms: ImageForms | None = None,
    segmentation: str = "rle",
    shard_writer: ShardWriter | None = None,
) -> PredictSummary:
    """Run ``predictor`` on every path; write overlays to ``output_dir`` (same file names), the per-image
    ``forms`` (YOLO-seg, labelme, mask PNGs) and detections to ``json_path`` as one COCO results list, with
    ``segmentation`` "rle" or "polygon". Each image's outputs reach the disk as it finishes, so an interrupt or
    a failed write keeps every image before it. Unreadable images are reported through ``report`` and skipped.

    ``image_ids`` (default :func:`image_ids_for` ``(paths)``) gives each image's COCO id. ``keep_predictions``
    False keeps no masks in memory (the summary then counts only). ``shard_writer`` gets each image's records as
    one line (``--shard``); the images it already holds (``--resume``) are skipped.
    """
    summary = PredictSummary()
    ids = image_ids if image_ids is not None else image_ids_for(paths)
    summary.image_id_rule = ids.rule
    if output_dir is not None:
        make_dir(output_dir)
    results = JsonListWriter(json_path) if json_path is not None else None
    done = 0
    bar = tqdm(paths, desc="predict", unit="img", disable=not progress or len(paths) < 2)
    try:
        for path, image_id in zip(bar, ids.ids, strict=True):
            if shard_writer is not None and path.name in shard_writer.done:
                summary.resumed += 1
                continue
            try:
                image = read_image(path)
            except ImageReadError as exc:
                summary.skipped.append(str(exc))
                report(f"skipped {exc}")
                continue
            prediction = predictor.predict_arrays([image], [str(path)])[0]
            if keep_predictions:
                summary.predictions.append(prediction)
            summary.num_detections += len(prediction)
            if output_dir is not None:
                overlay = draw_instances(
                    image, prediction.boxes_xyxy, prediction.scores, prediction.class_ids, predictor.class_names,
                    prediction.masks, mask_bounds_xyxy=prediction.mask_bounds_xyxy,
                )
                write_overlay(output_dir / path.name, overlay)
            if forms is not None:
                forms.write(prediction, path.stem, path)
            if results is not None or shard_writer is not None:  # last: an image in the results has all its outputs
                tolerance = forms.tolerance if forms is not None else 0.0
                records = prediction.to_coco(image_id, segmentation, tolerance)
                if results is not None:
                    results.extend(records)
                if shard_writer is not None:
                    shard_writer.add(image_id, path.name, records)
            done += 1
    except KeyboardInterrupt:
        saved = [f"detections of {results.saved_description()} in {json_path}"] if results is not None else []
        if output_dir is not None:
            saved.append(f"{done} overlay(s) in {output_dir}")
        if shard_writer is not None:
            saved.append(f"{done} image(s) in {shard_writer.path} (run again with --resume to continue)")
        raise WorkInterrupted(f"after {done} of {len(paths)} image(s)"
                                 + (f"; saved: {', '.join(saved)}" if saved else "")) from None
    finally:
        bar.close()
        if results is not None:
            results.close()
    return summary


@dataclass(frozen=True)
class ImageIds:
    """The COCO image id of every image of a run, and the rule that gave them (for the run's summary line)."""

    ids: list[int]
    rule: str


def image_ids_for(paths: Sequence[str | Path]) -> ImageIds:
    """COCO image ids for files that cannot collide: the number in each file name (``000000000009.jpg`` -> 9; the
    last number when there are several) when every file has one and they are all different, else each file's
    1-based position in ``paths`` (``cat1.jpg`` and ``dog1.jpg`` would both be 1)."""
    numbers = []
    for path in paths:
        found = re.findall(r"\d+", Path(path).stem)
        numbers.append(int(found[-1]) if found else None)
    if None not in numbers and len(set(numbers)) == len(numbers):
        return ImageIds(numbers, "image ids from the numbers in the file names")  # type: ignore[arg-type]
    return ImageIds(list(range(1, len(paths) + 1)),
                    "image ids by position in name order (the file names' numbers are missing or repeat)")


def read_image_ids(annotation_path: Path, paths: Sequence[Path]) -> ImageIds:
    """Image ids from a COCO file's ``images`` (matched by file name, or by the path's tail where the file names
    hold folders), so results load with pycocotools' ``loadRes`` against that file."""
    try:
        data = json.loads(Path(annotation_path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise YolactError(f"--image-ids: {os_error_line(exc)}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise YolactError(f"--image-ids {annotation_path}: not a COCO JSON file ({str(exc).splitlines()[0]})"
                          ) from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise YolactError(f"--image-ids {annotation_path}: has no 'images' list; give a COCO annotation file")
    by_name: dict[str, int] = {}
    for index, record in enumerate(images):
        if not (isinstance(record, dict) and isinstance(record.get("file_name"), str)
                and isinstance(record.get("id"), int) and not isinstance(record.get("id"), bool)):
            raise YolactError(f"--image-ids {annotation_path}: images[{index}] needs an integer 'id' and a "
                              "'file_name'")
        by_name[Path(record["file_name"]).name] = record["id"]
    ids = []
    for path in paths:
        if path.name not in by_name:
            raise YolactError(f"--image-ids {annotation_path}: has no image named {path.name!r}; give the "
                              "annotation file these images belong to")
        ids.append(by_name[path.name])
    return ImageIds(ids, f"ids from {annotation_path}")
