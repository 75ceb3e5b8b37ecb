import cv2
import numpy as np
import pytest

from yolact.inference.drawing import PALETTE_BGR, color_for, draw_instances

H, W = 120, 160
NAMES = ["person", "cat", "cup"]


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def _two_instances() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    boxes = np.array([[40, 50, 70, 80], [90, 50, 120, 80]], dtype=np.float32)
    scores = np.array([0.87, 0.55], dtype=np.float32)
    class_ids = np.array([0, 1])
    masks = np.zeros((2, H, W), dtype=bool)
    masks[0, 55:75, 45:65] = True
    masks[1, 55:75, 95:115] = True
    return boxes, scores, class_ids, masks


def test_input_untouched_and_output_shape_dtype() -> None:
    img = _image()
    before = img.copy()
    boxes, scores, ids, masks = _two_instances()
    out = draw_instances(img, boxes, scores, ids, NAMES, masks)
    np.testing.assert_array_equal(img, before)
    assert out.shape == img.shape
    assert out.dtype == np.uint8
    assert out is not img


def test_mask_pixels_change_and_far_pixels_stay() -> None:
    img = _image()
    boxes, scores, ids, masks = _two_instances()
    out = draw_instances(img, boxes, scores, ids, NAMES, masks)
    inside = masks.any(axis=0)
    changed = np.any(out[inside] != img[inside], axis=-1)
    assert changed.mean() > 0.95
    # The bottom rows and left/right strips are far from all masks, boxes and label tags. The right strip starts
    # after the second tag, whose width is the font's (OpenCV 5's Hershey text is wider than 4's).
    (text_width, _), _ = cv2.getTextSize("cat 0.55", cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    right = 90 + text_width + 2
    assert right <= W - 10
    np.testing.assert_array_equal(out[95:], img[95:])
    np.testing.assert_array_equal(out[:, :25], img[:, :25])
    np.testing.assert_array_equal(out[:, right:], img[:, right:])


def test_mask_blend_matches_alpha_formula() -> None:
    img = np.full((H, W, 3), 100, dtype=np.uint8)
    boxes, scores, ids, masks = _two_instances()
    out = draw_instances(img, boxes, scores, ids, NAMES, masks, mask_alpha=0.5, draw_boxes=False, draw_labels=False)
    expected = np.rint(100 * 0.5 + np.array(PALETTE_BGR[0]) * 0.5)
    np.testing.assert_array_equal(out[60, 55], expected)
    np.testing.assert_array_equal(out[~masks.any(axis=0)], img[~masks.any(axis=0)])


def test_two_instances_get_different_colors() -> None:
    img = np.full((H, W, 3), 128, dtype=np.uint8)
    boxes, scores, ids, masks = _two_instances()
    out = draw_instances(img, boxes, scores, ids, NAMES, masks, draw_boxes=False, draw_labels=False)
    assert color_for(0) != color_for(1)
    assert not np.array_equal(out[65, 55], out[65, 105])
    assert color_for(len(PALETTE_BGR)) == color_for(0)


def test_empty_returns_copy() -> None:
    img = _image()
    out = draw_instances(
        img, np.zeros((0, 4)), np.zeros((0,)), np.zeros((0,), dtype=np.int64), NAMES, np.zeros((0, H, W), bool)
    )
    np.testing.assert_array_equal(out, img)
    assert out is not img
    out = draw_instances(img, np.zeros((0, 4)), np.zeros((0,)), np.zeros((0,), dtype=np.int64), NAMES, None)
    np.testing.assert_array_equal(out, img)


def test_label_at_top_edge_stays_inside_image() -> None:
    img = np.zeros((H, W, 3), dtype=np.uint8)
    boxes = np.array([[30, 0, 100, 60]])
    out = draw_instances(img, boxes, np.array([0.9]), np.array([2]), NAMES, None, draw_boxes=False)
    top = out[:8, 30:100]
    assert np.any(top != 0)
    # The filled tag covers the first rows just right of the box's left edge.
    assert np.count_nonzero(np.any(out[1:5, 31:40] != 0, axis=-1)) > 20


def test_label_above_box_when_room() -> None:
    img = np.zeros((H, W, 3), dtype=np.uint8)
    boxes = np.array([[30, 60, 100, 100]])
    out = draw_instances(img, boxes, np.array([0.9]), np.array([0]), NAMES, None, draw_boxes=False)
    assert np.any(out[40:60, 30:100] != 0)
    assert not np.any(out[61:])


def test_bad_shapes_raise() -> None:
    img = _image()
    with pytest.raises(ValueError):
        draw_instances(img, np.zeros((1, 4)), np.zeros((2,)), np.zeros((1,), np.int64), NAMES, None)
    with pytest.raises(ValueError):
        draw_instances(
            img, np.zeros((1, 4)), np.zeros((1,)), np.zeros((1,), np.int64), NAMES, np.zeros((1, 5, 5), bool)
        )


def test_overlapping_masks_blend_as_the_first_owner_wins() -> None:
    """The windowed blend equals the whole-image rule: each pixel takes the first mask covering it."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    masks = np.zeros((30, 60, 80), bool)
    boxes = []
    for mask in masks:
        x, y = rng.integers(0, 70), rng.integers(0, 50)
        w, h = rng.integers(3, 40, 2)
        mask[y : y + h, x : x + w] = rng.random((min(h, 60 - y), min(w, 80 - x))) > 0.3
        boxes.append([x, y, x + w, y + h])
    out = draw_instances(image, np.array(boxes), np.ones(30), np.zeros(30, int), ["a"], masks, draw_boxes=False,
                         draw_labels=False)
    covered = masks.any(axis=0)
    owner = masks.argmax(axis=0)[covered]
    palette = np.asarray(PALETTE_BGR, dtype=np.float32)[owner % len(PALETTE_BGR)]
    expected = image.copy()
    blend = image[covered].astype(np.float32) * (1.0 - 0.45) + palette * 0.45  # in float32, as drawn
    expected[covered] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_mask_bounds_give_the_same_drawing_and_are_checked() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    masks = np.zeros((3, 60, 80), bool)
    masks[0, 10:30, 5:40] = rng.random((20, 35)) > 0.2
    masks[1, 20:59, 30:79] = True
    masks[2, 0:5, 0:80] = True
    boxes, scores, ids = np.array([[5, 10, 40, 30], [30, 20, 79, 59], [0, 0, 80, 5]]), np.ones(3), np.zeros(3, int)
    bounds = np.array([[3, 8, 42, 33], [30, 20, 79, 59], [-4, -4, 90, 70]])  # loose, tight, past the edges
    plain = draw_instances(image, boxes, scores, ids, ["a"], masks)
    np.testing.assert_array_equal(draw_instances(image, boxes, scores, ids, ["a"], masks, mask_bounds_xyxy=bounds),
                                  plain)
    with pytest.raises(ValueError, match=r"mask_bounds_xyxy must have shape \[3, 4\]"):
        draw_instances(image, boxes, scores, ids, ["a"], masks, mask_bounds_xyxy=bounds[:2])
