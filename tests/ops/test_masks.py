"""Tests for yolact.ops.masks: assembling prototypes, cropping by box, pasting at image size."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from yolact.ops import assemble_masks, crop_masks, paste_bounds, paste_masks

# --------------------------------------------------------------------------------------------------- assemble


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_assemble_masks_matches_einsum(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    prototypes = torch.randn(9, 13, 8, generator=generator, dtype=dtype)
    coeffs = torch.randn(5, 8, generator=generator, dtype=dtype)
    masks = assemble_masks(prototypes, coeffs)
    assert masks.shape == (5, 9, 13)
    assert masks.dtype == dtype
    expected = torch.sigmoid(torch.einsum("hwk,nk->nhw", prototypes, coeffs))
    torch.testing.assert_close(masks, expected)
    # Not a constant 0.5: the logits matter.
    assert masks.std() > 0.1


def test_assemble_masks_hand_computed() -> None:
    prototypes = torch.zeros(2, 3, 2)
    prototypes[..., 1] = 1.0
    prototypes[0, 0, 0] = 4.0
    coeffs = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.0]])
    masks = assemble_masks(prototypes, coeffs)
    torch.testing.assert_close(masks[0], torch.full((2, 3), 0.5))
    expected_1 = torch.full((2, 3), 2.0)
    expected_1[0, 0] = 4.0 + 2.0
    torch.testing.assert_close(masks[1], torch.sigmoid(expected_1))
    expected_2 = torch.zeros(2, 3)
    expected_2[0, 0] = -4.0
    torch.testing.assert_close(masks[2], torch.sigmoid(expected_2))


def test_assemble_masks_no_detections() -> None:
    masks = assemble_masks(torch.randn(4, 6, 3), torch.zeros(0, 3))
    assert masks.shape == (0, 4, 6)


# ------------------------------------------------------------------------------------------------------- crop


def loop_bounds(low: float, high: float, size: int, padding: float) -> tuple[np.float32, np.float32]:
    """The kept interval [lo, hi) along one axis, in float32 as the op computes it."""
    first = np.float32(low) * np.float32(size)
    second = np.float32(high) * np.float32(size)
    lo = max(min(first, second) - np.float32(padding), np.float32(0))
    hi = min(max(first, second) + np.float32(padding), np.float32(size))
    return lo, hi


def loop_crop(masks: torch.Tensor, boxes: torch.Tensor, padding: float) -> torch.Tensor:
    num, height, width = masks.shape
    out = torch.zeros_like(masks)
    for n in range(num):
        bx1, by1, bx2, by2 = boxes[n].tolist()
        x_lo, x_hi = loop_bounds(bx1, bx2, width, padding)
        y_lo, y_hi = loop_bounds(by1, by2, height, padding)
        for row in range(height):
            for col in range(width):
                if x_lo <= col < x_hi and y_lo <= row < y_hi:
                    out[n, row, col] = masks[n, row, col]
    return out


@pytest.mark.parametrize("padding", [0.0, 1.0, 2.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_crop_masks_matches_pixel_loop(padding: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    masks = torch.rand(12, 7, 11, generator=generator) + 0.5  # no zeros except the cropped ones
    # Corners anywhere in [-0.3, 1.3], so some are swapped and some lie outside the image.
    boxes = torch.rand(12, 4, generator=generator) * 1.6 - 0.3
    cropped = crop_masks(masks, boxes, padding=padding)
    expected = loop_crop(masks, boxes, padding)
    assert cropped.shape == masks.shape
    assert cropped.dtype == masks.dtype
    assert torch.equal(cropped, expected)
    # The crop both keeps and removes pixels.
    assert 0 < (expected != 0).sum() < expected.numel()


@pytest.mark.parametrize("padding", [0.0, 1.0])
def test_crop_masks_matches_pixel_loop_on_pixel_edges(padding: float) -> None:
    # Box corners on exact pixel edges (k / 8 of an 8-pixel mask) test the x1 <= i < x2 comparison's ends.
    edges = [-0.125, 0.0, 0.25, 0.5, 0.875, 1.0, 1.125]
    pairs = list(itertools.permutations(edges, 2))  # both orders, so swapped corners too
    boxes = torch.tensor([[a, 0.25, b, 0.75] for a, b in pairs] + [[0.25, a, 0.75, b] for a, b in pairs])
    masks = torch.ones(len(boxes), 8, 8)
    cropped = crop_masks(masks, boxes, padding=padding)
    assert torch.equal(cropped, loop_crop(masks, boxes, padding))


def test_crop_masks_hand_computed() -> None:
    masks = torch.ones(1, 8, 8)
    boxes = torch.tensor([[0.25, 0.25, 0.75, 0.5]])
    # Scaled: x in [2, 6), y in [2, 4); padding 1 widens to x in [1, 7), y in [1, 5).
    expected = torch.zeros(1, 8, 8)
    expected[0, 1:5, 1:7] = 1.0
    assert torch.equal(crop_masks(masks, boxes), expected)
    expected = torch.zeros(1, 8, 8)
    expected[0, 2:4, 2:6] = 1.0
    assert torch.equal(crop_masks(masks, boxes, padding=0), expected)


def test_crop_masks_swapped_corners_give_the_same_crop() -> None:
    generator = torch.Generator().manual_seed(2)
    masks = torch.rand(6, 10, 9, generator=generator)
    boxes = torch.rand(6, 4, generator=generator)
    swapped = boxes[:, [2, 3, 0, 1]]
    assert torch.equal(crop_masks(masks, swapped), crop_masks(masks, boxes))
    assert torch.equal(crop_masks(masks, boxes[:, [2, 1, 0, 3]]), crop_masks(masks, boxes))


def test_crop_masks_boxes_outside_the_image() -> None:
    masks = torch.rand(4, 8, 8) + 0.5
    boxes = torch.tensor(
        [
            [-0.5, -0.5, 1.5, 1.5],  # covers the whole mask
            [1.2, 0.0, 1.5, 1.0],  # wholly right of the mask: low end 12 - 1 >= 8
            [-0.5, 0.0, -0.2, 1.0],  # wholly left: high end -1.6 + 1 < 0
            [0.0, 1.1, 1.0, 1.3],  # wholly below
        ]
    )
    cropped = crop_masks(masks, boxes)
    assert torch.equal(cropped[0], masks[0])
    assert (cropped[1:] == 0).all()


def test_crop_masks_float64_and_does_not_modify_input() -> None:
    masks = torch.ones(1, 4, 4, dtype=torch.float64)
    boxes = torch.tensor([[0.5, 0.5, 1.0, 1.0]], dtype=torch.float64)
    cropped = crop_masks(masks, boxes, padding=0)
    assert cropped.dtype == torch.float64
    assert cropped.sum() == 4
    assert (masks == 1).all()


def test_crop_masks_no_detections() -> None:
    assert crop_masks(torch.zeros(0, 5, 6), torch.zeros(0, 4)).shape == (0, 5, 6)


# ------------------------------------------------------------------------------------------------------ paste


@pytest.mark.parametrize(("height", "width"), [(13, 17), (3, 2), (5, 7)])
def test_paste_masks_constant_above_threshold_is_all_true(height: int, width: int) -> None:
    pasted = paste_masks(torch.full((3, 5, 7), 0.6), height, width)
    assert pasted.shape == (3, height, width)
    assert pasted.dtype == torch.bool
    assert pasted.all()
    assert not paste_masks(torch.full((3, 5, 7), 0.4), height, width).any()


def test_paste_masks_threshold_is_strict() -> None:
    # At the same size the bilinear resize is the identity, so the values reach the comparison unchanged.
    above = float(np.nextafter(np.float32(0.5), np.float32(1)))
    below = float(np.nextafter(np.float32(0.5), np.float32(0)))
    masks = torch.tensor([[[0.5, above, below, 1.0]]])
    assert paste_masks(masks, 1, 4).tolist() == [[[False, True, False, True]]]
    assert paste_masks(masks, 1, 4, threshold=0.75).tolist() == [[[False, False, False, True]]]
    assert paste_masks(masks, 1, 4, threshold=0.0).tolist() == [[[True, True, True, True]]]


def test_paste_masks_bilinear_half_pixel_centres() -> None:
    # align_corners=False: 2 -> 4 samples at -0.25, 0.25, 0.75, 1.25 (clamped), giving 0, .25, .75, 1.
    masks = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    pasted = paste_masks(masks, 2, 4)
    assert pasted.tolist() == [[[False, False, True, True]] * 2]
    assert paste_masks(masks, 2, 4, threshold=0.2).tolist() == [[[False, True, True, True]] * 2]
    # The same step along the other axis.
    assert paste_masks(masks.transpose(1, 2), 4, 2).tolist() == [
        [[False, False], [False, False], [True, True], [True, True]]
    ]


def test_paste_masks_keeps_each_mask_separate() -> None:
    masks = torch.zeros(3, 4, 4)
    masks[1] = 1.0
    masks[2, :2] = 1.0
    pasted = paste_masks(masks, 8, 8)
    assert not pasted[0].any()
    assert pasted[1].all()
    assert pasted[2, :4].all()
    assert not pasted[2, 4:].any()


def test_paste_masks_no_detections() -> None:
    pasted = paste_masks(torch.zeros(0, 5, 7), 20, 30)
    assert pasted.shape == (0, 20, 30)
    assert pasted.dtype == torch.bool


def cropped_soft_masks(generator: torch.Generator, num: int, size: int) -> torch.Tensor:
    """Smooth random soft masks [num, size, size] cropped by random boxes (some touching the border), as the
    post-processing hands them to paste_masks."""
    coarse = torch.randn(num, 1, size // 8, size // 8, generator=generator) * 4
    masks = torch.sigmoid(torch.nn.functional.interpolate(coarse, (size, size), mode="bilinear"))[:, 0]
    corners = torch.rand(num, 2, 2, generator=generator).sort(dim=1).values
    boxes = torch.cat((corners[:, 0], corners[:, 1]), dim=1)
    boxes[0] = torch.tensor([0.0, 0.0, 1.0, 1.0])  # the whole map
    boxes[1] = torch.tensor([0.9, -0.2, 1.3, 0.05])  # over the top-right border
    return crop_masks(masks, boxes)


@pytest.mark.parametrize(("size", "height", "width"), [(138, 480, 640), (138, 427, 640), (80, 256, 256),
                                                       (69, 100, 37), (35, 35, 35)])
def test_paste_masks_region_is_the_full_resize_bit_for_bit(size: int, height: int, width: int) -> None:
    generator = torch.Generator().manual_seed(size + height)
    masks = cropped_soft_masks(generator, 12, size)
    masks[5] = 0.0  # an empty mask (a box outside the map)
    full = torch.nn.functional.interpolate(masks[None], (height, width), mode="bilinear", align_corners=False)[0]
    # Thresholds equal to resized values themselves: a difference of one unit in the last place flips a pixel.
    positive = full[full > 0]
    picks = torch.randint(len(positive), (6,), generator=generator)
    for threshold in [0.5, 0.0, *positive[picks].tolist()]:
        region = paste_masks(masks, height, width, threshold, method="region")
        assert torch.equal(region, full > threshold), threshold
        assert torch.equal(paste_masks(masks, height, width, threshold, method="full"), full > threshold)
    assert not paste_masks(masks, height, width, method="region")[5].any()


def test_paste_masks_auto_shrinking_and_unknown_method() -> None:
    masks = cropped_soft_masks(torch.Generator().manual_seed(0), 4, 64)
    full = torch.nn.functional.interpolate(masks[None], (40, 70), mode="bilinear", align_corners=False)[0]
    assert torch.equal(paste_masks(masks, 40, 70), full > 0.5)  # auto takes the full resize when shrinking
    with pytest.raises(ValueError, match="unknown paste method 'fast'"):
        paste_masks(masks, 40, 70, method="fast")
    with pytest.raises(ValueError, match="threshold >= 0"):
        paste_masks(masks, 80, 80, threshold=-1.0, method="region")


@pytest.mark.parametrize(("size", "height", "width"), [(138, 480, 640), (69, 100, 37), (35, 35, 35)])
def test_paste_bounds_hold_every_non_zero_pixel_of_the_resize(size: int, height: int, width: int) -> None:
    masks = cropped_soft_masks(torch.Generator().manual_seed(size), 12, size)
    masks[5] = 0.0
    full = torch.nn.functional.interpolate(masks[None], (height, width), mode="bilinear", align_corners=False)[0]
    bounds = paste_bounds(masks, height, width)
    assert bounds.dtype == torch.int64 and bounds.shape == (12, 4)
    assert bounds[5].tolist() == [0, 0, 0, 0]
    for mask, (x1, y1, x2, y2) in zip(full, bounds.tolist(), strict=True):
        ys, xs = torch.nonzero(mask > 0, as_tuple=True)
        if len(xs) == 0:
            continue
        # Every non-zero pixel inside; the box at most two pixels wider on a side (one of margin, one for a tap of
        # weight exactly 0), never past the image.
        assert x1 <= xs.min() and xs.max() < x2 and y1 <= ys.min() and ys.max() < y2
        assert xs.min() - x1 <= 2 and x2 - 1 - xs.max() <= 2 and ys.min() - y1 <= 2 and y2 - 1 - ys.max() <= 2
        assert 0 <= x1 and x2 <= width and 0 <= y1 and y2 <= height
    region = paste_masks(masks, height, width, method="region", bounds_xyxy=bounds)
    assert torch.equal(region, full > 0.5)
    assert paste_bounds(torch.zeros(0, size, size), height, width).shape == (0, 4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("size", "height", "width"), [(138, 480, 640), (138, 427, 640), (69, 100, 37)])
def test_paste_bounds_hold_every_non_zero_pixel_of_the_cuda_resize(size: int, height: int, width: int) -> None:
    # On CUDA the predictor pastes with the full resize (CUDA's own kernel, whose taps may round differently from
    # the CPU's), and RLE and drawing then read each mask only inside these bounds: they must hold every pixel.
    masks = cropped_soft_masks(torch.Generator().manual_seed(size + width), 24, size).cuda()
    masks[5] = 0.0
    full = torch.nn.functional.interpolate(masks[None], (height, width), mode="bilinear", align_corners=False)[0]
    bounds = paste_bounds(masks, height, width)
    assert bounds.device.type == "cuda" and bounds.dtype == torch.int64
    assert torch.equal(bounds.cpu(), paste_bounds(masks.cpu(), height, width))
    rows = torch.arange(height, device="cuda")[None, :, None]
    cols = torch.arange(width, device="cuda")[None, None, :]
    x1, y1, x2, y2 = (bounds[:, i, None, None] for i in range(4))
    inside = (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
    assert not (full != 0)[~inside.expand_as(full)].any()
    assert torch.equal(paste_masks(masks, height, width), full > 0.5)  # auto takes the full resize on CUDA
    region = paste_masks(masks, height, width, method="region", bounds_xyxy=bounds)
    assert (region != (full > 0.5)).sum() <= 1e-4 * full.numel()  # CPU tap arithmetic, CUDA's may differ by 1 ulp
