"""Tests for yolact.losses.mask_loss against a direct per-pixel computation (assembly, crop, area division,
subsampling)."""

from __future__ import annotations

import math

import torch
from loss_helpers import make_target, mask_loss

from yolact.losses import downsample_masks

# Two objects whose boxes (and masks) are aligned to 4x4 blocks of the 32x32 input, so that bilinear downsampling
# to the 8x8 prototypes gives exactly the box's cells (each sample falls between two pixels of one block).
BOXES = [[0.25, 0.25, 0.75, 0.625], [0.0, 0.5, 0.5, 1.0]]
# Per object, in prototype pixels: (cols, rows) of the mask, of the crop (box padded by 1, clamped), and box area.
MASK_CELLS = [(range(2, 6), range(2, 5)), (range(0, 4), range(4, 8))]
CROP_CELLS = [(range(1, 7), range(1, 6)), (range(0, 5), range(3, 8))]
BOX_AREA = [4 * 3, 4 * 4]


def bce(p: float, t: float) -> float:
    # torch's binary_cross_entropy clamps each log at -100.
    log_p = max(math.log(p), -100.0) if p > 0 else -100.0
    log_q = max(math.log(1 - p), -100.0) if p < 1 else -100.0
    return -(t * log_p + (1 - t) * log_q)


def direct_instance_loss(prototypes: torch.Tensor, coeffs: torch.Tensor, gt: int) -> float:
    """One instance's loss, pixel by pixel in plain Python: BCE(crop(σ(P·c)), mask) summed / box area."""
    mask_cols, mask_rows = MASK_CELLS[gt]
    crop_cols, crop_rows = CROP_CELLS[gt]
    total = 0.0
    for y in range(8):
        for x in range(8):
            dot = sum(prototypes[y, x, k].item() * coeffs[k].item() for k in range(coeffs.shape[0]))
            p = 1 / (1 + math.exp(-dot)) if (x in crop_cols and y in crop_rows) else 0.0
            t = 1.0 if (x in mask_cols and y in mask_rows) else 0.0
            total += bce(p, t)
    return total / BOX_AREA[gt]


def make_case(num_anchors: int = 6, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.relu(torch.randn(1, 8, 8, 4, generator=gen))
    coeffs = torch.tanh(2 * torch.randn(1, num_anchors, 4, generator=gen))
    target = make_target(BOXES, [0, 1])
    return prototypes, coeffs, target


def test_downsampled_ground_truth_is_the_box_cells() -> None:
    masks = downsample_masks(make_target(BOXES, [0, 1]).masks, 8, 8)
    assert masks.dtype == torch.float32
    for g, (cols, rows) in enumerate(MASK_CELLS):
        expected = torch.zeros(8, 8)
        expected[rows.start:rows.stop, cols.start:cols.stop] = 1
        assert torch.equal(masks[g], expected)


def test_downsampling_binarises_strictly_above_half() -> None:
    masks = torch.zeros(2, 8, 8, dtype=torch.uint8)
    masks[0, :, 0] = 1  # half of each 2-pixel sample: 0.5, not kept
    masks[1, :, 0:2] = 1  # a whole sample: 1
    down = downsample_masks(masks, 4, 4)
    assert down[0].sum().item() == 0
    assert down[1, :, 0].tolist() == [1.0] * 4 and down[1, :, 1:].sum().item() == 0
    assert downsample_masks(torch.zeros(0, 8, 8, dtype=torch.uint8), 4, 4).shape == (0, 4, 4)


def test_mask_loss_equals_direct_computation() -> None:
    prototypes, coeffs, target = make_case()
    class_targets = torch.tensor([[1, 1, -1, 2, 0, 0]])  # anchors 0, 1 -> object 0; anchor 3 -> object 1
    gt_index = torch.tensor([[0, 0, 1, 1, 0, 1]])
    loss = mask_loss(prototypes, coeffs, class_targets, gt_index, [target], masks_to_train=100)
    expected = sum(direct_instance_loss(prototypes[0], coeffs[0, a], g) for a, g in ((0, 0), (1, 0), (3, 1)))
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)


