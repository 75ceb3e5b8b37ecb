"""The Python API: ``yolact.load(ckpt)(image)`` on arrays, paths and lists, and the Prediction it returns."""

import json
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import COCO128
from pycocotools import mask as mask_utils

import yolact
from yolact.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES
from yolact.evaluation.benchmark import calibrate_class_layer
from yolact.evaluation.evaluator import evaluate_agreement
from yolact.inference.results import Prediction, mask_bounds

SCORE_THRESHOLD = 0.15
TOP_K = 20
IMAGE_A = COCO128 / "images" / "000000000009.jpg"  # 480 x 640
IMAGE_B = COCO128 / "images" / "000000000025.jpg"  # 426 x 640
PROTO_SIZE = 138  # prototype resolution of the 550 px configs


@pytest.fixture(scope="module")
def checkpoint(make_official_checkpoint: Callable[..., Path]) -> Path:
    return make_official_checkpoint("yolact_resnet50")


@pytest.fixture(scope="module")
def predictor(checkpoint: Path) -> yolact.Predictor:
    # The PyTorch predictor (the default, auto, runs it in OpenVINO: tests/export/test_cache.py).
    return yolact.load(checkpoint, device="cpu", score_threshold=SCORE_THRESHOLD, top_k=TOP_K, backend="pytorch")


@pytest.fixture(scope="module")
def image_a() -> np.ndarray:
    image = cv2.imread(str(IMAGE_A), cv2.IMREAD_COLOR)
    assert image is not None, IMAGE_A
    return image


@pytest.fixture(scope="module")
def result_a(predictor: yolact.Predictor) -> Prediction:
    """Image A, given as a path."""
    result = predictor(IMAGE_A)
    assert isinstance(result, Prediction)
    return result


def assert_same(actual: Prediction, expected: Prediction) -> None:
    """Equal detections: same classes, scores within 1e-4, boxes within 1 px, masks (nearly) the same."""
    assert actual.image_size == expected.image_size
    assert len(actual) == len(expected)
    np.testing.assert_array_equal(actual.class_ids, expected.class_ids)
    assert actual.class_names == expected.class_names
    np.testing.assert_allclose(actual.scores, expected.scores, rtol=0, atol=1e-4)
    assert np.abs(actual.boxes_xyxy.astype(np.int64) - expected.boxes_xyxy.astype(np.int64)).max(initial=0) <= 1
    assert actual.masks.shape == expected.masks.shape
    for got, want in zip(actual.masks, expected.masks, strict=True):
        union = (got | want).sum()
        assert union == 0 or (got & want).sum() / union >= 0.99


def assert_identical(actual: Prediction, expected: Prediction) -> None:
    assert actual.image_size == expected.image_size
    np.testing.assert_array_equal(actual.boxes_xyxy, expected.boxes_xyxy)
    np.testing.assert_array_equal(actual.scores, expected.scores)
    np.testing.assert_array_equal(actual.class_ids, expected.class_ids)
    assert actual.class_names == expected.class_names
    np.testing.assert_array_equal(actual.category_ids, expected.category_ids)
    np.testing.assert_array_equal(actual.masks, expected.masks)


def test_result_fields(result_a: Prediction, image_a: np.ndarray) -> None:
    height, width = image_a.shape[:2]
    n = len(result_a)
    assert n > 0  # the checkpoint is made to detect things; an empty result would test nothing
    assert result_a.image_size == (height, width)
    assert result_a.source == str(IMAGE_A)

    boxes = result_a.boxes_xyxy
    assert boxes.shape == (n, 4) and np.issubdtype(boxes.dtype, np.integer)
    x1, y1, x2, y2 = boxes.T
    assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= width).all() and (y2 <= height).all()
    assert (x1 <= x2).all() and (y1 <= y2).all()

    scores = result_a.scores
    assert scores.shape == (n,) and np.issubdtype(scores.dtype, np.floating)
    assert (np.diff(scores) <= 0).all()  # sorted, best first
    assert (scores > SCORE_THRESHOLD).all() and (scores <= 1).all()

    ids = result_a.class_ids
    assert ids.shape == (n,) and np.issubdtype(ids.dtype, np.integer)
    assert ((ids >= 0) & (ids < 80)).all()
    assert result_a.class_names == [COCO_CLASSES[i] for i in ids]
    np.testing.assert_array_equal(result_a.category_ids, [COCO_CATEGORY_IDS[i] for i in ids])

    masks = result_a.masks
    assert masks.dtype == np.bool_ and masks.shape == (n, height, width)
    assert masks.any(axis=(1, 2)).sum() >= n // 2  # most detections have a mask


def test_masks_lie_within_their_boxes(result_a: Prediction) -> None:
    """Masks are cropped by their box (plus a prototype pixel, blurred by the upsampling): masks that were
    transposed, flipped or not cropped would spill far outside."""
    height, width = result_a.image_size
    margin = 2 * math.ceil(max(height, width) / PROTO_SIZE) + 1
    checked = 0
    for box, mask in zip(result_a.boxes_xyxy, result_a.masks, strict=True):
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            continue
        x1, y1, x2, y2 = (int(v) for v in box)
        assert xs.min() >= x1 - margin and xs.max() <= x2 + margin
        assert ys.min() >= y1 - margin and ys.max() <= y2 + margin
        checked += 1
    assert checked > 0


