"""Post-processing: raw network output -> per-image detections -> boxes and masks at image size.

Two steps, as the authors' ``Detect`` and ``postprocess``, both in :class:`Postprocessor`: ``detect`` decodes
boxes, picks candidates and runs NMS at network resolution; ``finalize`` applies the score threshold and top-k,
re-scores by mask IoU (YOLACT++), assembles and crops the masks, and scales everything to the original image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from yolact.config import PostprocessConfig
from yolact.modeling.yolact import YolactOutput
from yolact.ops import (
    assemble_masks,
    crop_masks,
    cross_class_fast_nms,
    decode_boxes,
    fast_nms,
    paste_bounds,
    paste_masks,
    scale_boxes_to_image,
    traditional_nms,
)


@dataclass
class Detections:
    """One image's detections after NMS, at network resolution, sorted by descending score."""

    boxes_xyxy: Tensor  # [N, 4] relative to the input, not clamped
    class_ids: Tensor  # [N] contiguous, background excluded
    scores: Tensor  # [N]
    mask_coeffs: Tensor  # [N, k]
    prototypes: Tensor  # [h, w, k]

    def select(self, keep: Tensor) -> Detections:
        """The detections at ``keep``: a boolean mask [N] or indices."""
        if keep.dtype == torch.bool:
            keep = keep.nonzero().squeeze(1)  # one host sync on CUDA, not one per field
        return Detections(self.boxes_xyxy[keep], self.class_ids[keep], self.scores[keep], self.mask_coeffs[keep],
                          self.prototypes)

    def soft_masks(self) -> Tensor:
        """Cropped soft masks [N, h, w] at prototype resolution: sigmoid(P·Cᵀ), zeroed outside the box."""
        return crop_masks(assemble_masks(self.prototypes, self.mask_coeffs), self.boxes_xyxy)


@dataclass
class ImageDetections:
    """One image's final detections at the original image size."""

    boxes_xyxy: Tensor  # [N, 4] int64 pixel corners, clamped to the image
    class_ids: Tensor  # [N]
    scores: Tensor  # [N] the detection's score: the class score, re-scored by its mask for YOLACT++
    masks: Tensor  # [N, H, W] bool
    box_scores: Tensor  # [N] the class score (what box AP ranks by; equal to scores without re-scoring)
    mask_bounds_xyxy: Tensor  # [N, 4] int64, ends exclusive: every True pixel of mask i lies inside box i


