"""Tests for yolact.ops.nms against brute-force Python loops of the same semantics."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torchvision.ops import nms as torchvision_nms

from yolact.ops import cross_class_fast_nms, fast_nms, traditional_nms
from yolact.ops.nms import top_k_per_class

Detection = tuple[int, int, float]  # (candidate index, class id, score)


def random_boxes(generator: torch.Generator, num: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Random valid xyxy boxes crowded around the centre, so that many pairs overlap above usual thresholds."""
    centre = 0.35 + 0.3 * torch.rand(num, 2, generator=generator, dtype=dtype)
    size = 0.1 + 0.3 * torch.rand(num, 2, generator=generator, dtype=dtype)
    return torch.cat((centre - size / 2, centre + size / 2), dim=1)


def grid_boxes(num: int) -> torch.Tensor:
    """``num`` disjoint boxes in a row: no pair overlaps, so no NMS suppresses anything."""
    x1 = torch.arange(num, dtype=torch.float64) / num
    y1 = torch.zeros(num, dtype=torch.float64)
    return torch.stack((x1, y1, x1 + 0.5 / num, y1 + 0.5), dim=1)


def loop_iou(box_a: list[float], box_b: list[float]) -> float:
    inter = max(0.0, min(box_a[2], box_b[2]) - max(box_a[0], box_b[0])) * max(
        0.0, min(box_a[3], box_b[3]) - max(box_a[1], box_b[1])
    )
    area_a = (box_a[2] - box_a[0]) * (box_a[3] - box_a[1])
    area_b = (box_b[2] - box_b[0]) * (box_b[3] - box_b[1])
    return inter / (area_a + area_b - inter)


def loop_iou_plus_one(box_a: list[float], box_b: list[float]) -> float:
    """IoU as the authors' Cython NMS computes it: integer-pixel convention, +1 in every width and height."""
    width = max(0.0, min(box_a[2], box_b[2]) - max(box_a[0], box_b[0]) + 1)
    height = max(0.0, min(box_a[3], box_b[3]) - max(box_a[1], box_b[1]) + 1)
    inter = width * height
    area_a = (box_a[2] - box_a[0] + 1) * (box_a[3] - box_a[1] + 1)
    area_b = (box_b[2] - box_b[0] + 1) * (box_b[3] - box_b[1] + 1)
    return inter / (area_a + area_b - inter)


def by_score(detections: list[Detection], max_detections: int) -> list[Detection]:
    return sorted(detections, key=lambda detection: -detection[2])[:max_detections]


def loop_fast_nms(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, top_k: int, max_detections: int
) -> list[Detection]:
    box_list = boxes.tolist()
    kept: list[Detection] = []
    for class_id, row in enumerate(scores.tolist()):
        order = sorted(range(len(row)), key=lambda n: -row[n])[:top_k]
        for rank, j in enumerate(order):
            # Every higher-ranked candidate counts, suppressed or not.
            if all(loop_iou(box_list[i], box_list[j]) <= iou_threshold for i in order[:rank]):
                kept.append((j, class_id, row[j]))
    return by_score(kept, max_detections)


def loop_cross_class_fast_nms(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, top_k: int, max_detections: int
) -> list[Detection]:
    box_list = boxes.tolist()
    columns = list(zip(*scores.tolist(), strict=True))
    best = [(max(range(len(column)), key=column.__getitem__), max(column)) for column in columns]
    order = sorted(range(len(best)), key=lambda n: -best[n][1])[:top_k]
    kept: list[Detection] = []
    for rank, j in enumerate(order):
        if all(loop_iou(box_list[i], box_list[j]) <= iou_threshold for i in order[:rank]):
            kept.append((j, best[j][0], best[j][1]))
    return by_score(kept, max_detections)


