"""YOLACT++'s deformable convolution (torchvision's deform_conv2d with the authors' offset/mask layout), its
backbone placement, anchors and mask re-scoring network."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SPEC

import yolact
from yolact.modeling.backbone import deformable_blocks
from yolact.modeling.deform import ModulatedDeformConv2d
from yolact.modeling.maskiou import MaskIoUNet


@pytest.mark.parametrize("stride", [1, 2])
def test_zero_offsets_and_unit_mask_give_the_plain_convolution(stride: int) -> None:
    torch.manual_seed(0)
    conv = ModulatedDeformConv2d(5, 7, stride=stride).eval()
    with torch.no_grad():
        conv.bias.normal_()
        conv.conv_offset_mask.bias[18:] = 100.0  # sigmoid(100) == 1 in float32: every tap weighted 1
    x = torch.randn(2, 5, 11, 9)
    with torch.no_grad():
        expected = F.conv2d(x, conv.weight, conv.bias, stride=stride, padding=1)
        torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)
        conv.conv_offset_mask.bias[18:] = 0.0  # the authors' initialisation: mask 0.5 everywhere
        torch.testing.assert_close(conv(x), 0.5 * (expected - conv.bias[:, None, None]) + conv.bias[:, None, None],
                                   rtol=1e-5, atol=1e-5)


def _bilinear(image: np.ndarray, y: float, x: float) -> np.ndarray:
    """DCN's sampling of image [C, H, W] at (y, x): zero outside, corners outside count as zero."""
    height, width = image.shape[1:]
    if y <= -1 or y >= height or x <= -1 or x >= width:
        return np.zeros(image.shape[0])
    y0, x0 = math.floor(y), math.floor(x)
    value = np.zeros(image.shape[0])
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < height and 0 <= xx < width:
                value += wy * wx * image[:, yy, xx]
    return value


@pytest.mark.parametrize("stride", [1, 2])
def test_random_offsets_match_a_direct_per_tap_computation(stride: int) -> None:
    torch.manual_seed(1)
    conv = ModulatedDeformConv2d(3, 4, stride=stride).eval()
    with torch.no_grad():
        conv.bias.normal_()
        conv.conv_offset_mask.weight.normal_(std=0.5)
        conv.conv_offset_mask.bias.normal_(std=1.0)
    x = torch.randn(1, 3, 7, 6)
    with torch.no_grad():
        actual = conv(x)[0].numpy()
        raw = conv.conv_offset_mask(x)[0].numpy()
    offsets, mask = raw[:18], 1 / (1 + np.exp(-raw[18:]))  # (dy, dx) pairs per tap, then the modulation
    image, weight, bias = x[0].numpy().astype(np.float64), conv.weight.detach().numpy(), conv.bias.detach().numpy()
    expected = np.zeros_like(actual, dtype=np.float64)
    for oy in range(actual.shape[1]):
        for ox in range(actual.shape[2]):
            for k in range(9):
                ky, kx = divmod(k, 3)
                y = oy * stride - 1 + ky + offsets[2 * k, oy, ox]
                x_ = ox * stride - 1 + kx + offsets[2 * k + 1, oy, ox]
                sample = _bilinear(image, y, x_) * mask[k, oy, ox]
                expected[:, oy, ox] += weight[:, :, ky, kx] @ sample
    expected += bias[:, None, None]
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_deformable_blocks_follow_the_authors_rule() -> None:
    assert deformable_blocks(4, 4, 3) == [True, False, False, True]
    assert [i for i, d in enumerate(deformable_blocks(23, 23, 3)) if d] == list(range(0, 23, 3))
    assert deformable_blocks(3, 3, 3) == [True, False, False]
    assert deformable_blocks(6, 6, 1) == [True] * 6
    assert deformable_blocks(3, 0, 1) == [False] * 3


def read_keys(name: str) -> list[tuple[str, tuple[int, ...]]]:
    keys = []
    for line in (SPEC / "keys" / f"{name}.txt").read_text().splitlines():
        key, shape = line.split(" ", 1)
        keys.append((key, tuple(int(v) for v in shape.strip("()").split(",") if v.strip())))
    return keys


@pytest.mark.parametrize("name", ["yolact_plus_resnet50", "yolact_plus_base"])
def test_plus_presets_have_the_official_keys_in_order(name: str) -> None:
    model = yolact.build_yolact(yolact.get_config(name))
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == read_keys(name)


def test_plus_anchors_are_three_scales_of_real_aspect_ratios() -> None:
    config = yolact.get_config("yolact_plus_resnet50")
    assert config.anchors.num_per_location == 9 and not config.anchors.square
    model = yolact.build_yolact(config)
    anchors = model.anchors([(69, 69), (35, 35), (18, 18), (9, 9), (5, 5)], torch.device("cpu"))
    assert anchors.shape == (57744, 4)
    first = anchors[:9, 2:] * 550  # P3's first cell: for each scale, ratios 1, 1/2, 2
    for j, scale in enumerate(24 * 2 ** (np.arange(3) / 3)):
        for r, ratio in enumerate((1.0, 0.5, 2.0)):
            w, h = first[3 * j + r].tolist()
            assert w == pytest.approx(scale * math.sqrt(ratio), rel=1e-5)
            assert h == pytest.approx(scale / math.sqrt(ratio), rel=1e-5)


def test_maskiou_net_scores_every_class_from_a_mask() -> None:
    net = MaskIoUNet(80)
    out = net(torch.rand(3, 1, 138, 138))
    assert out.shape == (3, 80) and (out >= 0).all()
    # A 138 px mask shrinks to 3 x 3 after five unpadded stride-2 convs, then is max-pooled.
    assert net.maskiou_net[:10](torch.rand(1, 1, 138, 138)).shape[-2:] == (3, 3)


def test_rescoring_configs_refuse_inputs_too_small_for_the_maskiou_net() -> None:
    config = dataclasses.replace(yolact.get_config("yolact_plus_resnet50"), max_size=128)
    with pytest.raises(ValueError, match="mask re-scoring needs an input of at least 256 px, not 128"):
        yolact.build_yolact(config)


def test_runs_under_bf16_autocast_in_float32() -> None:
    # torchvision has no half-precision CPU kernel: mixed precision (bf16 training, --precision bf16) must work.
    torch.manual_seed(2)
    conv = ModulatedDeformConv2d(4, 4).eval()
    x = torch.randn(1, 4, 9, 9)
    with torch.no_grad():
        expected = conv(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = conv(x.bfloat16())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0.05, atol=0.05)
