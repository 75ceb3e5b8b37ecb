"""COCO evaluation against pycocotools itself, on coco128-seg."""

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import COCO128, SHARED
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolact.data.coco import load_coco
from yolact.data.coco_classes import COCO_CLASSES
from yolact.errors import YolactError
from yolact.evaluation.evaluator import (
    METRIC_NAMES,
    Evaluator,
    evaluate_agreement,
    evaluate_records,
    match_categories,
)
from yolact.evaluation.job import EvalJob, run_evaluation
from yolact.inference.options import InferenceOptions
from yolact.inference.results import Prediction

ANN = COCO128 / "annotations" / "instances_all.json"
IMAGES = COCO128 / "images"


@pytest.fixture(scope="module")
def dataset():
    return load_coco(ANN, IMAGES)


def gt_as_detections(dataset, degrade: bool = False) -> list[dict]:
    """Ground truth as COCO results; degraded: boxes shifted by a third of their size, masks eroded."""
    import cv2

    records = []
    for ann in dataset.coco.dataset["annotations"]:
        mask = dataset.coco.annToMask(ann)
        x, y, w, h = ann["bbox"]
        if degrade:
            x, y = x + w / 3, y + h / 3
            mask = cv2.erode(mask, np.ones((7, 7), np.uint8))
        rle = mask_utils.encode(np.asfortranarray(mask))
        records.append({"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": [x, y, w, h],
                        "score": 1.0 - 1e-4 * (ann["id"] % 97), "segmentation": {
                            "size": rle["size"], "counts": rle["counts"].decode("ascii")}})
    return records


