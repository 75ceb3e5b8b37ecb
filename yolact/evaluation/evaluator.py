"""COCO box and mask AP with pycocotools, for ``yolact eval`` and for validation during training.

The model's classes are matched to the dataset's categories by name, so a COCO model evaluates on any dataset
whose categories are a subset of COCO's (coco128-seg uses 71 of the 80), and a model trained on custom data on
its own dataset. A dataset category the model cannot predict is an error, not a silent zero.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from yolact.data.coco import CocoDataset, coco_from_dict
from yolact.data.images import read_image
from yolact.errors import ImageReadError, YolactError
from yolact.inference.predictor import Predictor
from yolact.inference.results import Prediction
from yolact.outputs import JsonListWriter, WorkInterrupted

# pycocotools' stats[0:6], with AP70 (the paper's Pascal figure, table 3) beside AP50 and AP75.
METRIC_NAMES = ("AP", "AP50", "AP70", "AP75", "APs", "APm", "APl")
_STATS_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
IOU_TYPES = ("bbox", "segm")


def _normalise_name(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())


def match_categories(class_names: Sequence[str], dataset: CocoDataset) -> dict[int, int]:
    """Model class index -> dataset category id, by name. Raises when the dataset's annotations use a category
    that no model class has."""
    by_name = {_normalise_name(c["name"]): c["id"] for c in dataset.categories}
    mapping = {i: by_name[_normalise_name(n)] for i, n in enumerate(class_names) if _normalise_name(n) in by_name}
    known = set(mapping.values())
    unknown = [c for c in dataset.categories if c["id"] in dataset.used_category_ids() and c["id"] not in known]
    if unknown:
        listed = ", ".join(f"{c['name']} (id {c['id']})" for c in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise YolactError(
            f"{dataset.annotation_path}: {len(unknown)} annotated categories the model cannot predict: {listed}; "
            "evaluate with a model trained on these classes"
        )
    return mapping


@dataclass
class EvalResult:
    """Every figure as pycocotools gives it (fractions in [0, 1]; -1 where COCO has no ground truth)."""

    bbox: dict[str, float]
    segm: dict[str, float]
    per_class: dict[str, dict[str, Any]]  # name -> {"category_id", "bbox", "segm", "num_instances"}
    num_images: int = 0
    skipped: list[str] = field(default_factory=list)
    # iou type -> {"0.50": AP, "0.55": AP, ..., "0.95": AP}: every IoU threshold pycocotools evaluates.
    ap_by_iou: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"bbox": self.bbox, "segm": self.segm, "ap_by_iou": self.ap_by_iou, "per_class": self.per_class,
                "num_images": self.num_images, "num_skipped": len(self.skipped)}

    def format_table(self, per_class: bool = False) -> str:
        # Percent, as COCO's papers print them; to_dict (--save-metrics) and training validation keep fractions.
        lines = [f"{'AP, %':6}" + "".join(f"{m:>8}" for m in METRIC_NAMES)]
        for iou_type in IOU_TYPES:
            values = getattr(self, iou_type)
            lines.append(f"{iou_type:6}" + "".join(f"{_percent(values[m]):>8}" for m in METRIC_NAMES))
        if per_class:
            rows = sorted(self.per_class.items(), key=lambda kv: -max(kv[1]["segm"], kv[1]["bbox"]))
            width = max((len(name) for name in self.per_class), default=5)
            lines += ["", f"{'class':{width}}  {'box AP':>7}  {'mask AP':>7}  {'GT':>5}"]
            for name, row in rows:
                lines.append(f"{name:{width}}  {_percent(row['bbox']):>7}  {_percent(row['segm']):>7}  "
                             f"{row['num_instances']:>5}")
        return "\n".join(lines)


def _percent(value: float) -> str:
    return "-" if value < 0 else f"{100 * value:.2f}"


def _run_cocoeval(dataset: CocoDataset, records: list[dict], iou_type: str, image_ids: list[int],
                  category_ids: list[int]) -> COCOeval:
    # One record carries both bbox and segmentation; loadRes takes the area from whichever it reads, so give
    # each evaluation only its own field (mask AP must use mask areas for small/medium/large).
    drop = "segmentation" if iou_type == "bbox" else "bbox"
    results = [{k: v for k, v in r.items() if k not in (drop, "box_score")} for r in records]
    if iou_type == "bbox":  # YOLACT++ records carry the class score apart: box AP ranks by it, as the authors'
        for result, record in zip(results, records, strict=True):
            result["score"] = record.get("box_score", record["score"])
    with contextlib.redirect_stdout(io.StringIO()):
        if results:
            detections = dataset.coco.loadRes(copy.deepcopy(results))
        else:  # loadRes cannot take an empty list; an empty result set scores 0 where there is ground truth
            detections = coco_from_dict({"images": dataset.coco.dataset["images"], "annotations": [],
                                         "categories": dataset.coco.dataset["categories"]})
        evaluator = COCOeval(dataset.coco, detections, iou_type)
        evaluator.params.imgIds = image_ids
        evaluator.params.catIds = category_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _ap_by_iou(evaluator: COCOeval) -> dict[str, float]:
    """AP at each IoU threshold, as pycocotools' summarize computes AP50 and AP75 (area "all", 100 detections)."""
    out = {}
    for t, threshold in enumerate(evaluator.params.iouThrs):
        values = evaluator.eval["precision"][t, :, :, 0, -1]
        values = values[values > -1]
        out[f"{threshold:.2f}"] = float(np.mean(values)) if values.size else -1.0
    return out