def loop_greedy_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    score_threshold: float,
    max_detections: int,
    box_scale: float,
    suppress: Callable[[float, float], bool] = lambda iou, threshold: iou >= threshold,
) -> list[Detection]:
    box_list = (boxes * box_scale).tolist()
    kept: list[Detection] = []
    for class_id, row in enumerate(scores.tolist()):
        candidates = sorted((n for n in range(len(row)) if row[n] > score_threshold), key=lambda n: -row[n])
        suppressed: set[int] = set()
        for rank, i in enumerate(candidates):
            if i in suppressed:
                continue
            kept.append((i, class_id, row[i]))
            for j in candidates[rank + 1 :]:
                if suppress(loop_iou_plus_one(box_list[i], box_list[j]), iou_threshold):
                    suppressed.add(j)
    return by_score(kept, max_detections)


def as_list(result: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> list[Detection]:
    index, classes, scores = result
    assert index.dtype == torch.int64
    assert classes.dtype == torch.int64
    assert index.shape == classes.shape == scores.shape
    assert index.dim() == 1
    return list(zip(index.tolist(), classes.tolist(), scores.tolist(), strict=True))


def assert_sorted_descending(scores: torch.Tensor) -> None:
    assert (scores[:-1] >= scores[1:]).all()


# ------------------------------------------------------------------------------------------------------ Fast NMS


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("top_k", "max_detections"), [(200, 100), (50, 300), (200, 1)])
def test_lazy_fast_nms_is_the_matrix_form_exactly(seed: int, top_k: int, max_detections: int) -> None:
    """At a detector's scale (80 classes, 600 candidates), float32, with tied scores and degenerate boxes: the
    lazy CPU form returns exactly the matrix form's detections, in the same order."""
    generator = torch.Generator().manual_seed(seed)
    boxes = random_boxes(generator, 600, torch.float32)
    boxes[::97, 2:] = boxes[::97, :2]  # zero-area boxes: IoU 0/0 = NaN with each other
    scores = torch.rand(80, 600, generator=generator).pow(4)
    scores[:, 100:110] = scores[:, 100:101]  # ties within a class
    scores[3:9, 200] = 0.5  # ties across classes
    matrix = fast_nms(boxes, scores, 0.5, top_k, max_detections, method="matrix")
    lazy = fast_nms(boxes, scores, 0.5, top_k, max_detections, method="lazy")
    assert 0 < len(matrix[0]) <= max_detections
    for a, b in zip(matrix, lazy, strict=True):
        assert torch.equal(a, b)


def test_fast_nms_rejects_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown Fast NMS method 'gpu'"):
        fast_nms(grid_boxes(3), torch.rand(2, 3), method="gpu")



@pytest.mark.parametrize("method", ["matrix", "lazy"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize(("top_k", "max_detections"), [(200, 100), (8, 100), (200, 10), (6, 9)])
def test_fast_nms_matches_loop(seed: int, top_k: int, max_detections: int, method: str) -> None:
    generator = torch.Generator().manual_seed(seed)
    boxes = random_boxes(generator, 30)
    scores = torch.rand(4, 30, generator=generator, dtype=torch.float64)
    result = fast_nms(boxes, scores, iou_threshold=0.5, top_k=top_k, max_detections=max_detections, method=method)
    expected = loop_fast_nms(boxes, scores, 0.5, top_k, max_detections)
    assert as_list(result) == expected
    assert len(expected) > 0
    assert_sorted_descending(result[2])


@pytest.mark.parametrize("method", ["matrix", "lazy"])
@pytest.mark.parametrize("seed", [5, 6])
@pytest.mark.parametrize("iou_threshold", [0.2, 0.7])
def test_fast_nms_matches_loop_float32(seed: int, iou_threshold: float, method: str) -> None:
    generator = torch.Generator().manual_seed(seed)
    boxes = random_boxes(generator, 25)
    scores = torch.rand(3, 25, generator=generator, dtype=torch.float64)
    result = fast_nms(boxes.float(), scores.float(), iou_threshold=iou_threshold, top_k=200, max_detections=100,
                      method=method)
    expected = loop_fast_nms(boxes, scores.float().double(), iou_threshold, 200, 100)
    got = as_list(result)
    assert [(index, class_id) for index, class_id, _ in got] == [(index, class_id) for index, class_id, _ in expected]
    assert result[2].dtype == torch.float32


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_nms_keeps_a_subset_of_greedy_nms(seed: int) -> None:
    # Fast NMS lets suppressed boxes suppress, so it can only drop more than greedy NMS at the same threshold.
    generator = torch.Generator().manual_seed(seed)
    boxes = random_boxes(generator, 30)
    scores = torch.rand(4, 30, generator=generator, dtype=torch.float64)
    index, classes, _ = fast_nms(boxes, scores, iou_threshold=0.5, top_k=200, max_detections=1000)
    fast = set(zip(classes.tolist(), index.tolist(), strict=True))
    greedy = {
        (class_id, candidate)
        for class_id in range(4)
        for candidate in torchvision_nms(boxes, scores[class_id], 0.5).tolist()
    }
    assert fast < greedy  # strictly: on these crowded boxes the two differ
    assert len(fast) > 4


def test_fast_nms_is_per_class() -> None:
    # Two identical boxes: within a class the lower one is suppressed, across classes both survive.
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5]])
    scores = torch.tensor([[0.9, 0.8], [0.1, 0.7]])
    index, classes, kept_scores = fast_nms(boxes, scores, iou_threshold=0.5)
    assert index.tolist() == [0, 1]
    assert classes.tolist() == [0, 1]
    torch.testing.assert_close(kept_scores, torch.tensor([0.9, 0.7]))


