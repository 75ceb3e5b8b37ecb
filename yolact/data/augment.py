"""Training augmentation: the authors' SSDAugmentation (utils/augmentations.py) on numpy arrays.

Every random op takes an explicit ``np.random.Generator`` and draws only from it (never numpy's or Python's
global state), so a sample's augmentation is a pure function of the generator's seed: the trainer derives one
seed per sample from (seed, iteration, position in the batch) (``yolact.training.schedule``) and a resumed run
replays the same augmentation.

A sample is ``Sample(image, masks, boxes, labels)``: image BGR float32 [H, W, 3] (0-255, not clipped after
photometric distortion, as the authors), masks uint8 {0, 1} [G, H, W], boxes float64 [G, 4] absolute pixel
corners (x1, y1, x2, y2) with x2/y2 the exclusive right/bottom edge (a mask whose pixels span columns
a..b has the box a..b+1), labels int64 [G] with crowd regions marked ``CROWD_LABEL`` (-1) as the authors do.

The op order and probabilities are the authors' (their ``SSDAugmentation`` with the published configs):

1. ConvertFromInts.
2. PhotometricDistort: brightness ±32 (p 0.5); then with p 0.5 either [contrast 0.5-1.5, BGR→HSV,
   saturation 0.5-1.5, hue ±18°, HSV→BGR] or [BGR→HSV, saturation, hue, HSV→BGR, contrast], each random op
   applied with p 0.5. The authors' last step, RandomLightingNoise (a random channel permutation), has its
   body commented out in their code ("Don't shuffle the channels please"), so no channel swap happens here.
3. Expand (p 0.5): ratio U(1, 4), the image pasted at a random integer offset into a canvas filled with the
   BGR mean; masks padded with 0, boxes shifted.
4. RandomSampleCrop: SSD's, with the authors' two changes (see :func:`_sample_crop`).
5. RandomMirror (p 0.5).
6. Resize to S x S (cv2 bilinear, aspect ratio not kept), masks too (uint8 0/1 resized bilinearly by cv2,
   whose rounding binarises them at 0.5, as the authors'), boxes scaled.
7. Discard boxes with width or height not above 4 px at 550 (4/550·S px at S), with their masks and labels.
   The authors keep ``w > discard_box_width`` with ``discard_box_width = 4 / 550`` but compare it with boxes in
   absolute pixels, so their threshold is in effect 0.007 px; we apply the documented 4 px.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch import Tensor

from yolact.config import IMAGENET_MEAN_BGR, BackboneConfig
from yolact.data.transforms import image_to_tensor, normalize_image
from yolact.structures import InstanceTarget

CROWD_LABEL = -1
# The authors fill expanded canvases with MEANS (BGR), so padding normalises to ~0 for ResNets.
FILL_BGR = IMAGENET_MEAN_BGR
# Boxes at most this many pixels wide or tall, at a 550 px input, are discarded (scaled with the input size).
DISCARD_PX_AT_550 = 4.0

# RandomSampleCrop's modes: None keeps the whole image; otherwise SSD's (min IoU, max IoU), None meaning unbounded.
# Only their number matters: the authors' overlap test never rejects a crop (see _sample_crop).
CROP_MODES: tuple[tuple[float | None, float | None] | None, ...] = (
    None, (0.1, None), (0.3, None), (0.7, None), (0.9, None), (None, None),
)  # fmt: skip
CROP_TRIES = 50


class Sample(NamedTuple):
    """One image and its instances in absolute pixel coordinates (see the module docstring)."""

    image: np.ndarray  # [H, W, 3] float32 BGR
    masks: np.ndarray  # [G, H, W] uint8 {0, 1}
    boxes: np.ndarray  # [G, 4] float64 x1, y1, x2, y2 (pixels, x2/y2 exclusive edges)
    labels: np.ndarray  # [G] int64, CROWD_LABEL for crowd regions


# A dataset transform: (image BGR uint8, masks, boxes, labels, rng) -> (network input [3, S, S], target).
Transform = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.random.Generator],
                     tuple[Tensor, InstanceTarget]]


def _coin(rng: np.random.Generator) -> bool:
    """The authors' ``random.randint(2)``: True with probability 0.5."""
    return bool(rng.integers(2))


