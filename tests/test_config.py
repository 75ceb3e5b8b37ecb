import dataclasses

import pytest

from yolact.config import PRESETS, YolactConfig, config_name_from_filename, get_config, yolact_base


def test_presets_fix_the_papers_numbers() -> None:
    base = yolact_base()
    assert base.max_size == 550 and base.num_prototypes == 32 and base.num_classes == 80
    assert base.anchors.scales == ((24,), (48,), (96,), (192,), (384,))
    assert base.anchors.aspect_ratios == (1.0, 0.5, 2.0) and base.anchors.square
    assert (base.loss.class_weight, base.loss.box_weight, base.loss.mask_weight) == (1.0, 1.5, 6.125)
    assert base.postprocess.conf_threshold == 0.05 and base.postprocess.nms_iou_threshold == 0.5
    assert base.postprocess.nms_top_k == 200 and base.postprocess.max_detections == 100
    assert base.backbone.display_name == "ResNet-101"


@pytest.mark.parametrize(
    ("name", "size", "scales", "backbone"),
    [
        ("yolact_im400", 400, (17, 34, 69, 139, 279), "ResNet-101"),
        ("yolact_im700", 700, (30, 61, 122, 244, 488), "ResNet-101"),
        ("yolact_resnet50", 550, (24, 48, 96, 192, 384), "ResNet-50"),
        ("yolact_darknet53", 550, (24, 48, 96, 192, 384), "DarkNet-53"),
    ],
)
def test_preset_sizes_scales_and_backbones(name: str, size: int, scales: tuple, backbone: str) -> None:
    config = get_config(name)
    assert config.name == name and config.max_size == size
    assert tuple(s for (s,) in config.anchors.scales) == scales
    assert config.backbone.display_name == backbone


def test_darknet_divides_by_255_and_uses_last_three_stages() -> None:
    config = get_config("yolact_darknet53_config")
    assert not config.backbone.normalize and config.backbone.selected_layers == (2, 3, 4)


def test_configs_are_frozen_and_replaceable() -> None:
    config = yolact_base()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_size = 700  # type: ignore[misc]
    assert dataclasses.replace(config, num_classes=3).num_classes == 3


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_dict_round_trip(name: str) -> None:
    config = get_config(name)
    assert YolactConfig.from_dict(config.to_dict()) == config


def test_unknown_config_names_the_choices() -> None:
    with pytest.raises(ValueError, match="yolact_resnet50"):
        get_config("yolact_resnet999")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("yolact_base_54_800000.pth", "yolact_base"),
        ("/some/dir/yolact_im700_54_800000.pth", "yolact_im700"),
        ("yolact_resnet50_54_800000.pth", "yolact_resnet50"),
        ("yolact_darknet53_54_800000.pth", "yolact_darknet53"),
        ("yolact_base_10_32100_interrupt.pth", "yolact_base"),
        ("yolact_im400.pth", "yolact_im400"),
        ("weights.pth", None),
        ("yolact_plus_base_54_800000.pth", "yolact_plus_base"),
        ("yolact_plus_resnet50_54_800000.pth", "yolact_plus_resnet50"),
    ],
)
def test_config_from_file_name(filename: str, expected: str | None) -> None:
    assert config_name_from_filename(filename) == expected