def test_mask_bounds_hold_every_mask_pixel(result_a: Prediction) -> None:
    """The predictor's mask bounds (what encoding and drawing read) contain each mask's True pixels."""
    bounds = result_a.mask_bounds_xyxy
    assert bounds is not None and bounds.shape == (len(result_a), 4)
    tight = mask_bounds(result_a.masks)
    filled = result_a.masks.any(axis=(1, 2))
    assert filled.any()
    assert (bounds[filled, :2] <= tight[filled, :2]).all() and (bounds[filled, 2:] >= tight[filled, 2:]).all()


def test_array_and_path_give_the_same_result(predictor: yolact.Predictor, image_a: np.ndarray,
                                             result_a: Prediction) -> None:
    before = image_a.copy()
    from_array = predictor(image_a)
    assert isinstance(from_array, Prediction)
    assert from_array.source is None
    assert_identical(from_array, result_a)
    np.testing.assert_array_equal(image_a, before)  # the caller's array is not modified
    # a str path works as well as a Path
    assert_identical(predictor(str(IMAGE_A)), result_a)


def test_optimised_path_gives_the_plain_paths_detections(checkpoint: Path, predictor: yolact.Predictor,
                                                          result_a: Prediction) -> None:
    """BatchNorm folded, channels-last, lazy Fast NMS and region-only mask pasting (the default) against the plain
    network with whole-map pasting: the same detections."""
    assert predictor.network.channels_last and predictor.network.module is not predictor.model
    plain = yolact.load(checkpoint, device="cpu", score_threshold=SCORE_THRESHOLD, top_k=TOP_K, optimize=False)
    assert plain.network.module is plain.model
    assert len(result_a) > 0
    assert_same(plain(IMAGE_A), result_a)


def test_bf16_inference_stays_close_to_fp32(checkpoint: Path, predictor: yolact.Predictor,
                                           result_a: Prediction) -> None:
    """bf16 autocast (the CPU's AMX path; CUDA's too): outputs handed on in fp32, close to fp32's, and the same
    boxes for the most part. (These random weights make nearly empty masks, so mask AP would measure noise.)"""
    half = yolact.load(checkpoint, device="cpu", score_threshold=SCORE_THRESHOLD, top_k=TOP_K, precision="bf16")
    image = cv2.imread(str(IMAGE_A))
    with torch.inference_mode():
        output, reference = half.run_network(half.prepare([image])), predictor.run_network(predictor.prepare([image]))
    for name in ("loc", "class_logits", "mask_coeffs", "prototypes"):
        got, want = getattr(output, name), getattr(reference, name)
        assert got.dtype == torch.float32, name
        assert not torch.equal(got, want), name  # really ran in bf16
        assert torch.nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0) > 0.999, name
    result = half(IMAGE_A)
    assert len(result) > 0
    agreement = evaluate_agreement([result_a], [result], COCO_CLASSES, min_score=SCORE_THRESHOLD)
    assert agreement.bbox["AP50"] > 0.7


def test_bad_precisions_are_clear_errors(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="fp16 inference needs a CUDA device"):
        yolact.load(checkpoint, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="choose one of fp32, fp16, bf16"):
        yolact.load(checkpoint, device="cpu", precision="int4")


def test_top_k(checkpoint: Path, result_a: Prediction) -> None:
    assert len(result_a) == TOP_K  # this image has more than TOP_K detections above the threshold
    top5 = yolact.load(checkpoint, device="cpu", score_threshold=SCORE_THRESHOLD, top_k=5, backend="pytorch")(IMAGE_A)
    assert len(top5) == 5
    np.testing.assert_array_equal(top5.class_ids, result_a.class_ids[:5])
    np.testing.assert_array_equal(top5.scores, result_a.scores[:5])
    np.testing.assert_array_equal(top5.boxes_xyxy, result_a.boxes_xyxy[:5])
    np.testing.assert_array_equal(top5.masks, result_a.masks[:5])


def test_score_threshold_is_strict(checkpoint: Path, result_a: Prediction) -> None:
    scores = result_a.scores
    # a threshold equal to a detection's score drops that detection and keeps those above it
    k = next(i for i in range(8, len(scores)) if scores[i - 1] > scores[i])
    threshold = float(scores[k])
    result = yolact.load(checkpoint, device="cpu", score_threshold=threshold, top_k=TOP_K, backend="pytorch")(IMAGE_A)
    assert (result.scores > threshold).all()
    assert len(result) == k
    np.testing.assert_array_equal(result.class_ids, result_a.class_ids[:k])
    np.testing.assert_array_equal(result.scores, scores[:k])


