"""Training augmentation: image, masks and boxes stay consistent under every op; seeds decide everything."""

from __future__ import annotations

import augment_reference as R
import numpy as np
import pytest
import torch

from yolact.config import BackboneConfig
from yolact.data import augment as A
from yolact.data.transforms import image_to_tensor, normalize_image

H, W = 120, 160
# Rectangles (x1, y1, x2, y2) with exclusive right/bottom edges; the last one is a crowd region.
RECTS = np.array([[10, 12, 60, 70], [70, 30, 150, 100], [40, 60, 90, 115], [0, 0, 160, 40]], dtype=np.float64)
LABELS = np.array([0, 1, 2, A.CROWD_LABEL])
COLOURS = np.array([[0, 0, 255], [0, 255, 0], [255, 0, 0], [255, 255, 255]], dtype=np.uint8)


def rect_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each rectangle painted in its own colour; masks are the rectangles (overlapping, as full shapes)."""
    image = np.full((H, W, 3), 50, dtype=np.uint8)
    masks = np.zeros((len(RECTS), H, W), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(RECTS.astype(int)):
        masks[i, y1:y2, x1:x2] = 1
    # Paint the regular instances (not the crowd): a pixel's colour identifies the topmost instance.
    for i in range(3):
        image[masks[i].astype(bool)] = COLOURS[i]
    return image, masks, RECTS.copy(), LABELS.copy()


def tight_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def assert_consistent(sample: A.Sample, tol: float) -> None:
    image, masks, boxes, labels = sample
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3
    assert masks.dtype == np.uint8 and masks.shape == (len(boxes), *image.shape[:2])
    assert len(labels) == len(boxes)
    assert set(np.unique(masks)) <= {0, 1}
    for mask, box in zip(masks, boxes, strict=True):
        assert mask.any(), "a kept instance lost its mask"
        np.testing.assert_allclose(tight_box(mask), box, atol=tol)


def assert_colours_follow(sample: A.Sample) -> None:
    """Every pixel of regular instance k's mask has k's colour or that of an instance painted over k (which a crop
    may have dropped): geometric ops move pixels and masks together, never values."""
    for mask, label in zip(sample.masks, sample.labels, strict=True):
        if label == A.CROWD_LABEL:
            continue
        pixels = sample.image[mask.astype(bool)]
        allowed = np.zeros(len(pixels), dtype=bool)
        for j in range(label, 3):
            allowed |= (pixels == COLOURS[j]).all(1)
        assert allowed.all()
        assert (pixels == COLOURS[label]).all(1).any()


def start() -> A.Sample:
    return A.convert_from_ints(*rect_scene())


@pytest.mark.parametrize("seed", range(12))
def test_expand_keeps_everything_aligned(seed: int) -> None:
    out = R.expand(start(), np.random.default_rng(seed))
    assert_consistent(out, tol=0)
    assert_colours_follow(out)
    if out.image.shape[:2] != (H, W):  # expanded: what is neither the old background nor an instance is fill
        known = (out.image == 50).all(2)
        for colour in COLOURS:
            known |= (out.image == colour).all(2)
        assert (~known).sum() >= H * W * 0.05
        np.testing.assert_allclose(out.image[~known], np.broadcast_to(A.FILL_BGR, out.image[~known].shape),
                                   rtol=0, atol=1e-4)


@pytest.mark.parametrize("seed", range(12))
def test_crop_keeps_everything_aligned(seed: int) -> None:
    sample = start()
    out = R.random_sample_crop(sample, np.random.default_rng(seed))
    assert_consistent(out, tol=0)
    assert_colours_follow(out)
    assert (out.labels != A.CROWD_LABEL).any()


def test_crop_keeps_centres_and_clips_boxes() -> None:
    sample = start()
    cropped_once = False
    for seed in range(40):
        out = R.random_sample_crop(sample, np.random.default_rng(seed))
        if out.image.shape[:2] == (H, W):
            continue
        cropped_once = True
        h, w = out.image.shape[:2]
        assert (out.boxes >= 0).all() and (out.boxes[:, [0, 2]] <= w).all() and (out.boxes[:, [1, 3]] <= h).all()
        assert 0.3 * H - 1 <= h <= H and 0.3 * W - 1 <= w <= W and 0.45 <= h / w <= 2.1
    assert cropped_once


def test_crop_never_leaves_only_crowds() -> None:
    # One small regular instance in a corner, a huge crowd: every crop must still hold the regular one.
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    masks = np.zeros((2, 100, 100), dtype=np.uint8)
    masks[0, 2:8, 2:8] = 1
    masks[1, :, :] = 1
    sample = A.convert_from_ints(image, masks, [[2, 2, 8, 8], [0, 0, 100, 100]], [3, A.CROWD_LABEL])
    for seed in range(30):
        out = R.random_sample_crop(sample, np.random.default_rng(seed))
        assert 3 in out.labels


def test_crop_without_regular_instances_is_a_no_op() -> None:
    image = np.zeros((50, 50, 3), dtype=np.uint8)
    crowd_only = A.convert_from_ints(image, np.ones((1, 50, 50)), [[0, 0, 50, 50]], [A.CROWD_LABEL])
    empty = A.convert_from_ints(image, np.zeros((0, 50, 50)), np.zeros((0, 4)), np.zeros(0))
    for sample in (crowd_only, empty):
        assert R.random_sample_crop(sample, np.random.default_rng(0)) is sample


@pytest.mark.parametrize("seed", range(6))
def test_mirror_keeps_everything_aligned(seed: int) -> None:
    sample = start()
    out = A.random_mirror(sample, np.random.default_rng(seed))
    assert_consistent(out, tol=0)
    assert_colours_follow(out)
    if out is not sample:
        np.testing.assert_array_equal(out.image, sample.image[:, ::-1])


@pytest.mark.parametrize("size", [550, 300, 77])
def test_resize_keeps_everything_aligned(size: int) -> None:
    out = A.resize(start(), size)
    assert out.image.shape == (size, size, 3)
    assert_consistent(out, tol=1.0)
    # Inside each instance (away from edges) the colour survives bilinear interpolation.
    x1, y1, x2, y2 = out.boxes[0]
    cy, cx = int((y1 + y2) / 2), int((x1 + x2) / 2)
    np.testing.assert_allclose(out.image[cy, cx], COLOURS[0], atol=1)


def test_photometric_changes_only_the_image() -> None:
    sample = start()
    changed = 0
    for seed in range(8):
        out = A.photometric_distort(sample, np.random.default_rng(seed))
        assert out.image.shape == sample.image.shape and out.image.dtype == np.float32
        assert out.masks is sample.masks and out.boxes is sample.boxes and out.labels is sample.labels
        changed += not np.allclose(out.image, sample.image, atol=1e-3)
    assert changed >= 4
    np.testing.assert_array_equal(sample.image, rect_scene()[0].astype(np.float32))  # input untouched


@pytest.mark.parametrize("seed", range(20))
def test_full_augmentation_keeps_everything_aligned(seed: int) -> None:
    out = A.augment(start(), 200, np.random.default_rng(seed))
    assert out.image.shape == (200, 200, 3)
    assert_consistent(out, tol=2.0)


@pytest.mark.parametrize("seed", range(10))
def test_fused_expand_and_crop_equal_the_ops_in_sequence(seed: int) -> None:
    fused = A.augment(start(), 150, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    sample = A.photometric_distort(start(), rng)
    sample = R.random_sample_crop(R.expand(sample, rng), rng)
    sample = A.discard_small_boxes(A.resize(A.random_mirror(sample, rng), 150), 150)
    for a, b in zip(fused, sample, strict=True):
        np.testing.assert_array_equal(a, b)


def test_same_seed_same_output_and_seeds_differ() -> None:
    image, masks, boxes, labels = rect_scene()
    backbone = BackboneConfig()
    first = A.train_transform(image, masks, boxes, labels, 128, backbone, np.random.default_rng(7))
    again = A.train_transform(image, masks, boxes, labels, 128, backbone, np.random.default_rng(7))
    assert torch.equal(first[0], again[0])
    for a, b in zip(first[1], again[1], strict=True):
        assert torch.equal(a, b)
    others = [A.train_transform(image, masks, boxes, labels, 128, backbone, np.random.default_rng(s))[0]
              for s in range(8, 12)]
    assert any(not torch.equal(first[0], other) for other in others)
    # The caller's arrays are not modified.
    np.testing.assert_array_equal(boxes, RECTS)
    np.testing.assert_array_equal(image, rect_scene()[0])


def test_discard_tiny_boxes_with_their_masks_and_labels() -> None:
    size = 550
    masks = np.zeros((3, size, size), dtype=np.uint8)
    masks[0, 10:13, 10:100] = 1  # 3 px tall
    masks[1, 200:205, 200:205] = 1  # 5 x 5
    masks[2, 300:304, 300:340] = 1  # exactly 4 px tall: the authors keep only w > 4 and h > 4
    boxes = [[10, 10, 100, 13], [200, 200, 205, 205], [300, 300, 340, 304]]
    out = A.discard_small_boxes(A.convert_from_ints(np.zeros((size, size, 3)), masks, boxes, [5, 6, 7]), size)
    np.testing.assert_array_equal(out.labels, [6])
    np.testing.assert_array_equal(out.masks, masks[1:2])
    # The threshold scales with the input: 4 px at 550 is 2 px at 275.
    small = A.discard_small_boxes(A.convert_from_ints(np.zeros((275, 275, 3)), np.zeros((1, 275, 275)),
                                                      [[0, 0, 2.5, 2.5]], [1]), 275)
    assert len(small.labels) == 1


def test_target_splits_crowds_and_is_relative() -> None:
    image, masks, boxes, labels = rect_scene()
    tensor, target = A.eval_transform(image, masks, boxes, labels, 80, BackboneConfig())
    assert tensor.shape == (3, 80, 80) and tensor.dtype == torch.float32
    assert target.labels.tolist() == [0, 1, 2] and target.labels.dtype == torch.int64
    assert target.masks.shape == (3, 80, 80) and target.masks.dtype == torch.uint8
    assert target.boxes_xyxy.shape == (3, 4) and target.crowd_boxes_xyxy.shape == (1, 4)
    torch.testing.assert_close(target.crowd_boxes_xyxy[0], torch.tensor([0, 0, 1, 40 / H]))
    torch.testing.assert_close(target.boxes_xyxy[0], torch.tensor([10 / W, 12 / H, 60 / W, 70 / H]))
    # Validation-style input is exactly inference's preprocessing.
    torch.testing.assert_close(tensor, normalize_image(image_to_tensor(image), 80, BackboneConfig())[0],
                               rtol=0, atol=0)


def test_empty_image_gives_empty_target() -> None:
    image = np.zeros((40, 50, 3), dtype=np.uint8)
    for transform in (A.TrainTransform(64, BackboneConfig()), A.EvalTransform(64, BackboneConfig())):
        tensor, target = transform(image, np.zeros((0, 40, 50)), np.zeros((0, 4)), np.zeros(0),
                                   np.random.default_rng(0))
        assert tensor.shape == (3, 64, 64)
        assert target.boxes_xyxy.shape == (0, 4) and target.labels.shape == (0,)
        assert target.masks.shape == (0, 64, 64) and target.crowd_boxes_xyxy.shape == (0, 4)


@pytest.mark.parametrize("backbone", [BackboneConfig(), BackboneConfig(kind="darknet", normalize=False)])
def test_train_input_is_normalised_like_inference(backbone: BackboneConfig) -> None:
    image, masks, boxes, labels = rect_scene()
    tensor, _ = A.train_transform(image, masks, boxes, labels, 96, backbone, np.random.default_rng(3))
    augmented = A.augment(A.convert_from_ints(image, masks, boxes, labels), 96, np.random.default_rng(3)).image
    if backbone.normalize:
        expected = (augmented - np.array(backbone.mean_bgr)) / np.array(backbone.std_bgr)
    else:
        expected = augmented / 255
    expected = torch.from_numpy(expected[:, :, ::-1].copy()).permute(2, 0, 1).float()  # BGR -> RGB
    torch.testing.assert_close(tensor, expected, rtol=1e-5, atol=1e-5)


def test_transforms_pickle() -> None:
    import pickle

    transform = A.TrainTransform(64, BackboneConfig())
    assert pickle.loads(pickle.dumps(transform)) == transform


def test_max_expand_bounds_the_zoom_out() -> None:
    rng = np.random.default_rng(0)
    assert all(A._sample_expand(H, W, rng, max_ratio=1.0) is None for _ in range(50))  # 1: expand off
    ratios = [p[0] / H for p in (A._sample_expand(H, W, rng, max_ratio=2.0) for _ in range(200)) if p is not None]
    assert len(ratios) > 50 and max(ratios) <= 2.0 and max(ratios) > 1.8
    ratios = [p[0] / H for p in (A._sample_expand(H, W, rng) for _ in range(200)) if p is not None]
    assert max(ratios) > 3.5  # the authors' default: up to 4x


def test_train_transform_without_expand_never_shrinks_the_scene() -> None:
    # With expand off, crop only zooms in: the one instance spanning the image keeps at least its share of it.
    transform = A.TrainTransform(64, BackboneConfig(), max_expand=1.0)
    image = np.full((H, W, 3), 50, np.uint8)
    masks = np.ones((1, H, W), np.uint8)
    boxes = np.array([[0, 0, W, H]], np.float64)
    for seed in range(20):
        _, target = transform(image, masks, boxes, np.array([0]), np.random.default_rng(seed))
        assert target.masks.float().mean().item() == 1.0
