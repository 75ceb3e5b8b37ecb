"""Tests for yolact.losses.matching: thresholds, forced best anchors, greedy resolution, crowds, no ground truth."""

from __future__ import annotations

import torch
from loss_helpers import anchors_from_xyxy, grid_anchors

from yolact.losses import match_anchors
from yolact.ops import box_iou, cxcywh_to_xyxy, encode_boxes

EPS = 1 / 1024  # a dyadic step: every coordinate below is exact in float32


def run_match(gt: list[list[float]], labels: list[int], anchors: torch.Tensor,
              crowd: list[list[float]] | None = None, crowd_iou: float = 0.7):
    return match_anchors(
        torch.tensor(gt, dtype=torch.float32).view(-1, 4),
        torch.tensor(labels, dtype=torch.int64),
        torch.tensor(crowd or [], dtype=torch.float32).view(-1, 4),
        anchors,
        positive_iou=0.5,
        negative_iou=0.4,
        crowd_iou=crowd_iou,
        variances=(0.1, 0.2),
    )


def test_thresholds_exactly_at_the_boundaries() -> None:
    gt = [[0.0, 0.0, 0.5, 0.5]]
    anchors = anchors_from_xyxy([
        [0.0, 0.0, 0.5, 0.5],  # IoU 1
        [0.0, 0.0, 0.5, 0.25],  # IoU exactly 0.5: positive (>= 0.5)
        [0.0, 0.0, 0.5, 0.25 - EPS],  # IoU just below 0.5: neutral
        [0.25, 0.0, 0.625, 0.5],  # IoU exactly 0.4 (0.125 / 0.3125): neutral (not < 0.4)
        [0.25 + EPS, 0.0, 0.625, 0.5],  # IoU just below 0.4: background
        [0.75, 0.75, 1.0, 1.0],  # disjoint: background
    ])
    iou = box_iou(torch.tensor(gt), cxcywh_to_xyxy(anchors))[0]
    assert iou[1].item() == 0.5 and iou[3].item() == torch.tensor(0.4).item()
    assert 0.4 < iou[2].item() < 0.5 and 0.3 < iou[4].item() < 0.4

    match = run_match(gt, [2], anchors)
    assert match.class_targets.tolist() == [3, 3, -1, -1, 0, 0]
    assert match.class_targets.dtype == torch.int64 and match.gt_index.dtype == torch.int64
    assert match.gt_index.tolist() == [0] * 6
    expected_boxes = encode_boxes(torch.tensor(gt).expand(6, 4), anchors, (0.1, 0.2))
    torch.testing.assert_close(match.box_targets, expected_boxes, rtol=0, atol=0)


def test_best_anchor_below_positive_iou_is_forced_positive() -> None:
    gt = [[0.0, 0.0, 0.5, 0.5]]
    anchors = anchors_from_xyxy([
        [0.0, 0.0, 0.125, 0.125],  # IoU 1/16
        [0.0, 0.0, 0.25, 0.25],  # IoU 1/4: the best, below even the negative threshold
        [0.5, 0.5, 1.0, 1.0],
    ])
    match = run_match(gt, [1], anchors)
    assert match.class_targets.tolist() == [0, 2, 0]
    assert match.gt_index[1].item() == 0
    torch.testing.assert_close(match.box_targets[1], encode_boxes(torch.tensor(gt[0]), anchors[1]))


def test_two_ground_truths_competing_for_one_anchor_are_resolved_greedily() -> None:
    # Both objects' best anchor is a0; gt1 overlaps it more (1.0 vs 0.8) so it keeps a0 although it comes second,
    # and gt0 is forced onto its next-best anchor a1 (IoU 0.375 < 0.4, background without forcing).
    gt = [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.625]]
    anchors = anchors_from_xyxy([
        [0.0, 0.0, 0.5, 0.625],
        [0.0, 0.0, 0.5, 0.1875],
        [0.75, 0.0, 1.0, 0.25],
    ])
    iou = box_iou(torch.tensor(gt), cxcywh_to_xyxy(anchors))
    torch.testing.assert_close(iou[:, :2], torch.tensor([[0.8, 0.375], [1.0, 0.3]]))

    match = run_match(gt, [0, 1], anchors)
    assert match.class_targets.tolist() == [2, 1, 0]
    assert match.gt_index[:2].tolist() == [1, 0]
    expected = encode_boxes(torch.tensor([gt[1], gt[0]]), anchors[:2])
    torch.testing.assert_close(match.box_targets[:2], expected)


def test_ground_truth_order_does_not_change_greedy_result() -> None:
    gt = [[0.0, 0.0, 0.5, 0.625], [0.0, 0.0, 0.5, 0.5]]  # the same two objects, swapped
    anchors = anchors_from_xyxy([[0.0, 0.0, 0.5, 0.625], [0.0, 0.0, 0.5, 0.1875], [0.75, 0.0, 1.0, 0.25]])
    match = run_match(gt, [1, 0], anchors)
    assert match.class_targets.tolist() == [2, 1, 0]
    assert match.gt_index[:2].tolist() == [0, 1]