def _per_class_ap(evaluator: COCOeval) -> dict[int, float]:
    # precision: [IoU thresholds, recall, class, area range, max dets]; area "all", 100 detections.
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    out = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        values = precision[:, :, k]
        values = values[values > -1]
        out[category_id] = float(np.mean(values)) if values.size else -1.0
    return out


def evaluate_records(dataset: CocoDataset, records: list[dict], image_ids: Sequence[int] | None = None,
                     category_ids: Sequence[int] | None = None) -> EvalResult:
    """Box and mask AP of COCO results ``records`` (each with bbox and segmentation) against ``dataset``.

    Only ``image_ids`` are evaluated (default: all the dataset's images), over ``category_ids`` (default: all).
    """
    image_ids = list(image_ids if image_ids is not None else dataset.image_ids)
    if not image_ids:
        raise YolactError(f"{dataset.annotation_path}: no images to evaluate (none could be read)")
    category_ids = sorted(category_ids if category_ids is not None else dataset.coco.getCatIds())
    wanted_images, wanted_categories = set(image_ids), set(category_ids)
    records = [r for r in records if r["image_id"] in wanted_images and r["category_id"] in wanted_categories]
    summaries: dict[str, dict[str, float]] = {}
    per_type: dict[str, dict[int, float]] = {}
    by_iou: dict[str, dict[str, float]] = {}
    for iou_type in IOU_TYPES:
        evaluator = _run_cocoeval(dataset, records, iou_type, image_ids, category_ids)
        stats = dict(zip(_STATS_NAMES, (float(v) for v in evaluator.stats[:6]), strict=True))
        by_iou[iou_type] = _ap_by_iou(evaluator)
        summaries[iou_type] = {name: by_iou[iou_type]["0.70"] if name == "AP70" else stats[name]
                               for name in METRIC_NAMES}
        per_type[iou_type] = _per_class_ap(evaluator)
    per_class = {}
    for category_id in category_ids:
        num = len(dataset.coco.getAnnIds(imgIds=image_ids, catIds=[category_id], iscrowd=False))
        if num == 0:
            continue  # COCO has no AP for a class without ground truth
        name = dataset.coco.cats[category_id]["name"]
        per_class[name] = {"category_id": category_id, "bbox": per_type["bbox"][category_id],
                           "segm": per_type["segm"][category_id], "num_instances": num}
    return EvalResult(summaries["bbox"], summaries["segm"], per_class, num_images=len(image_ids), ap_by_iou=by_iou)