class Postprocessor:
    """Everything after the network, per image: :meth:`detect` then :meth:`finalize` (``__call__`` does both).

    ``config`` decides the candidates and the NMS; ``score_threshold`` (strictly above, when > 0) and ``top_k``
    what is kept, and ``class_ids`` (contiguous indices; None: all) the classes NMS runs on; ``rescorer`` is YOLACT++'s
    mask-IoU network (cropped soft masks [N, 1, h, w] -> IoU per class [N, C]), handed in by whoever owns the
    model, or None."""

    def __init__(self, config: PostprocessConfig, input_size: int, box_variances: tuple[float, float] = (0.1, 0.2),
                 score_threshold: float = 0.0, top_k: int | None = None,
                 rescorer: Callable[[Tensor], Tensor] | None = None, class_ids: Sequence[int] | None = None) -> None:
        self.config = config
        self.input_size = input_size
        self.box_variances = box_variances
        self.score_threshold = score_threshold
        self.top_k = top_k
        self.rescorer = rescorer
        self.class_ids = None if class_ids is None else torch.tensor(sorted(class_ids), dtype=torch.int64)

    def __call__(self, output: YolactOutput, image_sizes: Sequence[tuple[int, int]]) -> list[ImageDetections]:
        """The network's output for a batch -> final detections at each image's (height, width)."""
        return [self.finalize(dets, width, height)
                for dets, (height, width) in zip(self.detect(output), image_sizes, strict=True)]

    def detect(self, output: YolactOutput) -> list[Detections]:
        """Decoded boxes, candidates and NMS, per image of the batch, at network resolution."""
        scores = output.class_logits.softmax(dim=-1)
        return [
            self.detect_one(output.loc[i], scores[i], output.mask_coeffs[i], output.anchors_cxcywh,
                            output.prototypes[i])
            for i in range(output.loc.shape[0])
        ]

    def detect_one(self, loc: Tensor, scores: Tensor, mask_coeffs: Tensor, anchors: Tensor, prototypes: Tensor
                   ) -> Detections:
        """One image: loc [A, 4], softmax scores [A, C+1], coefficients [A, k], anchors [A, 4], prototypes [h, w, k]."""
        cfg = self.config
        if self.class_ids is not None:
            # Other classes out before NMS, as if the model had only these: the best of the kept classes survive.
            kept = torch.zeros(scores.shape[1], dtype=torch.bool, device=scores.device)
            kept[self.class_ids.to(scores.device) + 1] = True
            scores = scores * kept
        boxes = decode_boxes(loc, anchors, self.box_variances)
        candidates = (scores[:, 1:].max(dim=1).values > cfg.conf_threshold).nonzero().squeeze(1)
        # Rows gathered, then viewed as [C, A'] (background dropped): picking the columns of the transposed scores
        # instead is a strided gather over every class, the slowest step of NMS when most anchors are candidates.
        boxes = boxes.index_select(0, candidates)
        class_scores = scores.index_select(0, candidates)[:, 1:].t()
        if cfg.nms == "fast":
            index, classes, kept_scores = fast_nms(
                boxes, class_scores, cfg.nms_iou_threshold, cfg.nms_top_k, cfg.max_detections
            )
        elif cfg.nms == "cross_class_fast":
            index, classes, kept_scores = cross_class_fast_nms(
                boxes, class_scores, cfg.nms_iou_threshold, cfg.nms_top_k, cfg.max_detections
            )
        elif cfg.nms == "traditional":
            index, classes, kept_scores = traditional_nms(
                boxes, class_scores, cfg.nms_iou_threshold, cfg.conf_threshold, cfg.max_detections, self.input_size
            )
        else:
            raise ValueError(f"unknown NMS {cfg.nms!r}; expected 'fast', 'cross_class_fast' or 'traditional'")
        return Detections(boxes[index], classes, kept_scores, mask_coeffs.index_select(0, candidates[index]),
                          prototypes)

    def finalize(self, detections: Detections, width: int, height: int) -> ImageDetections:
        """Threshold, rank and keep the ``top_k`` best, and produce integer pixel boxes and boolean masks at
        ``height`` x ``width``: :meth:`select`, soft masks, :meth:`rescore`, :meth:`paste` (the stages
        ``yolact benchmark`` times)."""
        kept = self.select(detections)
        ranked = self.rescore(kept, kept.soft_masks())
        return self.paste(ranked, width, height)

    def select(self, detections: Detections) -> Detections:
        """The detections above the score threshold; without re-scoring, already cut to the ``top_k`` best, so
        that only their masks are assembled."""
        if self.score_threshold > 0:
            detections = detections.select(detections.scores > self.score_threshold)
        if self.rescorer is None:
            detections = detections.select(detections.scores.argsort(descending=True)[: self.top_k])
        return detections

    def rescore(self, detections: Detections, soft_masks: Tensor) -> RankedDetections:
        """YOLACT++: after the threshold, which applies to the class scores, each score is multiplied by its
        class's predicted mask IoU and the detections are ranked by that, as the authors' postprocess and
        prep_display do (every candidate's mask is needed to rank them). Without a rescorer, the scores as they
        are."""
        if self.rescorer is None or not len(detections.scores):
            return RankedDetections(detections, detections.scores, detections.scores, soft_masks)
        predicted = self.rescorer(soft_masks[:, None])
        scores = detections.scores * predicted.gather(1, detections.class_ids[:, None]).squeeze(1)
        order = scores.argsort(descending=True)[: self.top_k]
        return RankedDetections(detections.select(order), scores[order], detections.scores[order], soft_masks[order])

    def paste(self, ranked: RankedDetections, width: int, height: int) -> ImageDetections:
        """Masks pasted at image size inside their bounds, boxes scaled to the image."""
        mask_bounds = paste_bounds(ranked.soft_masks, height, width)
        masks = paste_masks(ranked.soft_masks, height, width, bounds_xyxy=mask_bounds)
        boxes = scale_boxes_to_image(ranked.detections.boxes_xyxy, width, height)
        return ImageDetections(boxes, ranked.detections.class_ids, ranked.scores, masks, ranked.box_scores,
                               mask_bounds)


@dataclass
class RankedDetections:
    """Detections in their final order with their final scores (re-scored for YOLACT++), the class scores they
    were kept by, and their cropped soft masks [N, h, w]."""

    detections: Detections
    scores: Tensor
    box_scores: Tensor
    soft_masks: Tensor