def test_pixels_outside_the_crop_do_not_count() -> None:
    # Coefficients that make the raw mask 1 everywhere: only the crop window's background pixels pay.
    prototypes = torch.full((1, 8, 8, 1), 50.0)
    coeffs = torch.ones(1, 1, 1)
    loss = mask_loss(prototypes, coeffs, torch.tensor([[1]]), torch.tensor([[0]]), [make_target(BOXES[:1], [0])])
    # Crop 6 x 5 = 30 pixels, 12 of them the object's: 18 pixels at -log(1 - σ(50)) = 100 (clamped), / area 12.
    assert math.isclose(loss.item(), 18 * 100 / 12, rel_tol=1e-6)


def test_images_without_positives_contribute_nothing() -> None:
    prototypes, coeffs, target = make_case()
    class_targets = torch.tensor([[1, 0, 0, 2, 0, 0]])
    gt_index = torch.tensor([[0, 0, 0, 1, 0, 0]])
    single = mask_loss(prototypes, coeffs, class_targets, gt_index, [target])
    batch = mask_loss(prototypes.expand(2, -1, -1, -1), coeffs.expand(2, -1, -1),
                      torch.cat((class_targets, torch.tensor([[0, -1, 0, 0, 0, 0]]))),
                      gt_index.expand(2, -1), [target, make_target([], [])])
    assert math.isclose(batch.item(), single.item(), rel_tol=1e-6)
    no_positive = mask_loss(prototypes, coeffs, torch.zeros(1, 6, dtype=torch.int64), gt_index, [target])
    assert no_positive.item() == 0.0


def test_subsampling_draws_masks_to_train_and_rescales() -> None:
    prototypes, coeffs, target = make_case()
    class_targets = torch.tensor([[1, 2, 1, 2, 1, 0]])  # five positives
    gt_index = torch.tensor([[0, 1, 0, 1, 0, 0]])
    positives = [0, 1, 2, 3, 4]

    def expected(select: list[int]) -> float:
        anchors = [positives[i] for i in select]
        return 5 / 2 * sum(direct_instance_loss(prototypes[0], coeffs[0, a], gt_index[0, a].item()) for a in anchors)

    # Global RNG: repeatable under torch.manual_seed, and the subset is torch.randperm's.
    torch.manual_seed(7)
    loss = mask_loss(prototypes, coeffs, class_targets, gt_index, [target], masks_to_train=2)
    torch.manual_seed(7)
    select = torch.randperm(5)[:2].tolist()
    assert math.isclose(loss.item(), expected(select), rel_tol=1e-5)
    torch.manual_seed(7)
    assert mask_loss(prototypes, coeffs, class_targets, gt_index, [target], masks_to_train=2).item() == loss.item()

    # An explicit generator.
    loss_gen = mask_loss(prototypes, coeffs, class_targets, gt_index, [target], masks_to_train=2,
                         generator=torch.Generator().manual_seed(3))
    select_gen = torch.randperm(5, generator=torch.Generator().manual_seed(3))[:2].tolist()
    assert math.isclose(loss_gen.item(), expected(select_gen), rel_tol=1e-5)

    # Exactly masks_to_train positives: no subsampling, no scaling.
    full = mask_loss(prototypes, coeffs, class_targets, gt_index, [target], masks_to_train=5)
    reference = sum(direct_instance_loss(prototypes[0], coeffs[0, a], gt_index[0, a].item()) for a in positives)
    assert math.isclose(full.item(), reference, rel_tol=1e-5)


def test_gradients_reach_prototypes_and_positive_coefficients_only() -> None:
    prototypes, coeffs, target = make_case()
    prototypes.requires_grad_(True)
    coeffs.requires_grad_(True)
    class_targets = torch.tensor([[1, 0, -1, 2, 0, 0]])
    gt_index = torch.tensor([[0, 0, 0, 1, 0, 0]])
    mask_loss(prototypes, coeffs, class_targets, gt_index, [target]).backward()
    assert prototypes.grad.abs().sum() > 0
    touched = coeffs.grad[0].abs().sum(dim=1) > 0
    assert touched.tolist() == [True, False, False, True, False, False]