def pycocotools_stats(ann_file: Path, results_file: Path, iou_type: str,
                      iou_thresholds: list[float] | None = None) -> np.ndarray:
    """pycocotools called directly, as its own docs show (a segm results file has no bbox field)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        results = json.loads(results_file.read_text())
        if iou_type == "segm":
            results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        evaluator = COCOeval(gt, gt.loadRes(results), iou_type)
        if iou_thresholds is not None:
            evaluator.params.iouThrs = np.array(iou_thresholds)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[:6]


def test_ground_truth_scores_ap_one(dataset) -> None:
    result = evaluate_records(dataset, gt_as_detections(dataset))
    for iou_type in ("bbox", "segm"):
        assert getattr(result, iou_type)["AP"] == pytest.approx(1.0)
        assert getattr(result, iou_type)["AP50"] == pytest.approx(1.0)
    assert len(result.per_class) == 71
    assert all(row["bbox"] == pytest.approx(1.0) and row["segm"] == pytest.approx(1.0)
               for row in result.per_class.values())


def test_degraded_detections_score_lower_and_equal_pycocotools(dataset, tmp_path: Path) -> None:
    records = gt_as_detections(dataset, degrade=True)
    results_file = tmp_path / "degraded.json"
    results_file.write_text(json.dumps(records))
    result = evaluate_records(dataset, copy.deepcopy(records))
    assert 0 < result.bbox["AP"] < 0.9 and 0 < result.segm["AP"] < 0.9
    for iou_type in ("bbox", "segm"):
        figures = getattr(result, iou_type)
        expected = pycocotools_stats(ANN, results_file, iou_type)
        actual = [figures[m] for m in METRIC_NAMES if m != "AP70"]
        np.testing.assert_allclose(actual, expected, atol=1e-12)
        # AP70: pycocotools' AP over the one threshold 0.70.
        only_70 = pycocotools_stats(ANN, results_file, iou_type, [0.7])
        assert figures["AP70"] == pytest.approx(only_70[0], abs=1e-12) and 0 < figures["AP70"] < figures["AP50"]
        by_iou = result.ap_by_iou[iou_type]
        assert list(by_iou) == [f"{0.5 + 0.05 * i:.2f}" for i in range(10)]
        assert (by_iou["0.50"], by_iou["0.70"], by_iou["0.75"]) == (figures["AP50"], figures["AP70"], figures["AP75"])
        assert np.mean(list(by_iou.values())) == pytest.approx(figures["AP"], abs=1e-12)
    json.dumps(result.to_dict())  # every figure is plain JSON


def test_crowd_regions_are_ignored_not_false_positives(tmp_path: Path) -> None:
    square = [[10, 10, 50, 10, 50, 50, 10, 50]]
    crowd_rle = mask_utils.encode(np.asfortranarray(np.pad(np.ones((30, 30), np.uint8), ((60, 10), (60, 10)))))
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "segmentation": square,
             "area": 1600, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [60, 60, 30, 30], "area": 900, "iscrowd": 1,
             "segmentation": {"size": crowd_rle["size"], "counts": crowd_rle["counts"].decode("ascii")}},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    dataset = load_coco(tmp_path / "ann.json", tmp_path)
    hit = gt_as_detections(dataset)[:1]
    on_crowd = dict(gt_as_detections(dataset)[1], score=0.99)  # scores above the true positive
    result = evaluate_records(dataset, [*hit, on_crowd])
    assert result.bbox["AP"] == pytest.approx(1.0) and result.segm["AP"] == pytest.approx(1.0)
    assert result.per_class["person"]["num_instances"] == 1  # crowd regions are not counted as instances


def test_images_without_annotations_count_their_false_positives(dataset) -> None:
    empty_images = [i for i in dataset.image_ids if not dataset.coco.getAnnIds(imgIds=[i])]
    assert len(empty_images) == 2
    records = gt_as_detections(dataset)
    false_positive = dict(records[0], image_id=empty_images[0], score=1.0)
    worse = evaluate_records(dataset, [*records, false_positive])
    assert worse.bbox["AP"] < 1.0


def test_no_detections_score_zero(dataset) -> None:
    result = evaluate_records(dataset, [], image_ids=[9, 25])
    assert result.bbox["AP"] == 0.0 and result.segm["AP"] == 0.0


def test_categories_match_by_name_and_mismatch_is_an_error(dataset, tmp_path: Path) -> None:
    mapping = match_categories(COCO_CLASSES, dataset)
    assert mapping[0] == 1 and mapping[79] == 90 and len(mapping) == 80
    voc = load_coco(SHARED / "data" / "labelme-voc-instseg" / "annotations" / "instances.json",
                    SHARED / "data" / "labelme-voc-instseg" / "images")
    with pytest.raises(YolactError, match=r"cannot predict: sofa \(id 18\)"):
        Evaluator(voc, COCO_CLASSES)
    # A model of the dataset's own classes, in another order and id space, maps by name.
    names = [c["name"] for c in reversed(voc.categories)]
    assert match_categories(names, voc)[0] == voc.categories[-1]["id"]


def test_evaluation_job_end_to_end(make_official_checkpoint, tmp_path: Path) -> None:
    # A few coco128 images with random official-format weights, one listed image missing on disk: the pipeline,
    # not the score (random weights score near 0).
    data = json.loads((COCO128 / "annotations" / "instances_val.json").read_text())
    data["images"] = data["images"][:3]
    data["images"].append({"id": 999999, "file_name": "missing.jpg", "width": 640, "height": 480})
    ids = {i["id"] for i in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    ann = tmp_path / "subset.json"
    ann.write_text(json.dumps(data))
    metrics, dets = tmp_path / "metrics.json", tmp_path / "dets.json"
    options = InferenceOptions(score_threshold=0.0, top_k=20, device="cpu")
    result = run_evaluation(EvalJob(make_official_checkpoint("yolact_resnet50"), ann, IMAGES, options=options,
                                    json=dets, metrics=metrics, progress=False)).result
    assert result.num_images == 3 and len(result.skipped) == 1 and "box AP" in result.format_table(per_class=True)
    figures = json.loads(metrics.read_text())
    assert set(figures["bbox"]) == set(METRIC_NAMES) == set(figures["segm"])
    assert all(-1 <= v <= 1 for t in ("bbox", "segm") for v in figures[t].values())
    assert figures["num_skipped"] == 1 and figures["per_class"]
    records = json.loads(dets.read_text())
    assert records and all("bbox" in r and "segmentation" in r for r in records)
    assert {r["image_id"] for r in records} <= ids - {999999}
    with contextlib.redirect_stdout(io.StringIO()):
        COCO(str(ann)).loadRes(str(dets))  # pycocotools reads it


def _prediction(boxes: list[list[int]], class_ids: list[int], scores: list[float], size: int = 64) -> Prediction:
    masks = np.zeros((len(boxes), size, size), bool)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes, strict=True):
        mask[y1:y2, x1:x2] = True
    return Prediction(np.array(boxes, np.int64).reshape(-1, 4), np.array(scores, np.float32),
                      np.array(class_ids, np.int64), [COCO_CLASSES[i] for i in class_ids],
                      np.array(class_ids, np.int64) + 1, masks, (size, size))


def test_agreement_is_one_for_identical_and_lower_for_moved_detections() -> None:
    reference = [_prediction([[4, 4, 30, 30], [30, 30, 60, 60]], [0, 2], [0.9, 0.8]),
                 _prediction([[10, 10, 40, 50], [0, 0, 8, 8]], [1, 1], [0.7, 0.1])]  # 0.1: below min_score
    same = evaluate_agreement(reference, reference, COCO_CLASSES)
    assert same.bbox["AP"] == pytest.approx(1.0) and same.segm["AP"] == pytest.approx(1.0)
    assert sorted(same.per_class) == ["bicycle", "car", "person"]
    moved = [_prediction([[4, 4, 30, 30], [36, 36, 64, 64]], [0, 2], [0.9, 0.8]),  # the car shifted
             _prediction([[10, 10, 40, 50]], [3], [0.7])]  # the bicycle called a motorcycle
    result = evaluate_agreement(reference, moved, COCO_CLASSES)
    assert result.per_class["person"]["segm"] == pytest.approx(1.0)
    assert result.per_class["bicycle"]["segm"] == pytest.approx(0.0)
    assert 0.0 < result.per_class["car"]["bbox"] < 1.0
    assert result.segm["AP"] < 0.7
    with pytest.raises(YolactError, match="no detections scoring"):
        evaluate_agreement(reference, reference, COCO_CLASSES, min_score=0.95)


def test_box_ap_ranks_by_box_score_and_mask_ap_by_score() -> None:
    """YOLACT++ records carry the class score as box_score and the re-scored one as score (the authors' eval)."""
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 64}],
            "categories": [{"id": 1, "name": "person"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 8, 24, 24], "area": 576.0,
                             "iscrowd": 0, "segmentation": [[8, 8, 32, 8, 32, 32, 8, 32]]}]}
    from yolact.data.coco import CocoDataset, coco_from_dict

    dataset = CocoDataset(Path("a.json"), Path("."), coco_from_dict(data))
    good, bad = _prediction([[8, 8, 32, 32]], [0], [1.0]), _prediction([[36, 36, 60, 60]], [0], [1.0])
    records = []
    for prediction, score, box_score in ((good, 0.5, 0.9), (bad, 0.9, 0.5)):
        record = prediction.to_coco(1)[0]
        record.update(score=score, box_score=box_score)
        records.append(record)
    result = evaluate_records(dataset, records)
    assert result.bbox["AP"] == pytest.approx(1.0)  # the right box ranked first by its class score
    assert result.segm["AP"] == pytest.approx(0.5, abs=0.01)  # the wrong mask ranked first by the re-scored one


def test_evaluation_of_yolact_plus_scores_boxes_and_masks_apart(make_official_checkpoint, tmp_path: Path) -> None:
    data = json.loads((COCO128 / "annotations" / "instances_val.json").read_text())
    data["images"] = data["images"][:2]
    ids = {i["id"] for i in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    ann = tmp_path / "subset.json"
    ann.write_text(json.dumps(data))
    dets = tmp_path / "dets.json"
    options = InferenceOptions(score_threshold=0.0, top_k=20, device="cpu", backend="pytorch")
    result = run_evaluation(EvalJob(make_official_checkpoint("yolact_plus_resnet50"), ann, IMAGES, options=options,
                                    json=dets, progress=False)).result
    assert result.num_images == 2 and result.bbox and result.segm
    records = json.loads(dets.read_text())
    assert records and all("box_score" in r for r in records)
    assert any(abs(r["score"] - r["box_score"]) > 1e-6 for r in records)  # masks re-scored, boxes not
