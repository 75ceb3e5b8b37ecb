"""Training data: a COCO instances dataset as network inputs and :class:`InstanceTarget` (the authors'
COCODetection), with deterministic augmentation.

Determinism. A sample's augmentation draws only from the ``np.random.Generator`` it is given, never from global
random state: ``dataset.load(index, rng)`` is a pure function of (file contents, index, rng seed). The trainer
(``yolact.training.trainer``) derives one seed per sample from (seed, iteration, position in the batch)
(``yolact.training.schedule.batch_for_iteration``) and calls ``load(index, np.random.default_rng(seed))``, so a
resumed run replays the same augmentation whatever the number of workers. As a torch ``Dataset`` the same keys
work directly: ``dataset[(index, seed)]`` is ``dataset.load(index, np.random.default_rng(seed))``, so a batch
sampler yielding lists of (index, seed) pairs and :func:`collate` make a DataLoader. ``dataset[index]`` with a
plain int uses the seed (dataset.seed, index): a fixed augmentation per image, fine for inspection and
validation, wrong for training with an ordinary shuffling sampler.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from yolact.data.augment import CROWD_LABEL, Transform
from yolact.data.coco import AnnotationError, CocoDataset
from yolact.data.images import read_image
from yolact.structures import InstanceTarget


class InstanceDataset(Dataset):
    """Images of a :class:`CocoDataset` with their instances, transformed for training.

    Items are all images of the annotation file, sorted by id, including those without instances (their target
    is empty; ``skip_empty=True`` keeps only images with at least one annotation, as the authors' training set).
    Class index = position of the category among the file's categories sorted by id (``class_names``,
    ``category_ids``). Crowd annotations (``iscrowd=1``) reach the transform with label ``CROWD_LABEL`` (-1) and
    end up in ``crowd_boxes_xyxy``. Unreadable images raise :class:`yolact.errors.ImageReadError` naming the
    file; an image whose size differs from its record raises :class:`AnnotationError`.
    """

    def __init__(self, coco: CocoDataset, transform: Transform, seed: int = 0, skip_empty: bool = False) -> None:
        self.coco = coco
        self.transform = transform
        self.seed = seed
        ids = coco.image_ids
        if skip_empty:
            ids = [i for i in ids if coco.coco.imgToAnns.get(i)]
        self.image_ids: list[int] = ids
        categories = coco.categories
        self.class_names: list[str] = [c["name"] for c in categories]
        self.category_ids: list[int] = [c["id"] for c in categories]
        self._class_of_category = {cid: i for i, cid in enumerate(self.category_ids)}

    def __len__(self) -> int:
        return len(self.image_ids)

    def load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Item ``index`` untransformed: image BGR uint8 [H, W, 3], masks uint8 [G, H, W], boxes float64 [G, 4]
        absolute xyxy (from the records' bbox, as the authors), labels int64 [G] (crowds -1)."""
        image_id = self.image_ids[index]
        record = self.coco.coco.imgs[image_id]
        path = self.coco.image_path(image_id)
        image = read_image(path)
        height, width = image.shape[:2]
        if (height, width) != (record["height"], record["width"]):
            raise AnnotationError(f"{path}: the image is {width}x{height} but {self.coco.annotation_path} records "
                                  f"{record['width']}x{record['height']} for image id {image_id}; fix the record "
                                  "or the file")
        anns = self.coco.coco.imgToAnns.get(image_id, [])
        masks = np.zeros((len(anns), height, width), dtype=np.uint8)
        boxes = np.zeros((len(anns), 4), dtype=np.float64)
        labels = np.zeros(len(anns), dtype=np.int64)
        for i, ann in enumerate(anns):
            masks[i] = self.coco.coco.annToMask(ann)  # polygons and RLE (compressed or not)
            x, y, w, h = ann["bbox"]
            boxes[i] = (x, y, x + w, y + h)
            labels[i] = CROWD_LABEL if ann.get("iscrowd", 0) else self._class_of_category[ann["category_id"]]
        return image, masks, boxes, labels

    def load(self, index: int, rng: np.random.Generator) -> tuple[Tensor, InstanceTarget]:
        """Item ``index`` transformed with ``rng``: (network input [3, S, S], target)."""
        return self.transform(*self.load_raw(index), rng)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, InstanceTarget]:
        """``dataset[(index, seed)]`` (a sampler's keys: ``load`` with ``default_rng(seed)``) or
        ``dataset[index]`` (seed (dataset.seed, index))."""
        if isinstance(key, (tuple, list)):
            index, seed = int(key[0]), key[1]
        else:
            index = int(key)
            seed = [self.seed, index]
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        return self.load(index, np.random.default_rng(seed))


def collate(batch: Sequence[tuple[Tensor, InstanceTarget]]) -> tuple[Tensor, list[InstanceTarget]]:
    """(images [B, 3, S, S], targets): images stacked, targets kept per image (their sizes differ)."""
    images = torch.stack([image for image, _ in batch])
    return images, [target for _, target in batch]