class Evaluator:
    """Collects predictions on a COCO dataset and scores them; training calls it on its validation split."""

    def __init__(self, dataset: CocoDataset, class_names: Sequence[str]) -> None:
        self.dataset = dataset
        self.class_to_category = match_categories(class_names, dataset)
        self.records: list[dict] = []
        self.image_ids: list[int] = []
        self.skipped: list[str] = []

    def add(self, image_id: int, prediction: Prediction) -> list[dict]:
        """Score ``prediction`` as image ``image_id``'s; returns its records (those the dataset can score)."""
        self.image_ids.append(image_id)
        added = []
        for record in prediction.to_coco(image_id):
            category_id = self.class_to_category.get(record["class_index"])
            if category_id is not None:  # a class the dataset does not have cannot be scored
                record["category_id"] = category_id
                added.append(record)
        self.records.extend(added)
        return added

    def evaluate(self) -> EvalResult:
        categories = sorted(set(self.class_to_category.values()))
        result = evaluate_records(self.dataset, self.records, self.image_ids, categories)
        result.skipped = list(self.skipped)
        return result

    def evaluate_image(self, predictor: Predictor, image_id: int) -> tuple[np.ndarray, Path, list[dict]] | None:
        """Predict on image ``image_id`` and add it; returns the image, its path and its records, or None for an
        unreadable or missing file (reported and counted in ``skipped``)."""
        path = self.dataset.image_path(image_id)
        try:
            image = read_image(path)
        except ImageReadError as exc:
            self.skipped.append(str(exc))
            tqdm.write(f"skipped {exc}")
            return None
        return image, path, self.add(image_id, predictor.predict_arrays([image], [str(path)])[0])

    def run(self, predictor: Predictor, progress: bool = True, limit: int | None = None,
            results: JsonListWriter | None = None,
            on_image: Callable[[int, np.ndarray, Path, list[dict]], None] | None = None) -> EvalResult:
        """Predict on every image of the dataset (unreadable or missing ones are reported, skipped and counted);
        each image's records go to ``results`` as it finishes, and to ``on_image`` (image id, image, path,
        records) when given.

        The predictor's score threshold and top-k apply: ``yolact eval``'s figures come from
        ``score_threshold=0.0`` and ``top_k=100``, COCO's own protocol."""
        for image_id in tqdm(self.dataset.image_ids[:limit], desc="eval", unit="img", disable=not progress):
            done = self.evaluate_image(predictor, image_id)
            if done is None:
                continue
            image, path, records = done
            if on_image is not None:
                on_image(image_id, image, path, records)
            if results is not None:
                results.extend(records)
        return self.evaluate()


def evaluate_predictor(predictor: Predictor, dataset: CocoDataset, json_path: Path | None = None,
                       progress: bool = True, limit: int | None = None,
                       on_image: Callable[[int, np.ndarray, Path, list[dict]], None] | None = None) -> EvalResult:
    """``yolact eval``: run, score, and optionally write all detections as one COCO results list (kept valid and
    complete up to the last finished image as it grows)."""
    evaluator = Evaluator(dataset, predictor.class_names)
    if json_path is None:
        return evaluator.run(predictor, progress, limit, on_image=on_image)
    with JsonListWriter(json_path) as results:
        try:
            return evaluator.run(predictor, progress, limit, results, on_image)
        except KeyboardInterrupt:
            raise WorkInterrupted(f"saved: detections of {results.saved_description()} in {json_path}") from None


def evaluate_agreement(reference: Sequence[Prediction], candidate: Sequence[Prediction], class_names: Sequence[str],
                       min_score: float = 0.3) -> EvalResult:
    """Box and mask AP of ``candidate``'s predictions with ``reference``'s as the ground truth, image by image.

    This measures how far an approximation (an INT8 model, bf16 arithmetic) moves the detections of the model it
    approximates, without labelled data: reference detections scoring at least ``min_score`` are the ground
    truth; identical predictions score AP 1 (100 in the table).
    """
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference predictions but {len(candidate)} candidate ones")
    images, annotations, records = [], [], []
    for image_id, (ref, cand) in enumerate(zip(reference, candidate, strict=True), start=1):
        height, width = ref.image_size
        images.append({"id": image_id, "width": width, "height": height, "file_name": ref.source or str(image_id)})
        for record in ref.to_coco(image_id):
            if record["score"] < min_score:
                continue
            area = float(mask_utils.area(record["segmentation"]))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": record["class_index"] + 1, "bbox": record["bbox"], "area": area,
                                "segmentation": record["segmentation"], "iscrowd": 0})
        for record in cand.to_coco(image_id):
            record["category_id"] = record["class_index"] + 1
            records.append(record)
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    dataset = CocoDataset(Path("reference detections"), Path("."),
                          coco_from_dict({"images": images, "annotations": annotations, "categories": categories}))
    present = sorted({a["category_id"] for a in annotations})
    if not present:
        raise YolactError(f"the reference has no detections scoring {min_score} or more to compare against")
    return evaluate_records(dataset, records, category_ids=present)