def test_list_batched_equals_one_by_one(predictor: yolact.Predictor, result_a: Prediction) -> None:
    image_b = cv2.imread(str(IMAGE_B), cv2.IMREAD_COLOR)
    batched = predictor([IMAGE_A, image_b], batch_size=2)
    assert isinstance(batched, list) and len(batched) == 2
    assert all(isinstance(p, Prediction) for p in batched)
    assert batched[0].source == str(IMAGE_A) and batched[1].source is None
    assert batched[1].image_size == image_b.shape[:2] != result_a.image_size
    assert_same(batched[0], result_a)
    single_b = predictor(image_b)
    assert len(single_b) > 0
    assert_same(batched[1], single_b)


def test_grayscale_and_alpha_inputs(predictor: yolact.Predictor, image_a: np.ndarray, result_a: Prediction,
                                    tmp_path: Path) -> None:
    height, width = image_a.shape[:2]
    gray = cv2.cvtColor(image_a, cv2.COLOR_BGR2GRAY)
    alpha = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))  # transparent to opaque
    bgra = np.dstack([image_a, alpha])
    gray_png, rgba_png = tmp_path / "gray.png", tmp_path / "rgba.png"
    assert cv2.imwrite(str(gray_png), gray) and cv2.imwrite(str(rgba_png), bgra)
    assert cv2.imread(str(gray_png), cv2.IMREAD_UNCHANGED).shape == (height, width)
    assert cv2.imread(str(rgba_png), cv2.IMREAD_UNCHANGED).shape == (height, width, 4)

    results = predictor([gray, gray[:, :, None], gray_png, bgra, rgba_png])
    assert isinstance(results, list) and len(results) == 5
    for result in results:
        assert result.image_size == (height, width)
        assert result.masks.shape == (len(result), height, width)
    gray_2d, gray_3d, from_gray_png, from_bgra, from_rgba_png = results
    assert len(gray_2d) > 0
    assert_identical(gray_3d, gray_2d)
    assert_identical(from_gray_png, gray_2d)
    # alpha is dropped, not blended: the colour channels give what the BGR image gives
    assert_identical(from_bgra, result_a)
    assert_identical(from_rgba_png, result_a)


def test_no_detections(make_official_checkpoint: Callable[..., Path], image_a: np.ndarray) -> None:
    # class_gain=0: softmax is near-uniform, no class score clears the 0.05 candidate threshold
    checkpoint = make_official_checkpoint("yolact_resnet50", class_gain=0.0)
    height, width = image_a.shape[:2]
    result = yolact.load(checkpoint, device="cpu", score_threshold=0.0)(image_a)
    assert len(result) == 0
    assert result.image_size == (height, width)
    assert result.boxes_xyxy.shape == (0, 4)
    assert result.scores.shape == (0,) and result.class_ids.shape == (0,) and result.category_ids.shape == (0,)
    assert result.class_names == []
    assert result.masks.shape == (0, height, width) and result.masks.dtype == np.bool_
    assert result.to_coco(9) == []


def test_to_coco(result_a: Prediction) -> None:
    height, width = result_a.image_size
    records = result_a.to_coco(image_id=9)
    assert len(records) == len(result_a) > 0
    json.loads(json.dumps(records))  # plain JSON types only
    for i, record in enumerate(records):
        assert {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(record)
        assert record["image_id"] == 9 and type(record["image_id"]) is int
        assert record["category_id"] == COCO_CATEGORY_IDS[result_a.class_ids[i]]
        assert type(record["category_id"]) is int
        x1, y1, x2, y2 = (int(v) for v in result_a.boxes_xyxy[i])
        assert record["bbox"] == [x1, y1, x2 - x1, y2 - y1]
        assert all(type(v) is int for v in record["bbox"])
        assert type(record["score"]) is float
        assert record["score"] == pytest.approx(float(result_a.scores[i]), abs=1e-6)
        segmentation = record["segmentation"]
        assert segmentation["size"] == [height, width]
        assert isinstance(segmentation["counts"], str)
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
        decoded = mask_utils.decode(rle)
        assert decoded.shape == (height, width)
        np.testing.assert_array_equal(decoded.astype(bool), result_a.masks[i])


@pytest.mark.slow
def test_compiled_network_gives_the_same_detections(tmp_path: Path) -> None:
    """torch.compile (inductor, with freezing on CPU) of the optimised network: the same detections."""
    torch.manual_seed(0)
    config = yolact.get_config("yolact_resnet18")
    model = yolact.build_yolact(config)
    image = cv2.imread(str(IMAGE_A))
    calibrate_class_layer(model, yolact.Predictor.from_model(model, config, device="cpu", optimize=False).prepare(
        [image]))
    eager = yolact.Predictor.from_model(model, config, device="cpu", score_threshold=0.3, top_k=TOP_K)
    compiled = yolact.Predictor.from_model(model, config, device="cpu", score_threshold=0.3, top_k=TOP_K,
                                          compile=True)
    expected = eager(image)
    assert len(expected) > 0
    assert_same(compiled(image), expected)
