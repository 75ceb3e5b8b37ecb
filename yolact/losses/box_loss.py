"""Box regression loss: smooth L1 on the encoded offsets of positive anchors (SSD; the authors' loss 'B')."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def box_loss(loc: Tensor, box_targets: Tensor, class_targets: Tensor) -> Tensor:
    """Summed smooth L1 (beta 1) between predicted ``loc`` [B, A, 4] and ``box_targets`` [B, A, 4] where
    ``class_targets`` [B, A] > 0 (unnormalised: the criterion divides by the number of positives)."""
    positive = class_targets > 0
    return F.smooth_l1_loss(loc[positive], box_targets[positive].to(loc.dtype), reduction="sum", beta=1.0)