def chain_boxes() -> torch.Tensor:
    # A overlaps B (IoU 1/3), B overlaps C (IoU 1/3), A and C only touch (IoU 0).
    return torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.2, 0.0, 0.6, 0.4], [0.4, 0.0, 0.8, 0.4]], dtype=torch.float64)


def test_fast_nms_differs_from_greedy_on_a_chain() -> None:
    boxes = chain_boxes()
    scores = torch.tensor([[0.9, 0.8, 0.7]], dtype=torch.float64)
    # Fast NMS: B is suppressed by A, and C by B even though B itself is gone.
    index, classes, _ = fast_nms(boxes, scores, iou_threshold=0.3)
    assert index.tolist() == [0]
    assert classes.tolist() == [0]
    index, _, _ = cross_class_fast_nms(boxes, scores, iou_threshold=0.3)
    assert index.tolist() == [0]
    # Greedy NMS: B is suppressed by A and so no longer suppresses C.
    assert torchvision_nms(boxes, scores[0], 0.3).tolist() == [0, 2]
    assert loop_greedy_nms(boxes, scores, 0.3, 0.05, 100, 550.0) == [(0, 0, 0.9), (2, 0, 0.7)]
    index, classes, _ = traditional_nms(boxes, scores, iou_threshold=0.3)
    assert index.tolist() == [0, 2]
    assert classes.tolist() == [0, 0]


def test_fast_nms_top_k_limits_candidates_per_class() -> None:
    boxes = grid_boxes(20)
    generator = torch.Generator().manual_seed(11)
    scores = torch.rand(3, 20, generator=generator, dtype=torch.float64)
    index, classes, _ = fast_nms(boxes, scores, top_k=5, max_detections=100)
    assert len(index) == 3 * 5  # nothing overlaps, so exactly top_k per class
    for class_id in range(3):
        expected = set(scores[class_id].topk(5).indices.tolist())
        assert set(index[classes == class_id].tolist()) == expected


def test_fast_nms_max_detections_keeps_the_best() -> None:
    boxes = grid_boxes(20)
    generator = torch.Generator().manual_seed(12)
    scores = torch.rand(3, 20, generator=generator, dtype=torch.float64)
    index, classes, kept_scores = fast_nms(boxes, scores, top_k=200, max_detections=7)
    assert len(index) == 7
    torch.testing.assert_close(kept_scores, scores.flatten().topk(7).values)
    torch.testing.assert_close(scores[classes, index], kept_scores)