def _instances(height: int, width: int, masks: np.ndarray, boxes: np.ndarray, labels: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks, boxes and labels as uint8 [G, H, W], float64 [G, 4], int64 [G] (copies where dtypes change)."""
    masks = np.ascontiguousarray(np.asarray(masks, dtype=np.uint8).reshape(-1, height, width))
    boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.array(labels, dtype=np.int64).reshape(-1)
    if not len(masks) == len(boxes) == len(labels):
        raise ValueError(f"masks, boxes and labels disagree on the number of instances: "
                         f"{len(masks)}, {len(boxes)}, {len(labels)}")
    return masks, boxes, labels


def convert_from_ints(image: np.ndarray, masks: np.ndarray, boxes: np.ndarray, labels: np.ndarray) -> Sample:
    """Inputs as a :class:`Sample` with the working dtypes (the image is copied to float32, boxes and labels are
    copied, so the caller's arrays are never modified)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a BGR image [H, W, 3], got shape {image.shape}")
    return Sample(image.astype(np.float32), *_instances(*image.shape[:2], masks, boxes, labels))


# --- photometric -------------------------------------------------------------------------------------------


def _random_contrast(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if _coin(rng):
        image *= rng.uniform(0.5, 1.5)
    return image


def _random_saturation(hsv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if _coin(rng):
        hsv[:, :, 1] *= rng.uniform(0.5, 1.5)
    return hsv


def _random_hue(hsv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if _coin(rng):
        hue = hsv[:, :, 0]
        hue += rng.uniform(-18.0, 18.0)
        # Wrap to [0, 360] as the authors (a single wrap suffices for a ±18° shift).
        hue[hue > 360.0] -= 360.0
        hue[hue < 0.0] += 360.0
    return hsv


def photometric_distort(sample: Sample, rng: np.random.Generator) -> Sample:
    """The authors' PhotometricDistort (float image; nothing is clipped, as theirs). Geometry is untouched."""
    image = sample.image.copy()
    if _coin(rng):
        image += rng.uniform(-32.0, 32.0)
    contrast_first = _coin(rng)
    if contrast_first:
        image = _random_contrast(image, rng)
    # cv2's float HSV: H in degrees [0, 360), S in [0, 1], V in the input's units.
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    hsv = _random_saturation(hsv, rng)
    hsv = _random_hue(hsv, rng)
    image = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if not contrast_first:
        image = _random_contrast(image, rng)
    # RandomLightingNoise (channel swap) is a no-op in the authors' code: nothing to do.
    return sample._replace(image=image)


# --- geometry ----------------------------------------------------------------------------------------------


def _place(sample: Sample, top: int, left: int, out_h: int, out_w: int, keep: np.ndarray | None = None,
           fill: tuple[float, float, float] = FILL_BGR) -> Sample:
    """Put the sample's image at (top, left) of an out_h x out_w canvas filled with ``fill``.

    Expand (positive offsets, larger canvas) and crop (negative offsets, smaller canvas) are both this, and so is
    their composition; only the overlap is copied, and only the masks of the ``keep`` instances, which bounds
    memory: an expanded canvas of every mask (up to 16x the image area) is never made. Boxes are shifted, not
    clipped (a crop clips its boxes itself).
    """
    image, masks, boxes, labels = sample
    if keep is None:
        keep = np.ones(len(labels), dtype=bool)
    boxes, labels = boxes[keep], labels[keep]
    height, width = image.shape[:2]
    # Overlap of the source [0, height) x [0, width) shifted by (top, left) with the canvas.
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, out_h), min(left + width, out_w)
    new_image = np.empty((out_h, out_w, 3), dtype=np.float32)
    new_image[:] = fill
    new_masks = np.zeros((len(labels), out_h, out_w), dtype=np.uint8)
    if y1 > y0 and x1 > x0:
        new_image[y0:y1, x0:x1] = image[y0 - top:y1 - top, x0 - left:x1 - left]
        # Boolean index and slices together: only the kept masks' overlap is read.
        new_masks[:, y0:y1, x0:x1] = masks[keep, y0 - top:y1 - top, x0 - left:x1 - left]
    new_boxes = boxes + np.array([left, top, left, top], dtype=np.float64)
    return Sample(new_image, new_masks, new_boxes, labels)


# The authors' Expand zooms out by up to 4x.
MAX_EXPAND = 4.0


def _sample_expand(height: int, width: int, rng: np.random.Generator, max_ratio: float = MAX_EXPAND,
                   ) -> tuple[int, int, int, int] | None:
    """Expand's parameters (canvas h, canvas w, top, left), or None when it does not fire (p 0.5) or
    ``max_ratio`` is 1 (expand off)."""
    if _coin(rng) or max_ratio <= 1.0:  # the authors return early on randint(2) == 1
        return None
    ratio = rng.uniform(1.0, max_ratio)
    left = rng.uniform(0.0, width * ratio - width)
    top = rng.uniform(0.0, height * ratio - height)
    return int(height * ratio), int(width * ratio), int(top), int(left)


def _sample_crop(height: int, width: int, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """RandomSampleCrop's choice: (integer rect x1, y1, x2, y2; boolean keep per instance), or None for no crop.

    A mode is drawn from ``CROP_MODES``; for a mode other than None, up to 50 crops with w, h ~ U(0.3, 1) x the
    image size and aspect h/w in [0.5, 2] are tried, at a random integer position. A crop keeps the instances
    whose box centre falls strictly inside it and is accepted only if it keeps at least one non-crowd instance
    (the authors' rule: a crop may cut crowd regions freely, but never leaves only crowds). After 50 failures a
    new mode is drawn; the mode None leaves the image uncropped."""
    regular = labels != CROWD_LABEL
    if not regular.any():
        # The authors' loop only accepts a crop that keeps a non-crowd instance, so an image without one always
        # ends up uncropped (their training set has no such image); skip the futile tries.
        return None
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    while True:  # ends: mode None (no crop) is drawn with p 1/6 per round
        mode = CROP_MODES[int(rng.integers(len(CROP_MODES)))]
        if mode is None:
            return None
        for _ in range(CROP_TRIES):
            w = rng.uniform(0.3 * width, width)
            h = rng.uniform(0.3 * height, height)
            if h / w < 0.5 or h / w > 2:  # aspect ratio between 1/2 and 2
                continue
            left = rng.uniform(0.0, width - w)
            top = rng.uniform(0.0, height - h)
            rect = np.array([int(left), int(top), int(left + w), int(top + h)], dtype=np.float64)
            if rect[2] <= rect[0] or rect[3] <= rect[1]:  # only possible for images a few pixels wide
                continue
            # The authors' overlap test is `overlap.min() < min_iou and max_iou < overlap.max()` with max_iou
            # always inf: it never rejects (ssd.pytorch issue #68; fixing it halved their mAP early in training),
            # so the mode's min_iou has no effect, as in their training.
            # Keep the instances whose box centre lies strictly inside the crop.
            keep = ((rect[0] < centers[:, 0]) & (rect[1] < centers[:, 1])
                    & (rect[2] > centers[:, 0]) & (rect[3] > centers[:, 1]))
            # The authors reject crops that keep no non-crowd instance (crowds alone are no training signal).
            if not (keep & regular).any():
                continue
            return rect.astype(np.int64), keep


def _clip_to_crop(boxes: np.ndarray, rect: np.ndarray) -> np.ndarray:
    """Boxes (already in the crop's frame) clipped to it, as the authors clip to the crop rectangle."""
    size = np.array([rect[2] - rect[0], rect[3] - rect[1]] * 2, dtype=np.float64)
    return np.clip(boxes, 0.0, size)


def random_mirror(sample: Sample, rng: np.random.Generator) -> Sample:
    """Horizontal flip with p 0.5."""
    if not _coin(rng):
        return sample
    image, masks, boxes, labels = sample
    width = image.shape[1]
    boxes = boxes.copy()
    boxes[:, [0, 2]] = width - sample.boxes[:, [2, 0]]
    # Contiguous copies: OpenCV (resize) rejects negative strides.
    return Sample(np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(masks[:, :, ::-1]), boxes, labels)


def _resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """uint8 0/1 masks [G, H, W] -> [G, size, size], cv2 bilinear; its rounding to uint8 binarises at 0.5."""
    out = np.empty((len(masks), size, size), dtype=np.uint8)
    # One mask at a time: cv2 handles at most 512 channels, and the loop costs little next to the resizes.
    for i, mask in enumerate(masks):
        out[i] = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
    return out


def _scale_boxes(boxes: np.ndarray, height: int, width: int, size: int) -> np.ndarray:
    return boxes * np.array([size / width, size / height] * 2, dtype=np.float64)


def resize(sample: Sample, size: int) -> Sample:
    """Image and masks to size x size with cv2 bilinear (aspect ratio not kept), boxes scaled."""
    image, masks, boxes, labels = sample
    height, width = image.shape[:2]
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    return Sample(image, _resize_masks(masks, size), _scale_boxes(boxes, height, width, size), labels)


def discard_small_boxes(sample: Sample, size: int, min_px_at_550: float = DISCARD_PX_AT_550) -> Sample:
    """Drop instances (crowds included) whose box is not wider and taller than min_px_at_550·size/550 px."""
    threshold = min_px_at_550 * size / 550
    w = sample.boxes[:, 2] - sample.boxes[:, 0]
    h = sample.boxes[:, 3] - sample.boxes[:, 1]
    keep = (w > threshold) & (h > threshold)  # the authors keep w > t and h > t
    if keep.all():
        return sample
    return Sample(sample.image, sample.masks[keep], sample.boxes[keep], sample.labels[keep])


def augment(sample: Sample, size: int, rng: np.random.Generator, max_expand: float = MAX_EXPAND) -> Sample:
    """SSDAugmentation: photometric distortion, expand, random sample crop, mirror, resize, discard.

    ``max_expand`` bounds expand's zoom-out (the authors': 4; 1 turns it off). A milder zoom-out keeps small
    objects trainable where the data has many of them and no scale variety to learn from.

    Expand and crop are fused into one :func:`_place` (the same draws and the same result as the authors' Expand
    then RandomSampleCrop, as tests/data/augment_reference.py checks, but only the final canvas and the kept
    masks are ever allocated).
    """
    sample = photometric_distort(sample, rng)
    height, width = sample.image.shape[:2]
    top, left, out_h, out_w = 0, 0, height, width
    boxes = sample.boxes
    expand_params = _sample_expand(height, width, rng, max_expand)
    if expand_params is not None:
        out_h, out_w, top, left = expand_params
        boxes = boxes + np.array([left, top, left, top], dtype=np.float64)
    choice = _sample_crop(out_h, out_w, boxes, sample.labels, rng)
    if choice is not None:
        rect, keep = choice
        sample = _place(sample, top - int(rect[1]), left - int(rect[0]),
                        int(rect[3] - rect[1]), int(rect[2] - rect[0]), keep)
        sample = sample._replace(boxes=_clip_to_crop(sample.boxes, rect))
    elif expand_params is not None:
        sample = _place(sample, top, left, out_h, out_w)
    sample = random_mirror(sample, rng)
    sample = resize(sample, size)
    return discard_small_boxes(sample, size)


# --- to the network's input and target ---------------------------------------------------------------------


def to_target(sample: Sample, size: int) -> InstanceTarget:
    """An S x S sample's instances as an :class:`InstanceTarget`: relative boxes, crowds split out (no mask)."""
    boxes = np.clip(sample.boxes / size, 0.0, 1.0).astype(np.float32)
    crowd = sample.labels == CROWD_LABEL
    regular = ~crowd
    return InstanceTarget(
        boxes_xyxy=torch.from_numpy(np.ascontiguousarray(boxes[regular])).reshape(-1, 4),
        labels=torch.from_numpy(np.ascontiguousarray(sample.labels[regular])),
        masks=torch.from_numpy(np.ascontiguousarray(sample.masks[regular])).reshape(-1, size, size),
        crowd_boxes_xyxy=torch.from_numpy(np.ascontiguousarray(boxes[crowd])).reshape(-1, 4),
    )


def train_transform(image_bgr: np.ndarray, masks: np.ndarray, boxes: np.ndarray, labels: np.ndarray, size: int,
                    backbone: BackboneConfig, rng: np.random.Generator, max_expand: float = MAX_EXPAND
                    ) -> tuple[Tensor, InstanceTarget]:
    """Augment one image (``augment``), then normalise it exactly as inference does.

    Returns the network input [3, S, S] (RGB, normalised by ``normalize_image``; the image is already S x S,
    so its resize is the identity) and the :class:`InstanceTarget`.
    """
    sample = augment(convert_from_ints(image_bgr, masks, boxes, labels), size, rng, max_expand)
    image = torch.from_numpy(sample.image).permute(2, 0, 1)[None]
    return normalize_image(image, size, backbone)[0], to_target(sample, size)


def eval_transform(image_bgr: np.ndarray, masks: np.ndarray, boxes: np.ndarray, labels: np.ndarray, size: int,
                   backbone: BackboneConfig, rng: np.random.Generator | None = None, discard: bool = True,
                   ) -> tuple[Tensor, InstanceTarget]:
    """No augmentation: the image preprocessed exactly as for inference (``normalize_image``: torch bilinear
    resize, then normalisation), masks and boxes resized to S x S, tiny boxes discarded unless ``discard`` is
    False (the losses need it: a box under a prototype pixel has no area to normalise by). ``rng`` is unused."""
    image_bgr = np.asarray(image_bgr)
    height, width = image_bgr.shape[:2]
    masks, boxes, labels = _instances(height, width, masks, boxes, labels)
    image = normalize_image(image_to_tensor(image_bgr), size, backbone)[0]
    # The Sample's image is a placeholder: the input is done, only the instances are still needed.
    sample = Sample(image_bgr[:0, :0].astype(np.float32), _resize_masks(masks, size),
                    _scale_boxes(boxes, height, width, size), labels)
    if discard:
        sample = discard_small_boxes(sample, size)
    return image, to_target(sample, size)


@dataclass(frozen=True)
class TrainTransform:
    """:func:`train_transform` as a picklable :data:`Transform` (DataLoader workers)."""

    size: int
    backbone: BackboneConfig
    max_expand: float = MAX_EXPAND

    def __call__(self, image_bgr: np.ndarray, masks: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                 rng: np.random.Generator) -> tuple[Tensor, InstanceTarget]:
        return train_transform(image_bgr, masks, boxes, labels, self.size, self.backbone, rng, self.max_expand)


@dataclass(frozen=True)
class EvalTransform:
    """:func:`eval_transform` as a picklable :data:`Transform`."""

    size: int
    backbone: BackboneConfig
    discard: bool = True

    def __call__(self, image_bgr: np.ndarray, masks: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                 rng: np.random.Generator | None = None) -> tuple[Tensor, InstanceTarget]:
        return eval_transform(image_bgr, masks, boxes, labels, self.size, self.backbone, rng, self.discard)
