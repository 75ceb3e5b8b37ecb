"""The module tree must be the authors' exactly: same state_dict keys, order and shapes as the official files."""

import ast
import dataclasses

import pytest
import torch
from conftest import OFFICIAL_PRESETS

from yolact.config import get_config
from yolact.modeling import build_yolact
from yolact.modeling.anchors import make_anchors

KEY_LISTS = {name: name.replace("yolact_im400", "yolact_base") for name in OFFICIAL_PRESETS}


def read_key_list(path) -> list[tuple[str, tuple[int, ...]]]:
    keys = []
    for line in path.read_text().splitlines():
        name, shape = line.split(" ", 1)
        keys.append((name, tuple(ast.literal_eval(shape))))
    return keys


@pytest.mark.parametrize("name", OFFICIAL_PRESETS)
def test_state_dict_matches_official_key_list(name: str, shared_dir) -> None:
    expected = read_key_list(shared_dir / "spec" / "keys" / f"{KEY_LISTS[name]}.txt")
    model = build_yolact(get_config(name))
    actual = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert actual == expected


@pytest.mark.parametrize(
    ("name", "sizes", "proto"),
    [
        ("yolact_resnet50", [69, 35, 18, 9, 5], 138),
        ("yolact_darknet53", [69, 35, 18, 9, 5], 138),
        ("yolact_im400", [50, 25, 13, 7, 4], 100),
    ],
)
def test_forward_shapes(name: str, sizes: list[int], proto: int) -> None:
    config = get_config(name)
    model = build_yolact(config)
    with torch.inference_mode():
        out = model(torch.randn(2, 3, config.max_size, config.max_size))
    num_anchors = sum(s * s for s in sizes) * 3
    assert out.loc.shape == (2, num_anchors, 4)
    assert out.class_logits.shape == (2, num_anchors, 81)
    assert out.mask_coeffs.shape == (2, num_anchors, 32)
    assert out.mask_coeffs.abs().max() <= 1
    assert out.anchors_cxcywh.shape == (num_anchors, 4)
    assert out.prototypes.shape == (2, proto, proto, 32)
    assert out.prototypes.min() >= 0  # ReLU on the prototypes
    assert out.semantic_logits is None  # only computed in training


def test_semantic_head_runs_in_training_only() -> None:
    config = get_config("yolact_resnet50")
    model = build_yolact(config).train()
    out = model(torch.randn(1, 3, 256, 256))
    assert out.semantic_logits is not None and out.semantic_logits.shape == (1, 80, 32, 32)


def test_anchor_order_and_values() -> None:
    two_levels = dataclasses.replace(get_config("yolact_base").anchors, scales=((24,), (48,)))
    anchors = make_anchors([(2, 3), (1, 1)], two_levels, 550)
    assert anchors.shape == ((6 + 1) * 3, 4)
    # Level 0, y=0, x=1: centre ((1 + .5) / 3, .5 / 2); the three aspect ratios change the size, not the shape.
    x1_y0 = anchors[3:6]
    assert torch.allclose(x1_y0[:, 0], torch.tensor(0.5)) and torch.allclose(x1_y0[:, 1], torch.tensor(0.25))
    widths = torch.tensor([24 / 550, 24 * 0.5**0.5 / 550, 24 * 2**0.5 / 550])
    assert torch.allclose(x1_y0[:, 2], widths) and torch.equal(x1_y0[:, 2], x1_y0[:, 3])
    # Second level starts after 6 cells x 3 anchors, with scale 48.
    assert torch.allclose(anchors[18, 2], torch.tensor(48 / 550))


def test_non_square_anchors_follow_the_ratio() -> None:
    anchors_cfg = dataclasses.replace(get_config("yolact_base").anchors, square=False, scales=((24,),))
    anchors = make_anchors([(1, 1)], anchors_cfg, 550)
    ratio = anchors[:, 2] / anchors[:, 3]
    assert torch.allclose(ratio, torch.tensor([1.0, 0.5, 2.0]))


def test_resnet18_preset_is_the_full_structure_on_basic_blocks() -> None:
    config = get_config("yolact_resnet18")
    model = build_yolact(config)
    assert config.backbone.display_name == "ResNet-18" and config.max_size == 320
    keys = model.state_dict().keys()
    assert "backbone.layers.0.0.conv3.weight" not in keys and "backbone.layers.3.1.conv2.weight" in keys
    assert {k.split(".")[0] for k in keys} == {"backbone", "proto_net", "fpn", "prediction_layers", "semantic_seg_conv"}
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 320, 320))
    assert out.prototypes.shape == (1, 80, 80, 32)
    assert len(model.fpn.downsample_layers) == 2  # P6, P7