# ---------------------------------------------------------------------------------------- cross-class Fast NMS


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize(("top_k", "max_detections"), [(200, 100), (10, 100), (200, 4)])
def test_cross_class_fast_nms_matches_loop(seed: int, top_k: int, max_detections: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    boxes = random_boxes(generator, 30)
    scores = torch.rand(5, 30, generator=generator, dtype=torch.float64)
    result = cross_class_fast_nms(boxes, scores, iou_threshold=0.4, top_k=top_k, max_detections=max_detections)
    expected = loop_cross_class_fast_nms(boxes, scores, 0.4, top_k, max_detections)
    assert as_list(result) == expected
    assert len(expected) > 1
    assert_sorted_descending(result[2])


def test_cross_class_fast_nms_suppresses_across_classes() -> None:
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]])
    scores = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.8, 0.3]])
    index, classes, kept_scores = cross_class_fast_nms(boxes, scores, iou_threshold=0.5)
    # Box 1's best class (1) differs from box 0's (0), yet box 0 suppresses it.
    assert index.tolist() == [0, 2]
    assert classes.tolist() == [0, 1]
    torch.testing.assert_close(kept_scores, torch.tensor([0.9, 0.3]))


def test_cross_class_fast_nms_limits() -> None:
    boxes = grid_boxes(20)
    generator = torch.Generator().manual_seed(13)
    scores = torch.rand(3, 20, generator=generator, dtype=torch.float64)
    best = scores.max(dim=0).values
    index, _, kept_scores = cross_class_fast_nms(boxes, scores, top_k=6, max_detections=100)
    assert index.tolist() == best.topk(6).indices.tolist()
    index, _, kept_scores = cross_class_fast_nms(boxes, scores, top_k=200, max_detections=4)
    assert index.tolist() == best.topk(4).indices.tolist()
    torch.testing.assert_close(kept_scores, best.topk(4).values)


# ------------------------------------------------------------------------------------------ traditional NMS


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize(
    ("iou_threshold", "score_threshold", "max_detections", "box_scale"),
    [(0.5, 0.05, 100, 550.0), (0.3, 0.4, 100, 550.0), (0.5, 0.05, 12, 550.0), (0.5, 0.2, 100, 20.0)],
)
def test_traditional_nms_matches_loop(
    seed: int, iou_threshold: float, score_threshold: float, max_detections: int, box_scale: float
) -> None:
    generator = torch.Generator().manual_seed(seed)
    boxes = random_boxes(generator, 30)
    scores = torch.rand(4, 30, generator=generator, dtype=torch.float64)
    result = traditional_nms(
        boxes,
        scores,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        max_detections=max_detections,
        box_scale=box_scale,
    )
    expected = loop_greedy_nms(boxes, scores, iou_threshold, score_threshold, max_detections, box_scale)
    assert as_list(result) == expected
    assert len(expected) > 4
    assert_sorted_descending(result[2])
    assert (result[2] > score_threshold).all()


def test_traditional_nms_plus_one_convention_matters() -> None:
    # At box_scale 10 these boxes are 2 px wide and overlap by 1 px: plain IoU 1/3, with +1 it is 6/12 = 0.5.
    boxes = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.1, 0.0, 0.3, 0.2]], dtype=torch.float64)
    scores = torch.tensor([[0.9, 0.8]], dtype=torch.float64)
    index, _, _ = traditional_nms(boxes, scores, iou_threshold=0.4, box_scale=10.0)
    assert index.tolist() == [0]
    index, _, _ = fast_nms(boxes, scores, iou_threshold=0.4)
    assert index.tolist() == [0, 1]
    # The scale matters too: at 550 the +1 is negligible and both boxes survive a 0.4 threshold.
    index, _, _ = traditional_nms(boxes, scores, iou_threshold=0.4, box_scale=550.0)
    assert index.tolist() == [0, 1]


