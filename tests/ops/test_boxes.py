"""Tests for yolact.ops.boxes: format conversion, IoU, SSD box coding, coordinate sanitising."""

from __future__ import annotations

import pytest
import torch

from yolact.ops import (
    box_iou,
    cxcywh_to_xyxy,
    decode_boxes,
    encode_boxes,
    sanitize_coordinates,
    scale_boxes_to_image,
    xyxy_to_cxcywh,
)


def random_boxes(generator: torch.Generator, num: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Random valid xyxy boxes (positive width and height), crowded around the image centre so many overlap."""
    centre = 0.3 + 0.4 * torch.rand(num, 2, generator=generator, dtype=dtype)
    size = 0.05 + 0.4 * torch.rand(num, 2, generator=generator, dtype=dtype)
    return torch.cat((centre - size / 2, centre + size / 2), dim=1)


def random_anchors(generator: torch.Generator, num: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Random cxcywh anchors with positive sizes."""
    centre = torch.rand(num, 2, generator=generator, dtype=dtype)
    size = 0.02 + 0.5 * torch.rand(num, 2, generator=generator, dtype=dtype)
    return torch.cat((centre, size), dim=1)


def loop_iou(box_a: list[float], box_b: list[float], crowd: bool = False) -> float:
    ax1, ay1, ax2, ay2 = box_a
    bx1, by1, bx2, by2 = box_b
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    return inter / area_a if crowd else inter / (area_a + area_b - inter)


def loop_iou_matrix(boxes_a: torch.Tensor, boxes_b: torch.Tensor, crowd: bool = False) -> torch.Tensor:
    rows = [[loop_iou(a, b, crowd) for b in boxes_b.tolist()] for a in boxes_a.tolist()]
    return torch.tensor(rows, dtype=torch.float64).reshape(len(boxes_a), len(boxes_b))


# ----------------------------------------------------------------------------------------------------------- IoU


def test_box_iou_hand_computed() -> None:
    boxes_a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 2.0, 4.0]])
    boxes_b = torch.tensor(
        [
            [1.0, 1.0, 3.0, 3.0],  # quarter overlap with a[0]: 1 / (4 + 4 - 1)
            [0.0, 0.0, 2.0, 2.0],  # identical to a[0]
            [2.0, 2.0, 3.0, 3.0],  # touches a[0] at a corner only
            [0.0, 0.0, 1.0, 1.0],  # inside a[0]: 1 / 4
            [5.0, 5.0, 6.0, 7.0],  # disjoint from both
        ]
    )
    expected = torch.tensor(
        [
            [1 / 7, 1.0, 0.0, 1 / 4, 0.0],
            # a[1] has area 1 * 4; it meets b[0] and b[1] in 1 * 2 and only touches b[2] and b[3] (zero width).
            [2 / (4 + 4 - 2), 2 / (4 + 4 - 2), 0.0, 0.0, 0.0],
        ]
    )
    iou = box_iou(boxes_a, boxes_b)
    assert iou.shape == (2, 5)
    torch.testing.assert_close(iou, expected)


def test_box_iou_crowd_hand_computed() -> None:
    boxes_a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    boxes_b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [-1.0, -1.0, 5.0, 5.0], [0.0, 0.0, 1.0, 1.0]])
    # Intersection over the area of boxes_a (4), not over the union.
    expected = torch.tensor([[1 / 4, 1.0, 1 / 4]])
    torch.testing.assert_close(box_iou(boxes_a, boxes_b, crowd=True), expected)
    # Without crowd the second is 4 / 36, which crowd must not give.
    torch.testing.assert_close(box_iou(boxes_a, boxes_b), torch.tensor([[1 / 7, 4 / 36, 1 / 4]]))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("crowd", [False, True])
def test_box_iou_matches_loop(seed: int, crowd: bool) -> None:
    generator = torch.Generator().manual_seed(seed)
    boxes_a = random_boxes(generator, 9)
    boxes_b = random_boxes(generator, 6)
    iou = box_iou(boxes_a, boxes_b, crowd=crowd)
    expected = loop_iou_matrix(boxes_a, boxes_b, crowd=crowd)
    assert iou.shape == (9, 6)
    torch.testing.assert_close(iou, expected, rtol=1e-12, atol=1e-12)
    # The random boxes overlap a lot, so the comparison is not just zeros against zeros.
    assert (expected > 0).float().mean() > 0.5


