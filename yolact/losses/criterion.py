"""The YOLACT training objective: matching, then the four weighted, normalised loss terms (the authors'
MultiBoxLoss with the published models' settings)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from yolact.config import LossConfig
from yolact.losses.box_loss import box_loss
from yolact.losses.class_loss import ohem_class_loss
from yolact.losses.mask_loss import mask_loss_and_iou_samples
from yolact.losses.maskiou_loss import maskiou_loss
from yolact.losses.matching import AnchorMatch, match_anchors
from yolact.losses.semantic_loss import semantic_loss
from yolact.modeling.yolact import YolactOutput
from yolact.structures import InstanceTarget


class YolactCriterion:
    """``criterion(output, targets) -> {"class", "box", "mask", "semantic"}``, each weighted and normalised;
    with a ``maskiou_net`` (YOLACT++) also "maskiou", normalised as the anchor losses.

    Class, box and mask losses are divided by the batch's total number of positive anchors, the semantic loss by
    the batch size, as the authors. Their sum is the training loss. The number of positives is taken as at least
    1 so that a batch without any ground truth gives finite (background-only) losses instead of the authors' 0/0;
    any ground truth forces at least one positive, so this changes nothing otherwise.
    """

    def __init__(
        self,
        loss_config: LossConfig | None = None,
        box_variances: tuple[float, float] = (0.1, 0.2),
        generator: torch.Generator | None = None,
        maskiou_net: nn.Module | None = None,
    ) -> None:
        self.config = loss_config if loss_config is not None else LossConfig()
        # YOLACT++'s re-scoring network, trained by the mask-IoU term (None: YOLACT, no such term).
        self.maskiou_net = maskiou_net
        self.box_variances = box_variances
        # Draws the mask loss's random subsets; None uses the global RNG (torch.manual_seed).
        self.generator = generator

    def match(self, output: YolactOutput, targets: Sequence[InstanceTarget]) -> AnchorMatch:
        """Batched matching targets: class_targets [B, A], gt_index [B, A], box_targets [B, A, 4]."""
        cfg = self.config
        matches = [
            match_anchors(
                target.boxes_xyxy,
                target.labels,
                target.crowd_boxes_xyxy,
                output.anchors_cxcywh,
                cfg.positive_iou,
                cfg.negative_iou,
                cfg.crowd_iou,
                self.box_variances,
            )
            for target in targets
        ]
        return AnchorMatch(*(torch.stack(parts) for parts in zip(*matches, strict=True)))

    def __call__(self, output: YolactOutput, targets: Sequence[InstanceTarget]) -> dict[str, Tensor]:
        batch = output.loc.shape[0]
        if len(targets) != batch:
            raise ValueError(f"got {len(targets)} targets for a batch of {batch} images")
        if output.semantic_logits is None:
            raise ValueError("output has no semantic_logits: the model must be in training mode (model.train())")
        cfg = self.config
        device = output.loc.device
        targets = [target.to(device) for target in targets]
        matched = self.match(output, targets)

        num_pos = (matched.class_targets > 0).sum().clamp(min=1).to(torch.float32)
        class_term = ohem_class_loss(output.class_logits, matched.class_targets, cfg.negatives_per_positive)
        box_term = box_loss(output.loc, matched.box_targets, matched.class_targets)
        mask_term, iou_samples = mask_loss_and_iou_samples(
            output.prototypes, output.mask_coeffs, matched.class_targets, matched.gt_index, targets,
            cfg.masks_to_train, self.generator, cfg.maskiou_min_area if self.maskiou_net is not None else None)
        semantic_term = semantic_loss(output.semantic_logits, targets)
        losses = {
            "class": class_term * cfg.class_weight / num_pos,
            "box": box_term * cfg.box_weight / num_pos,
            "mask": mask_term * cfg.mask_weight / num_pos,
            "semantic": semantic_term * cfg.semantic_weight / batch,
        }
        if self.maskiou_net is not None:
            # A batch with no qualifying mask gives a zero term that still reaches every parameter of the net, so
            # that DistributedDataParallel sees the same parameters receive gradients on every process.
            iou_term = (maskiou_loss(self.maskiou_net, iou_samples) if iou_samples is not None
                        else mask_term.new_zeros(()) + 0 * sum(p.sum() for p in self.maskiou_net.parameters()))
            losses["maskiou"] = iou_term * cfg.maskiou_weight / num_pos
        return losses