def test_each_anchor_takes_its_best_ground_truth() -> None:
    # Each object equals one grid anchor (IoU 1), so forcing changes nothing and the thresholds decide alone.
    gt = [[0.125, 0.125, 0.625, 0.625], [0.5, 0.5, 0.75, 0.75]]
    anchors = grid_anchors()
    match = run_match(gt, [0, 2], anchors)
    iou = box_iou(torch.tensor(gt), cxcywh_to_xyxy(anchors))
    best_iou, best_gt = iou.max(dim=0)
    positive = best_iou >= 0.5
    assert positive.sum().item() >= 2
    assert torch.equal(match.class_targets > 0, positive)
    assert torch.equal(match.gt_index[positive], best_gt[positive])
    assert torch.equal(match.class_targets[positive], torch.tensor([0, 2])[best_gt[positive]] + 1)
    assert (match.class_targets[best_iou < 0.4] == 0).all()
    assert (match.class_targets[(best_iou >= 0.4) & (best_iou < 0.5)] == -1).all()
    expected = encode_boxes(torch.tensor(gt)[best_gt[positive]], anchors[positive])
    torch.testing.assert_close(match.box_targets[positive], expected)


def test_crowd_regions_neutralise_non_positive_anchors() -> None:
    gt = [[0.0, 0.0, 0.25, 0.25], [0.5, 0.5, 0.75, 0.75]]  # gt1 lies inside the crowd region
    crowd = [[0.5, 0.5, 1.0, 1.0]]
    anchors = anchors_from_xyxy([
        [0.0, 0.0, 0.25, 0.25],  # positive for gt0, outside the crowd
        [0.5, 0.5, 0.75, 0.75],  # positive for gt1, fully inside the crowd: stays positive
        [0.75, 0.75, 1.0, 1.0],  # background, fully inside the crowd: neutral
        [0.875, 0.375, 1.0, 0.875],  # background, 0.75 of its area in the crowd
        [0.875, 0.3125, 1.0, 0.8125],  # background, 0.625 in the crowd
        [0.875, 0.40625, 1.0, 0.90625],  # background, 0.8125 in the crowd
        [0.0, 0.5, 0.25, 0.75],  # background, outside the crowd
    ])
    in_crowd = box_iou(cxcywh_to_xyxy(anchors), torch.tensor(crowd), crowd=True)[:, 0]
    assert in_crowd.tolist() == [0.0, 1.0, 1.0, 0.75, 0.625, 0.8125, 0.0]

    assert run_match(gt, [0, 1], anchors).class_targets.tolist() == [1, 2, 0, 0, 0, 0, 0]
    default = run_match(gt, [0, 1], anchors, crowd=crowd)
    assert default.class_targets.tolist() == [1, 2, -1, -1, 0, -1, 0]
    # The threshold is strict: an anchor exactly at crowd_iou stays background.
    strict = run_match(gt, [0, 1], anchors, crowd=crowd, crowd_iou=0.75)
    assert strict.class_targets.tolist() == [1, 2, -1, 0, 0, -1, 0]
    # A crowd_iou of 1 or more switches the rule off, as the authors' config.
    assert run_match(gt, [0, 1], anchors, crowd=crowd, crowd_iou=1.0).class_targets.tolist() == [1, 2, 0, 0, 0, 0, 0]


def test_the_most_overlapping_crowd_region_counts() -> None:
    anchors = anchors_from_xyxy([[0.5, 0.5, 1.0, 1.0]])
    crowd = [[0.0, 0.0, 0.6, 0.6], [0.5, 0.5, 0.9, 1.0]]  # covers 0.04 / 0.25 and 0.2 / 0.25 of the anchor
    assert run_match([], [], anchors, crowd=crowd).class_targets.tolist() == [-1]


def test_no_ground_truth_is_all_background_and_crowds_still_apply() -> None:
    anchors = grid_anchors()
    match = run_match([], [], anchors)
    assert match.class_targets.shape == (32,) and (match.class_targets == 0).all()
    assert match.gt_index.shape == (32,) and match.box_targets.shape == (32, 4)
    assert torch.isfinite(match.box_targets).all()

    crowd = [[0.0, 0.0, 0.5, 0.5]]
    with_crowd = run_match([], [], anchors, crowd=crowd)
    in_crowd = box_iou(cxcywh_to_xyxy(anchors), torch.tensor(crowd), crowd=True)[:, 0]
    assert torch.equal(with_crowd.class_targets, torch.where(in_crowd > 0.7, -1, 0))
    assert (with_crowd.class_targets == -1).sum().item() == 4  # the four small anchors inside the region


def test_does_not_modify_inputs() -> None:
    gt = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    anchors = grid_anchors()
    before = (gt.clone(), anchors.clone())
    match_anchors(gt, torch.tensor([0]), torch.zeros(0, 4), anchors)
    assert torch.equal(gt, before[0]) and torch.equal(anchors, before[1])
