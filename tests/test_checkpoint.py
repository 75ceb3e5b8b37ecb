"""Official and own checkpoints: every preset loads and runs; contradictions give one-line errors."""

import pytest
import torch
from conftest import OFFICIAL_PRESETS

import yolact
from yolact.checkpoint import drop_legacy_keys, inspect_state_dict, load_checkpoint, save_checkpoint, save_official
from yolact.data.class_lists import PASCAL_CLASSES
from yolact.data.coco_classes import COCO_CLASSES
from yolact.errors import CheckpointError


@pytest.mark.parametrize("name", OFFICIAL_PRESETS)
def test_every_official_config_loads_and_runs(name: str, make_official_checkpoint, shared_dir) -> None:
    path = make_official_checkpoint(name)
    predictor = yolact.load(path, device="cpu", score_threshold=0.0, top_k=20, backend="pytorch")
    assert predictor.config.name == name  # inferred from <config>_<epoch>_<iteration>.pth
    image = shared_dir / "data" / "coco128-seg" / "images" / "000000000025.jpg"
    prediction = predictor(image)
    assert 0 < len(prediction) <= 20
    assert prediction.masks.shape[1:] == (426, 640)
    assert (prediction.boxes_xyxy[:, 2] <= 640).all() and (prediction.boxes_xyxy[:, 3] <= 426).all()
    assert all(name in COCO_CLASSES for name in prediction.class_names)


def test_shared_keys_make_the_name_or_config_decide(make_official_checkpoint) -> None:
    # yolact_base, im400 and im700 have identical keys: a neutral file name needs --config, and --config wins.
    path = make_official_checkpoint("yolact_base", filename="weights.pth")
    with pytest.raises(CheckpointError, match="pass --config"):
        load_checkpoint(path)
    assert load_checkpoint(path, "yolact_im700").config.name == "yolact_im700"


def test_contents_decide_when_only_one_preset_fits(make_official_checkpoint) -> None:
    path = make_official_checkpoint("yolact_darknet53", filename="my_weights.pth")
    assert load_checkpoint(path).config.name == "yolact_darknet53"


@pytest.mark.parametrize(
    ("made_for", "asked", "message"),
    [
        ("yolact_resnet50", "yolact_base", "has a ResNet-50 backbone.*use --config yolact_resnet50"),
        ("yolact_base", "yolact_resnet50", "has a ResNet-101 backbone.*yolact_base"),
        ("yolact_darknet53", "yolact_im700", "has a DarkNet-53 backbone.*use --config yolact_darknet53"),
    ],
)
def test_backbone_contradiction_names_the_fix(made_for, asked, message, make_official_checkpoint) -> None:
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(make_official_checkpoint(made_for), asked)
    assert "\n" not in str(info.value)


def test_yolact_plus_checkpoint_is_recognised(make_official_checkpoint, shared_dir, tmp_path) -> None:
    import runpy

    maker = runpy.run_path(str(shared_dir / "spec" / "make_checkpoint.py"))
    keys = maker["read_keys"](shared_dir / "spec" / "keys" / "yolact_plus_resnet50.txt")
    path = tmp_path / "yolact_plus_resnet50_54_800000.pth"
    torch.save({k: maker["make_tensor"](k, s, 0) for k, s in keys}, path)
    with pytest.raises(CheckpointError, match=r"YOLACT\+\+ checkpoint .* use --config yolact_plus_resnet50"):
        load_checkpoint(path, "yolact_resnet50")
    assert inspect_state_dict(torch.load(path, weights_only=True)).yolact_plus
    assert load_checkpoint(path).config.name == "yolact_plus_resnet50"  # from the file name
    renamed = tmp_path / "weights.pth"
    path.rename(renamed)
    assert load_checkpoint(renamed).config.name == "yolact_plus_resnet50"  # from the keys alone
    with pytest.raises(CheckpointError, match=r"a YOLACT checkpoint .* use --config yolact_resnet50"):
        load_checkpoint(make_official_checkpoint("yolact_resnet50"), "yolact_plus_resnet50")


def test_class_count_contradiction(make_official_checkpoint, tmp_path) -> None:
    state = torch.load(make_official_checkpoint("yolact_resnet50"), weights_only=True)
    # A 20-class (PASCAL-like) head: 3 anchors x 21 scores.
    state["prediction_layers.0.conf_layer.weight"] = torch.zeros(63, 256, 3, 3)
    state["prediction_layers.0.conf_layer.bias"] = torch.zeros(63)
    path = tmp_path / "yolact_resnet50_1_1.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="predicts 20 classes but config yolact_resnet50 has 80"):
        load_checkpoint(path)


def test_legacy_keys_are_dropped_as_the_authors_loader() -> None:
    state = {
        "backbone.layer1.0.conv1.weight": torch.zeros(1),
        "backbone.layers.0.0.conv1.weight": torch.zeros(1),
        "fpn.downsample_layers.1.weight": torch.zeros(1),
        "fpn.downsample_layers.2.weight": torch.zeros(1),
    }
    assert sorted(drop_legacy_keys(state)) == ["backbone.layers.0.0.conv1.weight", "fpn.downsample_layers.1.weight"]