def test_traditional_nms_score_threshold_is_strict_and_per_class() -> None:
    boxes = grid_boxes(3)
    scores = torch.tensor([[0.5, 0.05, 0.04], [0.06, 0.9, 0.05]], dtype=torch.float64)
    index, classes, kept_scores = traditional_nms(boxes, scores, score_threshold=0.05)
    assert as_list((index, classes, kept_scores)) == [(1, 1, 0.9), (0, 0, 0.5), (0, 1, 0.06)]


def test_traditional_nms_suppresses_at_exactly_the_threshold_like_the_authors() -> None:
    # box_scale 1: widths with +1 are 10 and 10, heights 10 and 20; intersection 100, union 200: IoU exactly 0.5.
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 19.0]])
    scores = torch.tensor([[0.9, 0.8]])
    authors = loop_greedy_nms(boxes, scores, 0.5, 0.05, 100, 1.0)
    assert [index for index, _, _ in authors] == [0]
    index, _, _ = traditional_nms(boxes, scores, iou_threshold=0.5, box_scale=1.0)
    assert index.tolist() == [0]


def test_traditional_nms_max_detections_keeps_the_best() -> None:
    boxes = grid_boxes(20)
    generator = torch.Generator().manual_seed(14)
    scores = torch.rand(3, 20, generator=generator, dtype=torch.float64)
    _, _, kept_scores = traditional_nms(boxes, scores, score_threshold=0.0, max_detections=9)
    torch.testing.assert_close(kept_scores, scores.flatten().topk(9).values)


# ------------------------------------------------------------------------------------------------ empty inputs

ALL_NMS = [fast_nms, cross_class_fast_nms, traditional_nms]


@pytest.mark.parametrize("nms", ALL_NMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nms_empty_candidates(nms: Callable, dtype: torch.dtype) -> None:
    index, classes, scores = nms(torch.zeros(0, 4, dtype=dtype), torch.zeros(3, 0, dtype=dtype))
    assert index.shape == classes.shape == scores.shape == (0,)
    assert index.dtype == classes.dtype == torch.int64
    assert scores.dtype == dtype


def test_traditional_nms_nothing_above_score_threshold() -> None:
    boxes = grid_boxes(4)
    index, classes, scores = traditional_nms(boxes, torch.full((2, 4), 0.05, dtype=torch.float64))
    assert index.shape == classes.shape == scores.shape == (0,)
    assert index.dtype == classes.dtype == torch.int64


@pytest.mark.parametrize("nms", ALL_NMS)
def test_nms_single_candidate(nms: Callable) -> None:
    boxes = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    scores = torch.tensor([[0.2], [0.7]])
    index, classes, kept_scores = nms(boxes, scores)
    if nms is cross_class_fast_nms:
        assert as_list((index, classes, kept_scores)) == [(0, 1, pytest.approx(0.7))]
    else:
        assert as_list((index, classes, kept_scores)) == [(0, 1, pytest.approx(0.7)), (0, 0, pytest.approx(0.2))]


@pytest.mark.parametrize("nms", ALL_NMS)
def test_nms_output_sorted_descending_with_many_classes(nms: Callable) -> None:
    generator = torch.Generator().manual_seed(15)
    boxes = random_boxes(generator, 40)
    scores = torch.rand(10, 40, generator=generator, dtype=torch.float64)
    _, _, kept_scores = nms(boxes, scores, max_detections=1000)
    assert len(kept_scores) > 10
    assert_sorted_descending(kept_scores)


@pytest.mark.parametrize("seed", range(6))
def test_top_k_per_class_is_the_stable_sorts_head(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    # Few distinct values, so that ties (also across the k-th place) are everywhere; and continuous ones.
    scores = torch.randint(0, 12, (7, 900), generator=gen).float() / 12 if seed % 2 else torch.rand(7, 900,
                                                                                                    generator=gen)
    for k in (1, 5, 200, 400, 900, 1000):
        want_scores, want_index = scores.sort(dim=1, descending=True, stable=True)
        got_scores, got_index = top_k_per_class(scores, k)
        assert torch.equal(got_scores, want_scores[:, :k]) and torch.equal(got_index, want_index[:, :k]), k
