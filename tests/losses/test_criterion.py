"""Tests for yolact.losses.criterion: keys, weights, normalisation, gradients, and a smoke test on the network."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from loss_helpers import NUM_CLASSES, NUM_PROTOTYPES, box_masks, make_target, random_output, two_image_targets

from yolact import build_yolact, get_config
from yolact.config import LossConfig
from yolact.losses import YolactCriterion, match_anchors
from yolact.losses.mask_loss import downsample_masks
from yolact.losses.semantic_loss import semantic_targets
from yolact.modeling.yolact import YolactOutput
from yolact.structures import InstanceTarget

KEYS = {"class", "box", "mask", "semantic"}


def total(losses: dict[str, torch.Tensor]) -> float:
    return sum(v.item() for v in losses.values())


def test_returns_the_four_weighted_terms() -> None:
    losses = YolactCriterion(LossConfig())(random_output(2), two_image_targets())
    assert set(losses) == KEYS
    for value in losses.values():
        assert value.shape == () and torch.isfinite(value) and value.item() > 0


def test_matching_is_per_image() -> None:
    output = random_output(2)
    targets = two_image_targets()
    matched = YolactCriterion(LossConfig()).match(output, targets)
    assert matched.class_targets.shape == (2, 32) and matched.box_targets.shape == (2, 32, 4)
    for b, target in enumerate(targets):
        single = match_anchors(target.boxes_xyxy, target.labels, target.crowd_boxes_xyxy, output.anchors_cxcywh,
                               0.5, 0.4, 0.7, (0.1, 0.2))
        assert torch.equal(matched.class_targets[b], single.class_targets)
        assert torch.equal(matched.gt_index[b], single.gt_index)
        assert torch.equal(matched.box_targets[b], single.box_targets)


def test_weights_are_applied() -> None:
    output, targets = random_output(2), two_image_targets()
    base = YolactCriterion(LossConfig())(output, targets)
    unit = LossConfig(class_weight=1, box_weight=1, mask_weight=1, semantic_weight=1)
    raw = YolactCriterion(unit)(output, targets)
    assert math.isclose(base["class"].item(), raw["class"].item(), rel_tol=1e-6)
    assert math.isclose(base["box"].item(), 1.5 * raw["box"].item(), rel_tol=1e-6)
    assert math.isclose(base["mask"].item(), 6.125 * raw["mask"].item(), rel_tol=1e-6)
    assert math.isclose(base["semantic"].item(), raw["semantic"].item(), rel_tol=1e-6)

    for key, field in (("class", "class_weight"), ("box", "box_weight"), ("mask", "mask_weight"),
                       ("semantic", "semantic_weight")):
        zeroed = YolactCriterion(dataclasses.replace(LossConfig(), **{field: 0.0}))(output, targets)
        assert zeroed[key].item() == 0.0
        for other in KEYS - {key}:
            assert zeroed[other].item() == base[other].item()


def test_normalised_by_total_positives_and_batch_size() -> None:
    output, targets = random_output(2), two_image_targets()
    criterion = YolactCriterion(LossConfig())
    batch = criterion(output, targets)
    num_pos = (criterion.match(output, targets).class_targets > 0).sum(dim=1).tolist()
    assert all(n > 0 for n in num_pos)
    singles = [criterion(YolactOutput(*(t[b:b + 1] if i != 3 else t for i, t in enumerate(output))), [target])
               for b, target in enumerate(targets)]
    for key in ("class", "box", "mask"):
        # Each image's term was divided by its own positives; the batch's by their total.
        expected = sum(single[key].item() * n for single, n in zip(singles, num_pos, strict=True)) / sum(num_pos)
        assert math.isclose(batch[key].item(), expected, rel_tol=1e-5), key
    assert math.isclose(batch["semantic"].item(), sum(s["semantic"].item() for s in singles) / 2, rel_tol=1e-5)


def test_batch_without_ground_truth_is_finite() -> None:
    losses = YolactCriterion(LossConfig())(random_output(2), [make_target([], []), make_target([], [])])
    assert losses["box"].item() == 0.0 and losses["mask"].item() == 0.0 and losses["class"].item() == 0.0
    assert torch.isfinite(losses["semantic"]) and losses["semantic"].item() > 0


def test_gradients_flow_to_every_output() -> None:
    output = random_output(2, requires_grad=True)
    losses = YolactCriterion(LossConfig())(output, two_image_targets())
    sum(losses.values()).backward()
    for name in ("loc", "class_logits", "mask_coeffs", "prototypes", "semantic_logits"):
        grad = getattr(output, name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def perfect_output(output: YolactOutput, targets: list[InstanceTarget]) -> YolactOutput:
    """Predictions that agree with the targets: exact offsets, confident classes, masks and semantic maps."""
    matched = YolactCriterion(LossConfig()).match(output, targets)
    positive = matched.class_targets > 0
    loc = torch.where(positive[..., None], matched.box_targets, torch.zeros_like(output.loc))
    class_logits = 20.0 * F.one_hot(matched.class_targets.clamp(min=0), NUM_CLASSES + 1).float()
    # Prototype g is object g's mask (±10 logits); a positive's coefficients pick its object's prototype.
    _, h, w, _ = output.prototypes.shape
    prototypes = torch.zeros_like(output.prototypes)
    for b, target in enumerate(targets):
        masks = downsample_masks(target.masks, h, w)
        prototypes[b, :, :, : masks.shape[0]] = (20 * masks - 10).permute(1, 2, 0)
    mask_coeffs = F.one_hot(matched.gt_index, NUM_PROTOTYPES).float() * positive[..., None]
    _, _, sh, sw = output.semantic_logits.shape
    semantic = torch.stack([20 * semantic_targets(t, NUM_CLASSES, sh, sw) - 10 for t in targets])
    return YolactOutput(loc, class_logits, mask_coeffs, output.anchors_cxcywh, prototypes, semantic)


def test_perfect_prediction_beats_random() -> None:
    targets = two_image_targets()
    criterion = YolactCriterion(LossConfig())
    random_losses = criterion(random_output(2), targets)
    perfect_losses = criterion(perfect_output(random_output(2), targets), targets)
    assert perfect_losses["box"].item() == 0.0
    for key in KEYS:
        assert perfect_losses[key].item() < random_losses[key].item(), key
    assert total(perfect_losses) < 0.01 * total(random_losses)


def test_rejects_bad_inputs() -> None:
    criterion = YolactCriterion(LossConfig())
    with pytest.raises(ValueError, match="targets"):
        criterion(random_output(2), two_image_targets()[:1])
    with pytest.raises(ValueError, match="train"):
        criterion(random_output(2)._replace(semantic_logits=None), two_image_targets())


def test_smoke_real_network_forward_criterion_backward() -> None:
    torch.manual_seed(0)
    config = dataclasses.replace(get_config("yolact_resnet50"), max_size=128)
    model = build_yolact(config).train()
    output = model(torch.randn(2, 3, 128, 128))
    boxes = [torch.tensor([[0.1, 0.2, 0.6, 0.7], [0.5, 0.5, 0.95, 0.9]]), torch.tensor([[0.2, 0.1, 0.4, 0.5]])]
    targets = [
        InstanceTarget(boxes[0], torch.tensor([0, 56]), box_masks(boxes[0], 128), torch.zeros(0, 4)),
        InstanceTarget(boxes[1], torch.tensor([79]), box_masks(boxes[1], 128), torch.tensor([[0.6, 0.6, 1.0, 1.0]])),
    ]
    losses = YolactCriterion(config.loss, config.box_variances)(output, targets)
    assert set(losses) == KEYS and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name in ("semantic_seg_conv.weight", "proto_net", "prediction_layers.0", "backbone", "fpn"):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(name)]
        assert grads and all(g is not None for g in grads), name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    output, targets = random_output(2), two_image_targets()  # targets stay on the CPU: the criterion moves them
    cuda_output = YolactOutput(*(t.cuda() for t in output))
    cpu_losses = YolactCriterion(LossConfig())(output, targets)
    cuda_losses = YolactCriterion(LossConfig())(cuda_output, targets)
    for key in KEYS:
        assert cuda_losses[key].device.type == "cuda"
        assert math.isclose(cuda_losses[key].item(), cpu_losses[key].item(), rel_tol=1e-4), key
