"""YOLACT++'s mask-IoU loss: the samples (binarised cropped masks against their ground truth, small ground truths
skipped), the smooth L1 of the predicted IoU, and the criterion's weighted, normalised term."""

from __future__ import annotations

import math

import torch
from loss_helpers import make_target, mask_loss, random_output, two_image_targets
from torch import nn

from yolact.config import LossConfig
from yolact.losses import MaskIoUSamples, YolactCriterion, mask_loss_and_iou_samples, maskiou_loss
from yolact.modeling.maskiou import MaskIoUNet

# As test_mask_loss: two box-shaped objects aligned to 4x4 blocks of the 32 px input, so that on the 8x8 prototypes
# object 0 covers 4 x 3 = 12 cells (crop window 6 x 5 = 30) and object 1 covers 4 x 4 = 16 (crop 5 x 5 = 25).
BOXES = [[0.25, 0.25, 0.75, 0.625], [0.0, 0.5, 0.5, 1.0]]


def saturated_case():
    """Every assembled mask is 1 inside its crop window: its IoU with the ground truth is mask / crop area."""
    prototypes = torch.full((1, 8, 8, 1), 50.0)
    coeffs = torch.ones(1, 2, 1)
    return prototypes, coeffs, torch.tensor([[1, 2]]), torch.tensor([[0, 1]]), [make_target(BOXES, [0, 1])]


def test_samples_are_binarised_mask_iou_with_small_ground_truths_skipped() -> None:
    prototypes, coeffs, class_targets, gt_index, targets = saturated_case()
    loss, samples = mask_loss_and_iou_samples(prototypes, coeffs, class_targets, gt_index, targets,
                                              maskiou_min_area=0)
    assert math.isclose(loss.item(), mask_loss(prototypes, coeffs, class_targets, gt_index, targets).item())
    assert samples is not None and samples.soft_masks.shape == (2, 1, 8, 8)
    torch.testing.assert_close(samples.iou, torch.tensor([12 / 30, 16 / 25]))
    assert samples.labels.tolist() == [0, 1]
    # The authors' discard_mask_area: ground truths of at most 12 prototype pixels are not trained on.
    _, samples = mask_loss_and_iou_samples(prototypes, coeffs, class_targets, gt_index, targets,
                                           maskiou_min_area=12)
    assert samples is not None and samples.labels.tolist() == [1]
    _, none = mask_loss_and_iou_samples(prototypes, coeffs, class_targets, gt_index, targets, maskiou_min_area=16)
    assert none is None


class ConstantIoU(nn.Module):
    """Predicts ``value + class index / 10`` for every class, whatever the mask."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        return self.value + torch.arange(3.0)[None].expand(masks.shape[0], 3) / 10


def test_loss_is_smooth_l1_of_each_samples_class() -> None:
    samples = MaskIoUSamples(torch.zeros(3, 1, 8, 8), torch.tensor([0.2, 0.9, 0.5]), torch.tensor([0, 2, 1]))
    predicted = [0.3, 0.3 + 0.2, 0.3 + 0.1]
    expected = sum(0.5 * (p - t) ** 2 for p, t in zip(predicted, [0.2, 0.9, 0.5], strict=True))
    assert math.isclose(maskiou_loss(ConstantIoU(0.3), samples).item(), expected, rel_tol=1e-6)
    far = maskiou_loss(ConstantIoU(3.0), samples).item()  # beyond 1 the loss is linear: |d| - 0.5
    assert math.isclose(far, sum(abs(p - t) - 0.5 for p, t in zip([3.0, 3.2, 3.1], [0.2, 0.9, 0.5], strict=True)),
                        rel_tol=1e-6)


def test_criterion_adds_the_weighted_term_and_trains_the_net() -> None:
    torch.manual_seed(0)
    net = MaskIoUNet(3, channels=(4, 4))
    output, targets = random_output(2, requires_grad=True), two_image_targets()
    config = LossConfig(maskiou_min_area=0)
    losses = YolactCriterion(config, maskiou_net=net)(output, targets)
    assert set(losses) == {"class", "box", "mask", "semantic", "maskiou"}
    assert "maskiou" not in YolactCriterion(config)(output, targets)
    plain = YolactCriterion(config)
    matched = plain.match(output, targets)
    num_pos = (matched.class_targets > 0).sum().item()
    _, samples = mask_loss_and_iou_samples(output.prototypes, output.mask_coeffs, matched.class_targets,
                                           matched.gt_index, targets, maskiou_min_area=0)
    expected = maskiou_loss(net, samples).item() * 25 / num_pos
    assert math.isclose(losses["maskiou"].item(), expected, rel_tol=1e-5)
    sum(losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters() if p.dim() > 1)
    # As the authors: the term's gradient also reaches the masks it scores (no detach).
    grad_with = output.prototypes.grad.clone()
    output.prototypes.grad = None
    sum(v for k, v in YolactCriterion(config, maskiou_net=net)(output, targets).items() if k != "maskiou").backward()
    assert not torch.equal(grad_with, output.prototypes.grad)