def test_box_iou_float32_matches_loop() -> None:
    generator = torch.Generator().manual_seed(3)
    boxes_a = random_boxes(generator, 5).float()
    boxes_b = random_boxes(generator, 7).float()
    iou = box_iou(boxes_a, boxes_b)
    assert iou.dtype == torch.float32
    torch.testing.assert_close(iou.double(), loop_iou_matrix(boxes_a.double(), boxes_b.double()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("crowd", [False, True])
def test_box_iou_batched(crowd: bool) -> None:
    generator = torch.Generator().manual_seed(4)
    boxes_a = random_boxes(generator, 3 * 5).view(3, 5, 4)
    boxes_b = random_boxes(generator, 3 * 4).view(3, 4, 4)
    iou = box_iou(boxes_a, boxes_b, crowd=crowd)
    assert iou.shape == (3, 5, 4)
    for batch in range(3):
        expected = loop_iou_matrix(boxes_a[batch], boxes_b[batch], crowd=crowd)
        torch.testing.assert_close(iou[batch], expected, rtol=1e-12, atol=1e-12)


def test_box_iou_self_is_one_on_diagonal_and_symmetric() -> None:
    generator = torch.Generator().manual_seed(5)
    boxes = random_boxes(generator, 8)
    iou = box_iou(boxes, boxes)
    torch.testing.assert_close(iou.diagonal(), torch.ones(8, dtype=torch.float64))
    torch.testing.assert_close(iou, iou.T)
    assert ((iou >= 0) & (iou <= 1 + 1e-12)).all()


# -------------------------------------------------------------------------------------------- format conversion


def test_cxcywh_to_xyxy_hand_computed() -> None:
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4], [10.0, 20.0, 4.0, 6.0]], dtype=torch.float64)
    expected = torch.tensor([[0.4, 0.3, 0.6, 0.7], [8.0, 17.0, 12.0, 23.0]], dtype=torch.float64)
    torch.testing.assert_close(cxcywh_to_xyxy(boxes), expected)
    torch.testing.assert_close(xyxy_to_cxcywh(expected), boxes)


def test_box_format_round_trip() -> None:
    generator = torch.Generator().manual_seed(6)
    boxes_xyxy = random_boxes(generator, 20).view(4, 5, 4)  # arbitrary leading dimensions
    cxcywh = xyxy_to_cxcywh(boxes_xyxy)
    assert cxcywh.shape == (4, 5, 4)
    assert (cxcywh[..., 2:] > 0).all()
    torch.testing.assert_close(cxcywh_to_xyxy(cxcywh), boxes_xyxy)
    anchors = random_anchors(generator, 10)
    torch.testing.assert_close(xyxy_to_cxcywh(cxcywh_to_xyxy(anchors)), anchors)


# --------------------------------------------------------------------------------------------------- box coding


