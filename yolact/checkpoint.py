"""Checkpoints: the authors' official files and our own, read safely and checked against the config.

Official files (``yolact_base_54_800000.pth``) are a flat state_dict. Ours are a dict holding that same
official-layout state_dict under ``model`` plus the config, the class names and the dataset's category ids
(training adds its state). Both load with ``torch.load(weights_only=True)``: nothing is unpickled but tensors
and plain containers.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from yolact.config import PRESETS, BackboneConfig, YolactConfig, config_name_from_filename, get_config
from yolact.data.class_lists import class_list
from yolact.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES
from yolact.errors import CheckpointError
from yolact.io import atomic_write
from yolact.modeling import Yolact, build_yolact

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: official-layout weights, the config they belong to, and what the classes are."""

    state_dict: dict[str, Tensor]
    config: YolactConfig
    class_names: tuple[str, ...] = COCO_CLASSES
    category_ids: tuple[int, ...] = COCO_CATEGORY_IDS
    # Anything else our own checkpoints carry (training state); empty for official files.
    extra: dict[str, Any] = field(default_factory=dict)


def _read(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; check the --weights path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses a pickled class by naming it ("Unsupported global: GLOBAL module.Name"); any other
        # unpickling failure means the bytes are not a checkpoint at all.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise CheckpointError(
                f"{path}: holds a pickled Python object ({found.group(1)}), which is never unpickled here for "
                "safety; re-save the weights as a plain state_dict of tensors"
            ) from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?); download it again"
                              ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError):
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?); download it again"
                              ) from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, Tensor) for v in obj.values())


def drop_legacy_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop the keys the authors' loader drops: old backbone names (``backbone.layer*`` but not
    ``backbone.layers``) and ``fpn.downsample_layers.N`` for N >= 2."""
    kept = {}
    for key, value in state_dict.items():
        if key.startswith("backbone.layer") and not key.startswith("backbone.layers"):
            continue
        match = re.match(r"fpn\.downsample_layers\.(\d+)\.", key)
        if match and int(match.group(1)) >= 2:
            continue
        kept[key] = value
    return kept


@dataclass(frozen=True)
class CheckpointSignature:
    """What a state_dict's keys and shapes say about the network that made it."""

    backbone: str  # "ResNet-101", "ResNet-50", "DarkNet-53", ...
    num_classes: int | None  # background excluded
    anchors_per_location: int | None
    yolact_plus: bool


def inspect_state_dict(state_dict: Mapping[str, Tensor]) -> CheckpointSignature:
    keys = state_dict.keys()
    if any(k.startswith("backbone._preconv.") for k in keys):
        # Each DarkNet stage opens with a downsampling conv.
        backbone = BackboneConfig(kind="darknet", layers=_blocks_per_stage(keys, offset=-1))
    else:
        basic = not any(k.startswith("backbone.layers.0.0.conv3.") for k in keys)
        backbone = BackboneConfig(layers=_blocks_per_stage(keys, offset=0), block="basic" if basic else "bottleneck")
    bbox = state_dict.get("prediction_layers.0.bbox_layer.weight")
    conf = state_dict.get("prediction_layers.0.conf_layer.weight")
    anchors = bbox.shape[0] // 4 if bbox is not None else None
    classes = conf.shape[0] // anchors - 1 if conf is not None and anchors else None
    plus = any(k.startswith("maskiou_net.") or ".conv_offset_mask." in k for k in keys)
    return CheckpointSignature(backbone.display_name, classes, anchors, plus)


