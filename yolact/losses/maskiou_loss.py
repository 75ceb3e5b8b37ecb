"""YOLACT++'s mask-IoU loss (TPAMI, section 3.2): the re-scoring network learns to predict, from a cropped soft
mask alone, the IoU of its binarised form with the ground truth."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from yolact.losses.mask_loss import MaskIoUSamples


def maskiou_loss(maskiou_net: nn.Module, samples: MaskIoUSamples) -> Tensor:
    """Summed smooth L1 between the predicted IoU of each sample's class and its true IoU (unweighted and
    unnormalised; the criterion divides by the number of positives, as the other anchor losses)."""
    predicted = maskiou_net(samples.soft_masks.float()).gather(1, samples.labels[:, None]).squeeze(1)
    return F.smooth_l1_loss(predicted, samples.iou, reduction="sum")