@pytest.mark.parametrize("variances", [(0.1, 0.2), (0.25, 0.5)])
def test_encode_decode_round_trip(variances: tuple[float, float]) -> None:
    generator = torch.Generator().manual_seed(7)
    anchors = random_anchors(generator, 50)
    boxes = random_boxes(generator, 50)
    loc = encode_boxes(boxes, anchors, variances)
    assert loc.shape == (50, 4)
    torch.testing.assert_close(decode_boxes(loc, anchors, variances), boxes, rtol=1e-10, atol=1e-10)
    # And the other way round: random offsets survive decode then encode.
    offsets = torch.randn(50, 4, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(encode_boxes(decode_boxes(offsets, anchors, variances), anchors, variances), offsets)


def test_encode_decode_round_trip_float32_defaults() -> None:
    generator = torch.Generator().manual_seed(8)
    anchors = random_anchors(generator, 30).float()
    boxes = random_boxes(generator, 30).float()
    loc = encode_boxes(boxes, anchors)
    assert loc.dtype == torch.float32
    torch.testing.assert_close(decode_boxes(loc, anchors), boxes, rtol=1e-5, atol=1e-5)


def test_encode_hand_computed_uses_variances() -> None:
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.4]], dtype=torch.float64)
    # Centre moved by 0.1 * anchor width in x, width doubled, height unchanged.
    box = cxcywh_to_xyxy(torch.tensor([[0.5 + 0.1 * 0.2, 0.5, 0.4, 0.4]], dtype=torch.float64))
    expected = torch.tensor([[1.0, 0.0, torch.log(torch.tensor(2.0)).item() / 0.2, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(encode_boxes(box, anchors, (0.1, 0.2)), expected)
    torch.testing.assert_close(decode_boxes(expected, anchors, (0.1, 0.2)), box)
    # Other variances scale the offsets inversely.
    torch.testing.assert_close(encode_boxes(box, anchors, (0.2, 0.4)), expected / 2)


def test_decode_zero_offsets_gives_anchor_xyxy() -> None:
    generator = torch.Generator().manual_seed(9)
    anchors = random_anchors(generator, 12)
    decoded = decode_boxes(torch.zeros(12, 4, dtype=torch.float64), anchors)
    torch.testing.assert_close(decoded, cxcywh_to_xyxy(anchors))
    # Batched offsets [B, A, 4] broadcast against anchors [A, 4].
    batched = decode_boxes(torch.zeros(3, 12, 4, dtype=torch.float64), anchors)
    assert batched.shape == (3, 12, 4)
    torch.testing.assert_close(batched, cxcywh_to_xyxy(anchors).expand(3, 12, 4))


def test_decode_batched_matches_per_image() -> None:
    generator = torch.Generator().manual_seed(10)
    anchors = random_anchors(generator, 6)
    loc = torch.randn(2, 6, 4, generator=generator, dtype=torch.float64)
    batched = decode_boxes(loc, anchors)
    for image in range(2):
        torch.testing.assert_close(batched[image], decode_boxes(loc[image], anchors))


# ------------------------------------------------------------------------------------------ sanitize and scale


def test_sanitize_coordinates_orders_swapped() -> None:
    x1 = torch.tensor([0.2, 0.8, 0.5])
    x2 = torch.tensor([0.6, 0.1, 0.5])
    low, high = sanitize_coordinates(x1, x2, 10)
    torch.testing.assert_close(low, torch.tensor([2.0, 1.0, 5.0]))
    torch.testing.assert_close(high, torch.tensor([6.0, 8.0, 5.0]))
    assert (low <= high).all()


def test_sanitize_coordinates_clamps_low_to_zero_and_high_to_size() -> None:
    x1 = torch.tensor([-0.5, 0.5, -0.3])
    x2 = torch.tensor([0.5, 1.5, 1.4])
    low, high = sanitize_coordinates(x1, x2, 20)
    torch.testing.assert_close(low, torch.tensor([0.0, 10.0, 0.0]))
    torch.testing.assert_close(high, torch.tensor([10.0, 20.0, 20.0]))


def test_sanitize_coordinates_clamps_each_end_on_one_side_only() -> None:
    # As the authors': the low end is only clamped at 0 and the high end only at size, so a box wholly outside
    # the image comes back with low > high rather than being collapsed.
    low, high = sanitize_coordinates(torch.tensor([1.2, -0.6]), torch.tensor([1.5, -0.2]), 10)
    torch.testing.assert_close(low, torch.tensor([12.0, 0.0]))
    torch.testing.assert_close(high, torch.tensor([10.0, -2.0]))


def test_sanitize_coordinates_padding() -> None:
    x1 = torch.tensor([0.25, 0.05, 0.75])
    x2 = torch.tensor([0.5, 0.98, 0.25])
    low, high = sanitize_coordinates(x1, x2, 100, padding=3)
    # Padding widens both ends, then the clamps apply (5 - 3 = 2; 98 + 3 -> 100).
    torch.testing.assert_close(low, torch.tensor([22.0, 2.0, 22.0]))
    torch.testing.assert_close(high, torch.tensor([53.0, 100.0, 78.0]))
    low, high = sanitize_coordinates(torch.tensor([0.01]), torch.tensor([0.99]), 100, padding=2)
    torch.testing.assert_close(low, torch.tensor([0.0]))
    torch.testing.assert_close(high, torch.tensor([100.0]))


def test_sanitize_coordinates_does_not_modify_inputs() -> None:
    x1 = torch.tensor([0.7, -0.2])
    x2 = torch.tensor([0.1, 0.4])
    sanitize_coordinates(x1, x2, 10, padding=1)
    torch.testing.assert_close(x1, torch.tensor([0.7, -0.2]))
    torch.testing.assert_close(x2, torch.tensor([0.1, 0.4]))


def test_scale_boxes_to_image_truncates_to_int64() -> None:
    boxes = torch.tensor(
        [
            [0.123, 0.456, 0.789, 0.987],  # plain: 12.3 -> 12, 22.8 -> 22, 78.9 -> 78, 49.35 -> 49
            [0.789, 0.987, 0.123, 0.456],  # swapped corners give the same box
            [-0.2, -0.1, 1.3, 1.7],  # clamped to the image
            [0.5, 0.5, 0.5, 0.5],  # zero-size box stays zero-size
        ],
        dtype=torch.float32,
    )
    scaled = scale_boxes_to_image(boxes, width=100, height=50)
    assert scaled.dtype == torch.int64
    expected = torch.tensor([[12, 22, 78, 49], [12, 22, 78, 49], [0, 0, 100, 50], [50, 25, 50, 25]])
    assert torch.equal(scaled, expected)


def test_scale_boxes_to_image_truncates_towards_zero_not_rounds() -> None:
    boxes = torch.tensor([[0.0199, 0.0399, 0.5999, 0.9999]], dtype=torch.float64)
    # 1.99 -> 1, 1.995 -> 1, 59.99 -> 59, 49.995 -> 49 (rounding would give 2, 2, 60, 50).
    assert torch.equal(scale_boxes_to_image(boxes, width=100, height=50), torch.tensor([[1, 1, 59, 49]]))