def test_official_file_with_legacy_keys_still_loads(make_official_checkpoint, tmp_path) -> None:
    state = torch.load(make_official_checkpoint("yolact_resnet50"), weights_only=True)
    state["fpn.downsample_layers.2.weight"] = torch.zeros(256, 256, 3, 3)
    state["backbone.layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "yolact_resnet50_2_2.pth"
    torch.save(state, path)
    yolact.load(path, device="cpu", backend="pytorch")  # strict load succeeds once the legacy keys are dropped


def test_own_checkpoint_round_trip(make_official_checkpoint, tmp_path) -> None:
    official = load_checkpoint(make_official_checkpoint("yolact_resnet50"))
    names = tuple(f"class{i}" for i in range(80))
    ours = save_checkpoint(tmp_path / "neutral.pth", official.state_dict, official.config, names, tuple(range(80)),
                           iteration=torch.tensor(7))
    raw = torch.load(ours, weights_only=True)
    assert set(raw) >= {"model", "config", "class_names", "category_ids", "format_version"}
    loaded = load_checkpoint(ours)  # the stored config decides, whatever the file is called
    assert loaded.config == official.config
    assert loaded.class_names == names and loaded.category_ids == tuple(range(80))
    assert int(loaded.extra["iteration"]) == 7
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in official.state_dict.items())
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed into place
    raw["format_version"] = 2  # a later format: refused in one line, not misread
    torch.save(raw, tmp_path / "later.pth")
    with pytest.raises(CheckpointError, match=r"checkpoint format 2, newer than this yolact reads \(1\)"):
        load_checkpoint(tmp_path / "later.pth")


def test_flat_export_is_the_official_layout(make_official_checkpoint, tmp_path) -> None:
    source = make_official_checkpoint("yolact_resnet50")
    official = torch.load(source, weights_only=True)
    flat = save_official(tmp_path / "yolact_resnet50_0_0.pth", load_checkpoint(source).state_dict)
    exported = torch.load(flat, weights_only=True)
    assert list(exported) == list(official)
    assert all(torch.equal(exported[k], official[k]) for k in official)


def test_atomic_save_leaves_no_partial_file(tmp_path, make_official_checkpoint, monkeypatch) -> None:
    official = load_checkpoint(make_official_checkpoint("yolact_resnet50"))
    target = tmp_path / "ckpt.pth"
    target.write_bytes(b"previous")

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(target, official.state_dict, official.config)
    assert target.read_bytes() == b"previous"
    assert list(tmp_path.iterdir()) == [target]


def test_imagenet_backbone_files_load(tmp_path) -> None:
    import torchvision

    from yolact.checkpoint import load_backbone_weights
    from yolact.config import get_config
    from yolact.modeling import build_yolact

    # torchvision's names (as resnet50-19c8e357.pth and resnet101_reducedfc.pth), fc included and ignored.
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    model = build_yolact(get_config("yolact_resnet18"))
    assert load_backbone_weights(model.backbone, tmp_path / "resnet18.pth") == len(reference.state_dict()) - 2
    assert torch.equal(model.backbone.layers[2][1].conv2.weight, reference.layer3[1].conv2.weight)
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)
    # The wrong depth is refused with one line naming the file.
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(CheckpointError, match=r"resnet34\.pth: does not fit"):
        load_backbone_weights(model.backbone, tmp_path / "resnet34.pth")


def test_darknet_backbone_file_uses_the_backbone_names(make_official_checkpoint, tmp_path) -> None:
    from yolact.checkpoint import load_backbone_weights
    from yolact.config import get_config
    from yolact.modeling import build_yolact

    official = torch.load(make_official_checkpoint("yolact_darknet53"), weights_only=True)
    darknet = {k.removeprefix("backbone."): v for k, v in official.items() if k.startswith("backbone.")}
    torch.save(darknet, tmp_path / "darknet53.pth")
    model = build_yolact(get_config("yolact_darknet53"))
    load_backbone_weights(model.backbone, tmp_path / "darknet53.pth")
    assert torch.equal(model.backbone._preconv[0].weight, official["backbone._preconv.0.weight"])


def test_pascal_file_loads_by_its_name_with_the_pascal_classes(make_official_checkpoint, shared_dir) -> None:
    path = make_official_checkpoint("yolact_resnet50_pascal", filename="yolact_resnet50_pascal_23_120000.pth")
    predictor = yolact.load(path, device="cpu", score_threshold=0.0, top_k=20)
    assert predictor.config.name == "yolact_resnet50_pascal" and not predictor.config.anchors.square
    assert tuple(predictor.class_names) == PASCAL_CLASSES
    prediction = predictor(shared_dir / "data" / "labelme-voc-instseg" / "images" / "2011_000003.jpg")
    assert 0 < len(prediction) and set(prediction.class_names) <= set(PASCAL_CLASSES)
    assert set(prediction.category_ids.tolist()) <= set(range(1, 21))


@pytest.mark.parametrize(
    ("made_for", "asked", "message"),
    [
        ("yolact_resnet50", "yolact_resnet50_pascal",
         "predicts 80 classes but config yolact_resnet50_pascal has 20; use --config yolact_resnet50$"),
        ("yolact_resnet50_pascal", "yolact_resnet50",
         "predicts 20 classes but config yolact_resnet50 has 80; use --config yolact_resnet50_pascal$"),
    ],
)
def test_pascal_and_coco_files_refuse_each_others_config(made_for, asked, message, make_official_checkpoint) -> None:
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(make_official_checkpoint(made_for), asked)
    assert "\n" not in str(info.value)


def test_a_20_class_file_of_another_name_is_a_custom_model(make_official_checkpoint) -> None:
    # The anchors cannot be read from the weights: only the name or --config makes it the Pascal preset.
    path = make_official_checkpoint("yolact_resnet50_pascal", filename="my_voc_model.pth")
    custom = load_checkpoint(path)
    assert custom.config.name == "yolact_resnet50" and custom.config.num_classes == 20
    assert custom.config.anchors.square and custom.class_names[0] == "class_1" and custom.category_ids[-1] == 20
    chosen = load_checkpoint(path, "yolact_resnet50_pascal")
    assert chosen.config == yolact.get_config("yolact_resnet50_pascal") and chosen.class_names == PASCAL_CLASSES
