"""InstanceDataset over COCO files: loading, crowds, empty and grayscale images, determinism, batching."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import COCO128
from pycocotools import mask as mask_utils
from torch.utils.data import DataLoader

from yolact.config import BackboneConfig
from yolact.data.augment import EvalTransform, TrainTransform
from yolact.data.coco import AnnotationError, load_coco
from yolact.data.coco_classes import COCO_CLASSES
from yolact.data.datasets import InstanceDataset, collate
from yolact.errors import ImageReadError

S = 96
BACKBONE = BackboneConfig()


def small_coco(tmp_path: Path) -> Path:
    """Three images: grayscale with a polygon and a crowd RLE; colour without objects; colour with one object."""
    gray = np.full((40, 60), 128, dtype=np.uint8)
    gray[10:30, 5:25] = 255
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    cv2.imwrite(str(tmp_path / "empty.jpg"), np.zeros((30, 20, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "one.png"), np.zeros((50, 50, 3), dtype=np.uint8))
    crowd = np.zeros((40, 60), dtype=np.uint8)
    crowd[0:8, 30:60] = 1
    crowd_rle = mask_utils.encode(np.asfortranarray(crowd))
    data = {
        "images": [{"id": 3, "file_name": "gray.png", "width": 60, "height": 40},
                   {"id": 1, "file_name": "empty.jpg", "width": 20, "height": 30},
                   {"id": 2, "file_name": "one.png", "width": 50, "height": 50}],
        "annotations": [
            {"id": 1, "image_id": 3, "category_id": 7, "bbox": [5, 10, 20, 20],
             "segmentation": [[5, 10, 25, 10, 25, 30, 5, 30]]},
            {"id": 2, "image_id": 3, "category_id": 4, "bbox": [30, 0, 30, 8], "iscrowd": 1,
             "segmentation": {"size": [40, 60], "counts": crowd_rle["counts"].decode("ascii")}},
            {"id": 3, "image_id": 2, "category_id": 4, "bbox": [10, 10, 20, 20],
             "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]},
        ],
        "categories": [{"id": 7, "name": "seven"}, {"id": 4, "name": "four"}],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def test_classes_follow_category_ids(tmp_path: Path) -> None:
    dataset = InstanceDataset(load_coco(small_coco(tmp_path), tmp_path), EvalTransform(S, BACKBONE))
    assert dataset.class_names == ["four", "seven"] and dataset.category_ids == [4, 7]
    assert dataset.image_ids == [1, 2, 3] and len(dataset) == 3


def test_grayscale_image_loads_three_channel_with_crowd_split(tmp_path: Path) -> None:
    dataset = InstanceDataset(load_coco(small_coco(tmp_path), tmp_path), EvalTransform(S, BACKBONE))
    image, masks, boxes, labels = dataset.load_raw(2)
    assert image.shape == (40, 60, 3) and image.dtype == np.uint8
    assert masks.shape == (2, 40, 60) and labels.tolist() == [1, -1]
    assert masks[1].sum() == 8 * 30  # the crowd RLE decoded
    np.testing.assert_allclose(boxes[0], [5, 10, 25, 30])
    tensor, target = dataset[2]
    assert tensor.shape == (3, S, S)
    assert target.labels.tolist() == [1] and target.masks.shape == (1, S, S)
    assert target.crowd_boxes_xyxy.shape == (1, 4)
    torch.testing.assert_close(target.crowd_boxes_xyxy[0], torch.tensor([0.5, 0.0, 1.0, 0.2]))


def test_empty_image_gives_empty_target(tmp_path: Path) -> None:
    for transform in (EvalTransform(S, BACKBONE), TrainTransform(S, BACKBONE)):
        dataset = InstanceDataset(load_coco(small_coco(tmp_path), tmp_path), transform)
        tensor, target = dataset[0]
        assert tensor.shape == (3, S, S)
        assert [tuple(t.shape) for t in target] == [(0, 4), (0,), (0, S, S), (0, 4)]
    skipping = InstanceDataset(load_coco(small_coco(tmp_path), tmp_path), transform, skip_empty=True)
    assert skipping.image_ids == [2, 3]


def test_unreadable_image_raises_naming_the_file(tmp_path: Path) -> None:
    ann = small_coco(tmp_path)
    (tmp_path / "one.png").write_bytes(b"not an image")
    dataset = InstanceDataset(load_coco(ann, tmp_path), EvalTransform(S, BACKBONE))
    with pytest.raises(ImageReadError, match=r"one\.png"):
        dataset[1]


def test_image_size_mismatch_is_an_annotation_error(tmp_path: Path) -> None:
    ann = small_coco(tmp_path)
    cv2.imwrite(str(tmp_path / "one.png"), np.zeros((51, 50, 3), dtype=np.uint8))
    dataset = InstanceDataset(load_coco(ann, tmp_path), EvalTransform(S, BACKBONE))
    with pytest.raises(AnnotationError, match=r"one\.png"):
        dataset[1]


def test_keys_decide_the_augmentation(tmp_path: Path) -> None:
    dataset = InstanceDataset(load_coco(small_coco(tmp_path), tmp_path), TrainTransform(S, BACKBONE), seed=5)
    a, b = dataset[(2, 10)], dataset[(2, 10)]
    assert torch.equal(a[0], b[0]) and all(torch.equal(x, y) for x, y in zip(a[1], b[1], strict=True))
    assert any(not torch.equal(a[0], dataset[(2, seed)][0]) for seed in range(11, 15))
    assert torch.equal(a[0], dataset.load(2, np.random.default_rng(10))[0])
    assert torch.equal(dataset[2][0], dataset.load(2, np.random.default_rng([5, 2]))[0])
    with pytest.raises(IndexError):
        dataset[3]


def test_coco128_batches(shared_dir: Path) -> None:
    size = 128
    coco = load_coco(COCO128 / "annotations" / "instances_all.json", COCO128 / "images")
    dataset = InstanceDataset(coco, TrainTransform(size, BACKBONE), seed=0)
    assert dataset.class_names == list(COCO_CLASSES) and len(dataset) == 128
    rng = np.random.default_rng(0)
    batches = [[(int(i), int(seed)) for i, seed in zip(rng.permutation(128)[:4], rng.integers(2**31, size=4),
                                                       strict=True)] for _ in range(2)]
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate, num_workers=0)
    instances = 0
    for images, targets in loader:
        assert images.shape == (4, 3, size, size) and images.dtype == torch.float32
        assert torch.isfinite(images).all()
        # Normalised: roughly zero-centred, unit-scale values (not 0-255).
        assert -5 < images.mean() < 5 and images.abs().max() < 10
        for target in targets:
            g = len(target.labels)
            instances += g
            assert target.masks.shape == (g, size, size) and target.masks.dtype == torch.uint8
            assert ((target.labels >= 0) & (target.labels < 80)).all()
            boxes = target.boxes_xyxy
            assert ((boxes >= 0) & (boxes <= 1)).all() and (boxes[:, 2:] >= boxes[:, :2]).all()
    assert instances > 0
    # The validation path gives every instance (minus tiny ones) of an image.
    evaluation = InstanceDataset(coco, EvalTransform(550, BACKBONE))
    _, target = evaluation[0]
    assert len(target.labels) == len(coco.coco.imgToAnns[evaluation.image_ids[0]])


def test_workers_do_not_change_the_batches(tmp_path: Path) -> None:
    dataset = InstanceDataset(load_coco(small_coco(tmp_path), tmp_path), TrainTransform(S, BACKBONE), seed=1)

    def batches(workers: int) -> list:
        keys = [[(2, 11), (0, 12)], [(1, 13), (2, 14)], [(2, 11), (1, 3)]]
        return list(DataLoader(dataset, batch_sampler=keys, collate_fn=collate, num_workers=workers))

    for (images_a, targets_a), (images_b, targets_b) in zip(batches(0), batches(2), strict=True):
        assert torch.equal(images_a, images_b)
        for a, b in zip(targets_a, targets_b, strict=True):
            assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
