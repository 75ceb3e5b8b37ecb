"""Masks as polygons: every part and every hole, rasterised back to the same pixels."""

import cv2
import numpy as np
import pytest

from yolact.inference.polygons import bridge_rings, mask_to_polygons, polygons_to_mask

HEIGHT, WIDTH = 48, 64


def ring() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.circle(mask, (24, 24), 14, 1, -1)
    cv2.circle(mask, (24, 24), 6, 0, -1)
    return mask.astype(bool)


def two_squares() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[3:12, 3:12] = True
    mask[25:40, 40:60] = True
    return mask


def at_the_border() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[0:20, 0:15] = True
    mask[30:, 50:] = True  # the bottom-right corner
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("make", [ring, two_squares, at_the_border])
def test_polygons_rasterise_back_to_the_same_pixels(make) -> None:
    mask = make()
    parts = mask_to_polygons(mask)
    np.testing.assert_array_equal(polygons_to_mask(parts, HEIGHT, WIDTH), mask)


def test_parts_and_holes_are_found() -> None:
    parts = mask_to_polygons(ring())
    assert len(parts) == 1 and len(parts[0].holes) == 1
    hole = polygons_to_mask([type(parts[0])(parts[0].holes[0])], HEIGHT, WIDTH)
    assert not (hole & ring()).any()  # the hole's polygon holds none of the ring's pixels
    squares = mask_to_polygons(two_squares())
    assert len(squares) == 2 and not squares[0].holes
    assert np.ptp(squares[0].exterior[:, 0]) > np.ptp(squares[1].exterior[:, 0])  # largest first
    island = ring()
    island[22:27, 22:27] = True  # a part inside the hole is a part of its own
    assert len(mask_to_polygons(island)) == 2
    assert mask_to_polygons(np.zeros((5, 5), bool)) == []


@pytest.mark.parametrize("seed", range(5))
def test_any_mask_comes_back_exactly(seed: int) -> None:
    mask = np.random.default_rng(seed).random((HEIGHT, WIDTH)) > 0.55  # many parts, many holes, single pixels
    np.testing.assert_array_equal(polygons_to_mask(mask_to_polygons(mask), HEIGHT, WIDTH), mask)


def test_tolerance_simplifies_and_stays_close() -> None:
    mask = ring()
    exact, simple = mask_to_polygons(mask), mask_to_polygons(mask, tolerance=1.0)
    assert len(simple[0].exterior) < len(exact[0].exterior)
    assert iou(polygons_to_mask(simple, HEIGHT, WIDTH), mask) >= 0.9


def test_offset_moves_every_point() -> None:
    window = two_squares()[20:45, 35:64]
    moved = mask_to_polygons(window, offset_xy=(35, 20))
    full = np.zeros((HEIGHT, WIDTH), bool)
    full[20:45, 35:64] = window
    np.testing.assert_array_equal(polygons_to_mask(moved, HEIGHT, WIDTH), full)


def test_bridged_parts_fill_to_their_union() -> None:
    from pycocotools import mask as mask_utils

    mask = two_squares()
    path = bridge_rings([part.exterior for part in mask_to_polygons(mask)])
    filled = mask_utils.decode(mask_utils.frPyObjects([path.ravel().tolist()], HEIGHT, WIDTH))[..., 0]
    assert iou(filled.astype(bool), mask) >= 0.98


def test_contours_through_pixel_centres_would_lose_a_ring_of_pixels() -> None:
    # Why the 2x tracing (the README's figure): OpenCV's own contour of a 4x3 rectangle, filled again, keeps half.
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[5:8, 5:9] = True
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    centre_traced = type(mask_to_polygons(mask)[0])(contours[0][:, 0, :].astype(float) + 0.5)
    assert iou(polygons_to_mask([centre_traced], HEIGHT, WIDTH), mask) == pytest.approx(0.5)
    assert iou(polygons_to_mask(mask_to_polygons(mask), HEIGHT, WIDTH), mask) == 1.0
