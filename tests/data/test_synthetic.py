"""Synthetic scenes: classes, occlusion, sizes, determinism, and a COCO dataset that trains like a real one."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch

from yolact.config import BackboneConfig
from yolact.data.augment import EvalTransform, TrainTransform
from yolact.data.coco import load_coco
from yolact.data.datasets import InstanceDataset
from yolact.data.synthetic import CLASS_NAMES, make_scene, write_synthetic_coco


def scenes(n: int = 20) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [make_scene(np.random.default_rng(seed), size=(128, 160)) for seed in range(n)]


def test_scene_layout_and_determinism() -> None:
    image, masks, labels = make_scene(np.random.default_rng(1), size=(128, 160))
    assert image.shape == (128, 160, 3) and image.dtype == np.uint8
    assert masks.shape == (len(labels), 128, 160) and masks.dtype == np.uint8 and len(labels) >= 1
    again = make_scene(np.random.default_rng(1), size=(128, 160))
    assert all(np.array_equal(a, b) for a, b in zip((image, masks, labels), again, strict=True))
    assert not np.array_equal(image, make_scene(np.random.default_rng(2), size=(128, 160))[0])


def test_classes_occlusion_and_sizes() -> None:
    extents, classes, touching = [], set(), 0
    for _, masks, labels in scenes():
        classes.update(labels.tolist())
        # Visible parts: every pixel belongs to at most one instance.
        assert masks.sum(0).max() <= 1
        assert all(m.any() for m in masks)
        for mask in masks:
            ys, xs = np.nonzero(mask)
            extents.append(max(xs.max() - xs.min(), ys.max() - ys.min()) + 1)
        # Occlusion: some instance borders another one (dilating it reaches the other's pixels).
        for i in range(len(masks)):
            grown = cv2.dilate(masks[i], np.ones((3, 3), np.uint8)).astype(bool)
            touching += any((grown & masks[j].astype(bool)).any() for j in range(len(masks)) if j != i)
    assert classes == {0, 1, 2} and len(CLASS_NAMES) == 3
    assert touching >= 5
    assert max(extents) / min(extents) >= 4


def test_class_colours_differ() -> None:
    means = {c: [] for c in range(3)}
    for image, masks, labels in scenes():
        for mask, label in zip(masks, labels, strict=True):
            means[int(label)].append(image[mask.astype(bool)].mean(0))
    centres = np.array([np.mean(means[c], axis=0) for c in range(3)])
    # BGR: circles red, squares green, triangles blue.
    assert centres[0].argmax() == 2 and centres[1].argmax() == 1 and centres[2].argmax() == 0


def test_generation_is_fast() -> None:
    start = time.perf_counter()
    for seed in range(20):
        make_scene(np.random.default_rng(seed))
    assert (time.perf_counter() - start) / 20 < 0.05  # a few ms each; generous for slow machines


def test_written_dataset_loads_and_trains(tmp_path: Path) -> None:
    ann, images = write_synthetic_coco(tmp_path / "syn", 6, seed=3, size=(96, 128))
    again, _ = write_synthetic_coco(tmp_path / "again", 6, seed=3, size=(96, 128))
    assert ann.read_bytes() == again.read_bytes()
    assert sorted(p.name for p in images.iterdir()) == [f"{i:06d}.jpg" for i in range(1, 7)]
    coco = load_coco(ann, images)
    assert [c["name"] for c in coco.categories] == list(CLASS_NAMES)

    dataset = InstanceDataset(coco, EvalTransform(128, BackboneConfig()))
    for index, image_id in enumerate(dataset.image_ids):
        image, masks, boxes, labels = dataset.load_raw(index)
        _, scene_masks, scene_labels = make_scene(np.random.default_rng([3, image_id]), (96, 128))
        np.testing.assert_array_equal(masks, scene_masks)  # RLE round trip
        np.testing.assert_array_equal(labels, scene_labels)
        assert image.shape == (96, 128, 3)
        for mask, box in zip(masks, boxes, strict=True):  # bbox = the mask's tight extent
            ys, xs = np.nonzero(mask)
            np.testing.assert_allclose(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        _, target = dataset[index]
        assert len(target.labels) <= len(labels) and target.masks.shape[1:] == (128, 128)

    training = InstanceDataset(coco, TrainTransform(64, BackboneConfig()), seed=0)
    tensor, target = training[(0, 5)]
    assert tensor.shape == (3, 64, 64) and torch.isfinite(tensor).all()
    assert ((target.labels >= 0) & (target.labels < 3)).all()