def _blocks_per_stage(keys: Any, offset: int) -> tuple[int, ...]:
    blocks: dict[int, set[int]] = {}
    for key in keys:
        match = re.match(r"backbone\.layers\.(\d+)\.(\d+)\.", key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    return tuple(len(blocks[s]) + offset for s in sorted(blocks))


def _presets_for(signature: CheckpointSignature, by_classes: bool = False) -> list[str]:
    """The presets whose network these weights fit: backbone and YOLACT++ parts, and with ``by_classes`` the
    class count and anchors per location too."""
    names = []
    for name, make in PRESETS.items():
        config = make()
        if config.backbone.display_name != signature.backbone or config.mask_rescoring != signature.yolact_plus:
            continue
        if by_classes and (signature.num_classes not in (None, config.num_classes)
                           or signature.anchors_per_location not in (None, config.anchors.num_per_location)):
            continue
        names.append(name)
    return names


def check_compatible(state_dict: Mapping[str, Tensor], config: YolactConfig, path: Path | str) -> None:
    """Raise a one-line :class:`CheckpointError` when the weights contradict ``config``."""
    sig = inspect_state_dict(state_dict)
    if sig.yolact_plus != config.mask_rescoring:
        hint = _presets_for(sig)
        fix = f"use --config {' or '.join(hint)}" if hint else "pick the config it was trained with"
        what = ("a YOLACT++ checkpoint (deformable convs, mask re-scoring)" if sig.yolact_plus
                else "a YOLACT checkpoint (no deformable convs or mask re-scoring)")
        raise CheckpointError(f"{path}: this is {what}, which config {config.name} cannot load; {fix}")
    expected_backbone = config.backbone.display_name
    if sig.backbone != expected_backbone:
        hint = _presets_for(sig)
        fix = f"use --config {' or '.join(hint)}" if hint else "pick the config it was trained with"
        raise CheckpointError(
            f"{path}: this checkpoint has a {sig.backbone} backbone but config {config.name} expects "
            f"{expected_backbone}; {fix}"
        )
    if sig.num_classes is not None and sig.num_classes != config.num_classes:
        hint = _presets_for(sig, by_classes=True)
        fix = f"use --config {' or '.join(hint)}" if hint else f"use a config with num_classes={sig.num_classes}"
        raise CheckpointError(
            f"{path}: this checkpoint predicts {sig.num_classes} classes but config {config.name} has "
            f"{config.num_classes}; {fix}"
        )
    if sig.anchors_per_location is not None and sig.anchors_per_location != config.anchors.num_per_location:
        raise CheckpointError(
            f"{path}: this checkpoint has {sig.anchors_per_location} anchors per location but config {config.name} "
            f"has {config.anchors.num_per_location}; use the config it was trained with"
        )


def _resolve_config(path: Path, config: YolactConfig | str | None, stored: dict | None,
                    state_dict: Mapping[str, Tensor]) -> YolactConfig:
    if isinstance(config, YolactConfig):
        return config
    if isinstance(config, str):
        return get_config(config)
    if stored is not None:
        return YolactConfig.from_dict(stored)
    name = config_name_from_filename(path)
    if name is not None:
        return get_config(name)
    # Only the file's contents are left: they decide where one preset fits (yolact_base, im400 and im700 share
    # their keys, so for those the name or --config must decide). A preset of another class list (Pascal) differs
    # from its COCO sibling in anchors the file cannot show: only its name or --config chooses it, and a file of
    # another class count is a custom model of the COCO preset.
    signature = inspect_state_dict(state_dict)
    candidates = [name for name in _presets_for(signature) if get_config(name).class_list == "coco"]
    if len(candidates) == 1:
        preset = get_config(candidates[0])
        if signature.num_classes is None or signature.num_classes == preset.num_classes:
            return preset
        return dataclasses.replace(preset, num_classes=signature.num_classes)
    options = ", ".join(candidates or sorted(PRESETS))
    raise CheckpointError(f"{path}: cannot tell the config from the file name; pass --config (one of: {options})")


def load_checkpoint(path: str | Path, config: YolactConfig | str | None = None) -> Checkpoint:
    """Read an official or our own checkpoint and check it against the config.

    The config is, in order: ``config`` if given, the one stored in our checkpoints, the one the file name
    names (``<config>_<epoch>_<iteration>.pth``, as the authors' tools), or the only preset the weights fit.
    """
    path = Path(path)
    obj = _read(path)
    stored_config = None
    class_names = category_ids = None
    extra: dict[str, Any] = {}
    if isinstance(obj, Mapping) and "model" in obj and _is_state_dict(obj["model"]):
        version = obj.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(f"{path}: written in checkpoint format {version!r}, newer than this yolact reads "
                                  f"({FORMAT_VERSION}); upgrade yolact (pip install -U yolact)")
        state_dict = dict(obj["model"])
        stored_config = obj.get("config")
        if "class_names" in obj:
            class_names = tuple(obj["class_names"])
        if "category_ids" in obj:
            category_ids = tuple(int(i) for i in obj["category_ids"])
        extra = {k: v for k, v in obj.items()
                 if k not in ("format_version", "model", "config", "class_names", "category_ids")}
    elif _is_state_dict(obj):
        state_dict = dict(obj)
    else:
        raise CheckpointError(f"{path}: not a YOLACT checkpoint (neither a state_dict nor a dict with 'model')")
    state_dict = drop_legacy_keys(state_dict)
    if not any(k.startswith("prediction_layers.0.") for k in state_dict):
        raise CheckpointError(f"{path}: not a YOLACT checkpoint (no prediction head weights); check the file")
    resolved = _resolve_config(path, config, stored_config, state_dict)
    check_compatible(state_dict, resolved, path)
    # The authors' files store no names: those of the config's published list.
    listed_names, listed_ids = class_list(resolved.class_list, resolved.num_classes)
    class_names = class_names if class_names is not None else listed_names
    category_ids = category_ids if category_ids is not None else listed_ids
    if len(class_names) != resolved.num_classes or len(category_ids) != resolved.num_classes:
        raise CheckpointError(
            f"{path}: {len(class_names)} class names for {resolved.num_classes} classes; the checkpoint is inconsistent"
        )
    return Checkpoint(state_dict, resolved, class_names, category_ids, extra)


def load_model_weights(model: torch.nn.Module, checkpoint: Checkpoint, path: str | Path = "checkpoint") -> None:
    """Load ``checkpoint`` into ``model`` strictly, with a one-line error naming what differs."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in checkpoint.state_dict]
    unexpected = [k for k in checkpoint.state_dict if k not in expected]
    wrong_shape = [
        f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}"
        for k, v in checkpoint.state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (first: {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (first: {unexpected[0]})")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} shapes differ (first: {wrong_shape[0]})")
    if problems:
        raise CheckpointError(
            f"{path}: does not fit config {checkpoint.config.name}: {'; '.join(problems)}; "
            "use the config it was trained with"
        )
    model.load_state_dict(checkpoint.state_dict, strict=True)


def save_checkpoint(
    path: str | Path,
    state_dict: Mapping[str, Tensor],
    config: YolactConfig,
    class_names: tuple[str, ...] | list[str] = COCO_CLASSES,
    category_ids: tuple[int, ...] | list[int] = COCO_CATEGORY_IDS,
    **extra: Any,
) -> Path:
    """Write our checkpoint format atomically (temp file + rename)."""
    payload = {
        "format_version": FORMAT_VERSION,
        "model": {k: v.detach().cpu() for k, v in state_dict.items()},
        "config": config.to_dict(),
        "class_names": list(class_names),
        "category_ids": [int(i) for i in category_ids],
        **extra,
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def save_official(path: str | Path, state_dict: Mapping[str, Tensor]) -> Path:
    """Write a flat official-layout state_dict (what the authors' eval.py and train.py --resume read), atomically."""
    flat = {k: v.detach().cpu() for k, v in state_dict.items()}
    return atomic_write(path, lambda f: torch.save(flat, f))


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of any checkpoint: a flat state_dict, ours (under ``model``) or a ``state_dict`` entry."""
    obj = _read(path)
    if isinstance(obj, Mapping) and "model" in obj and _is_state_dict(obj["model"]):
        obj = obj["model"]
    if isinstance(obj, Mapping) and "state_dict" in obj and _is_state_dict(obj["state_dict"]):
        obj = obj["state_dict"]
    if not _is_state_dict(obj):
        raise CheckpointError(f"{path}: not a state_dict of tensors")
    return dict(obj)


def imagenet_to_backbone_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """torchvision ResNet names (``layer1.0.conv1.weight``; the authors' ``resnet101_reducedfc.pth`` and
    ``resnet50-19c8e357.pth``) or the authors' ``darknet53.pth`` names -> our backbone's. ``fc.*`` is dropped."""
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.").removeprefix("backbone.")
        if key.startswith("fc."):
            continue
        match = re.match(r"layer(\d+)\.(.*)", key)
        out[f"layers.{int(match.group(1)) - 1}.{match.group(2)}" if match else key] = value
    return out


def load_backbone_weights(backbone: torch.nn.Module, path: str | Path, backbone_name: str = "the backbone") -> int:
    """Load ImageNet weights into ``backbone`` (every backbone weight must be there); returns how many tensors."""
    path = Path(path)
    weights = imagenet_to_backbone_keys(read_state_dict(path))
    expected = backbone.state_dict()
    missing = [k for k in expected if k not in weights and not k.endswith("num_batches_tracked")]
    wrong = [k for k in expected if k in weights and weights[k].shape != expected[k].shape]
    extra = [k for k in weights if k not in expected]  # e.g. the blocks of a deeper ResNet
    if missing or wrong or extra:
        first = missing[0] if missing else f"{wrong[0]} {tuple(weights[wrong[0]].shape)}" if wrong else extra[0]
        raise CheckpointError(
            f"{path}: does not fit {backbone_name} ({len(missing)} weights missing, {len(wrong)} of another shape, "
            f"{len(extra)} unknown; first: {first}); give the ImageNet file of this backbone"
        )
    usable = {k: v for k, v in weights.items() if k in expected}
    backbone.load_state_dict(usable, strict=False)
    return len(usable)


def load_matching_weights(model: torch.nn.Module, state_dict: Mapping[str, Tensor]) -> tuple[list[str], list[str]]:
    """Load every tensor whose name and shape fit ``model``; the rest keep their initialisation.

    For fine-tuning onto other classes: the class layer and the semantic head change shape and are left as
    initialised. Returns (loaded keys, model keys left as initialised).
    """
    expected = model.state_dict()
    fitting = {k: v for k, v in state_dict.items() if k in expected and v.shape == expected[k].shape}
    model.load_state_dict(fitting, strict=False)
    return sorted(fitting), sorted(k for k in expected if k not in fitting)


def build_model(checkpoint: Checkpoint, path: str | Path = "checkpoint") -> Yolact:
    """The model of ``checkpoint``, built from its config with its weights loaded strictly (one-line errors)."""
    model = build_yolact(checkpoint.config)
    load_model_weights(model, checkpoint, path)
    return model
