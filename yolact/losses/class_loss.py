"""Classification loss: softmax cross-entropy with online hard negative mining (SSD; the authors' ohem_conf_loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def select_hard_negatives(class_logits: Tensor, class_targets: Tensor, negatives_per_positive: int = 3) -> Tensor:
    """Boolean [B, A]: per image the ``negatives_per_positive`` x num_pos (at most A - 1) hardest negatives.

    Hardness is logsumexp(logits) - logit_background = -log softmax(background), the cross-entropy an anchor would
    pay as background. Positives and neutrals are ranked with hardness 0, then dropped, exactly as the authors do:
    an image with too few negatives never borrows positives or neutrals.
    """
    with torch.no_grad():
        positive = class_targets > 0
        neutral = class_targets < 0
        hardness = torch.logsumexp(class_logits, dim=-1) - class_logits[..., 0]  # [B, A]
        hardness = hardness.masked_fill(positive | neutral, 0)
        # rank[a] = position of anchor a in descending hardness (argsort of the argsort).
        order = hardness.sort(dim=1, descending=True).indices
        rank = order.sort(dim=1).indices
        num_pos = positive.sum(dim=1, keepdim=True)
        num_neg = torch.clamp(negatives_per_positive * num_pos, max=class_targets.shape[1] - 1)
        return (rank < num_neg) & ~positive & ~neutral


def ohem_class_loss(class_logits: Tensor, class_targets: Tensor, negatives_per_positive: int = 3) -> Tensor:
    """Summed cross-entropy over positives and hard negatives (unnormalised: the criterion divides by num_pos).

    ``class_logits`` [B, A, C+1] (background first), ``class_targets`` [B, A] (0 background, c+1, -1 neutral).
    """
    negative = select_hard_negatives(class_logits, class_targets, negatives_per_positive)
    keep = (class_targets > 0) | negative
    return F.cross_entropy(class_logits[keep], class_targets[keep], reduction="sum")
