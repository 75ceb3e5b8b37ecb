"""Model configurations as frozen dataclasses, with presets named like the authors' configs.

Every number that the paper or the official configs fix lives here: anchors, scales, thresholds, the number of
prototypes, loss weights. Presets are functions (``yolact_base()``); change one with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# ImageNet statistics in BGR order, as the authors store them (data/config.py: MEANS, STD).
IMAGENET_MEAN_BGR = (103.94, 116.78, 123.68)
IMAGENET_STD_BGR = (57.38, 57.12, 58.40)

# The five FPN levels' anchor scales in pixels at 550 px (yolact_base_config.backbone.pred_scales).
BASE_SCALES = (24, 48, 96, 192, 384)

# Training precisions (yolact.training.trainer.resolve_precision): auto = fp16 mixed precision on CUDA, fp32 on CPU.
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class BackboneConfig:
    """Which backbone, and how images are normalised for it."""

    kind: Literal["resnet", "darknet"] = "resnet"
    layers: tuple[int, ...] = (3, 4, 23, 3)
    # ResNet-18/34 are built of basic blocks, ResNet-50 and deeper of bottlenecks (He et al. 2016, table 1).
    block: Literal["basic", "bottleneck"] = "bottleneck"
    # Backbone stages whose outputs feed the FPN (C3, C4, C5).
    selected_layers: tuple[int, ...] = (1, 2, 3)
    # YOLACT++: how many of each stage's last blocks may have a deformable 3x3 conv, and every how many blocks
    # (the authors' dcn_layers and dcn_interval; see modeling.backbone.deformable_blocks). Empty: none.
    dcn_layers: tuple[int, ...] = ()
    dcn_interval: int = 1
    # ResNets: (x - mean) / std; DarkNet: x / 255 (the authors' `darknet_transform`).
    normalize: bool = True
    mean_bgr: tuple[float, float, float] = IMAGENET_MEAN_BGR
    std_bgr: tuple[float, float, float] = IMAGENET_STD_BGR

    @property
    def display_name(self) -> str:
        depths = {(3, 4, 23, 3): 101, (3, 4, 6, 3): 34 if self.block == "basic" else 50, (2, 2, 2, 2): 18,
                  (1, 2, 8, 8, 4): 53}
        depth = depths.get(self.layers)
        family = "ResNet" if self.kind == "resnet" else "DarkNet"
        return f"{family}-{depth}" if depth else f"{family} {self.layers}"


@dataclass(frozen=True)
class FPNConfig:
    num_features: int = 256
    # P6 and P7: stride-2 3x3 convs on P5, then on P6.
    num_downsample: int = 2


@dataclass(frozen=True)
class AnchorConfig:
    """Anchors per FPN level P3..P7, in pixels at the input size."""

    scales: tuple[tuple[float, ...], ...] = tuple((s,) for s in BASE_SCALES)
    aspect_ratios: tuple[float, ...] = (1.0, 0.5, 2.0)
    # The published YOLACT models were trained with square anchors: the aspect ratio changes an anchor's size,
    # not its shape (the authors' `use_square_anchors`, kept for backward compatibility with their weights).
    square: bool = True

    @property
    def num_per_location(self) -> int:
        return len(self.scales[0]) * len(self.aspect_ratios)


@dataclass(frozen=True)
class PostprocessConfig:
    # Anchors whose best non-background score is not above this are not candidates (the authors' nms_conf_thresh).
    conf_threshold: float = 0.05
    nms_iou_threshold: float = 0.5
    # Candidates kept per class before NMS (nms_top_k) and detections kept per image after (max_num_detections).
    nms_top_k: int = 200
    max_detections: int = 100
    # "fast": Fast NMS per class (the paper, section 3.5); "cross_class_fast": one Fast NMS over all classes;
    # "traditional": greedy per-class NMS as the authors' Cython nms (+1 in widths and heights).
    nms: Literal["fast", "cross_class_fast", "traditional"] = "fast"


@dataclass(frozen=True)
class LossConfig:
    """Training losses (paper section 3 and the official configs)."""

    class_weight: float = 1.0
    box_weight: float = 1.5
    mask_weight: float = 6.125
    semantic_weight: float = 1.0
    positive_iou: float = 0.5
    negative_iou: float = 0.4
    crowd_iou: float = 0.7
    negatives_per_positive: int = 3
    masks_to_train: int = 100
    # YOLACT++'s mask-IoU loss (configs with mask_rescoring): smooth L1 of the re-scoring net's predicted IoU,
    # weight maskiou_weight; ground truths under maskiou_min_area pixels at prototype resolution are skipped.
    maskiou_weight: float = 25.0
    maskiou_min_area: float = 25.0


@dataclass(frozen=True)
class SolverConfig:
    """The published models' optimisation (train.py and yolact_base_config), at the reference batch size.

    For another batch size B the authors scale the learning rate by B/8 and divide the iterations and the
    steps by B/8 (:meth:`scaled`).
    """

    batch_size: int = 8
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # Linear warm-up from warmup_init to lr over warmup_iterations.
    warmup_init: float = 1e-4
    warmup_iterations: int = 500
    # lr is multiplied by gamma at each step.
    steps: tuple[int, ...] = (280_000, 600_000, 700_000, 750_000)
    gamma: float = 0.1
    max_iterations: int = 800_000
    # BatchNorm is frozen (eval mode, no gradient) when starting from ImageNet weights with fewer than this many
    # images per GPU: batch statistics of a few images are too noisy to train on.
    freeze_bn_below_batch: int = 6
    # Gradients are rescaled to at most this global L2 norm before each step; None: no clipping (the authors').
    grad_clip_norm: float | None = None
    # Ours, for runs from scratch (the authors always start from ImageNet weights): the clipping norm such a run
    # takes (:meth:`for_scratch`). From scratch, the deep backbones' first gradients reach norms of 1e4-1e6 and
    # the recipe's lr diverges within 40 iterations at batch 2 for yolact_base, yolact_resnet50 and
    # yolact_darknet53 alike, on every seed tried; at 300 all of them learn (benchmarks/train_stability.py).
    scratch_grad_clip_norm: float | None = 300.0

    def for_iterations(self, iterations: int) -> SolverConfig:
        """A schedule of ``iterations`` for runs the user sizes: the peak lr holds until 85 % of the run, then
        x gamma at 85 % and at 95 %; warm-up at most a tenth of the run.

        Not the authors' steps compressed: theirs start decaying at 35 % of the run, which on a short run ends
        learning early (the demo's 300 iterations: mask AP50 0.12 with compressed steps, 0.45 with these).
        """
        return dataclasses.replace(
            self,
            max_iterations=iterations,
            steps=(max(1, round(iterations * 0.85)), max(1, round(iterations * 0.95))),
            warmup_iterations=max(1, min(self.warmup_iterations, iterations // 10)),
        )

    def for_scratch(self) -> SolverConfig:
        """This schedule for a run from randomly initialised weights: gradients clipped at
        ``scratch_grad_clip_norm`` (unless a clipping norm is already set)."""
        if self.grad_clip_norm is not None:
            return self
        return dataclasses.replace(self, grad_clip_norm=self.scratch_grad_clip_norm)

    def scaled(self, batch_size: int) -> SolverConfig:
        factor = batch_size / self.batch_size
        return dataclasses.replace(
            self,
            batch_size=batch_size,
            lr=self.lr * factor,
            warmup_init=self.warmup_init * factor,
            warmup_iterations=max(1, round(self.warmup_iterations / factor)),
            steps=tuple(round(s / factor) for s in self.steps),
            max_iterations=max(1, round(self.max_iterations / factor)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of builtins (lists for tuples), as training checkpoints store it."""
        return _to_builtin(dataclasses.asdict(self))

    @staticmethod
    def from_dict(data: dict[str, Any]) -> SolverConfig:
        return _from_builtin(SolverConfig, data)


@dataclass(frozen=True)
class YolactConfig:
    name: str = "yolact_base"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    fpn: FPNConfig = field(default_factory=FPNConfig)
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    # Object classes, background excluded (the authors' num_classes counts background: 81 for COCO).
    num_classes: int = 80
    # The published class list (yolact.data.class_lists) that names the classes of a file in the authors' format,
    # which stores no names; our checkpoints store their own.
    class_list: str = "coco"
    num_prototypes: int = 32
    protonet_channels: int = 256
    # Input side in pixels; images are resized to max_size x max_size without keeping the aspect ratio.
    max_size: int = 550
    # Box coding variances for centre and size (SSD's).
    box_variances: tuple[float, float] = (0.1, 0.2)
    # YOLACT++: a mask-IoU network re-scores each detection by its mask (the authors' use_maskiou).
    mask_rescoring: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of builtins (lists for tuples): safe to store in a weights_only checkpoint."""
        return _to_builtin(dataclasses.asdict(self))

    @staticmethod
    def from_dict(data: dict[str, Any]) -> YolactConfig:
        return _from_builtin(YolactConfig, data)


def _to_builtin(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_builtin(v) for v in value]
    return value


def _from_builtin(cls: type, data: dict[str, Any]) -> Any:
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        sub = _DATACLASS_FIELDS.get(f.name)
        if sub is not None:
            value = _from_builtin(sub, value)
        elif isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[f.name] = value
    return cls(**kwargs)


_DATACLASS_FIELDS: dict[str, type] = {
    "backbone": BackboneConfig,
    "fpn": FPNConfig,
    "anchors": AnchorConfig,
    "postprocess": PostprocessConfig,
    "loss": LossConfig,
    "solver": SolverConfig,
}


def _scaled_anchors(max_size: int) -> AnchorConfig:
    # The authors derive im400/im700 scales as int(s / 550 * S) (data/config.py).
    return AnchorConfig(scales=tuple((int(s / 550 * max_size),) for s in BASE_SCALES))


def yolact_base() -> YolactConfig:
    """YOLACT-550 on ResNet-101-FPN: 29.8 mask AP on COCO test-dev in the paper."""
    return YolactConfig()


def yolact_im400() -> YolactConfig:
    return dataclasses.replace(yolact_base(), name="yolact_im400", max_size=400, anchors=_scaled_anchors(400))


def yolact_im700() -> YolactConfig:
    return dataclasses.replace(
        yolact_base(),
        name="yolact_im700",
        max_size=700,
        anchors=_scaled_anchors(700),
        loss=dataclasses.replace(LossConfig(), masks_to_train=300),
    )


def yolact_resnet50() -> YolactConfig:
    return dataclasses.replace(yolact_base(), name="yolact_resnet50", backbone=BackboneConfig(layers=(3, 4, 6, 3)))


def yolact_darknet53() -> YolactConfig:
    return dataclasses.replace(
        yolact_base(),
        name="yolact_darknet53",
        backbone=BackboneConfig(kind="darknet", layers=(1, 2, 8, 8, 4), selected_layers=(2, 3, 4), normalize=False),
    )


def yolact_resnet18() -> YolactConfig:
    """A light preset for CPUs: the full YOLACT structure (FPN P3-P7, protonet, shared head, semantic head) on a
    ResNet-18 at 320 px, with 128-channel FPN, protonet and head. Not one of the authors' configs."""
    return dataclasses.replace(
        yolact_base(),
        name="yolact_resnet18",
        backbone=BackboneConfig(layers=(2, 2, 2, 2), block="basic"),
        max_size=320,
        anchors=_scaled_anchors(320),
        fpn=FPNConfig(num_features=128),
        protonet_channels=128,
        # Its shallow backbone trains from scratch at the recipe's lr without clipping: batch 2, 4 and 8, five
        # seeds each, under both oneDNN code paths (benchmarks/train_stability.py).
        solver=dataclasses.replace(SolverConfig(), scratch_grad_clip_norm=None),
    )


def yolact_resnet50_pascal() -> YolactConfig:
    """YOLACT-550 on ResNet-50-FPN trained on Pascal 2012 SBD: mask AP50 72.3 and AP70 56.2 on SBD val (paper,
    table 3). The anchors are 4/3 of COCO's (the paper) and not square; 120k iterations, steps at 60k and 100k."""
    return dataclasses.replace(
        yolact_resnet50(),
        name="yolact_resnet50_pascal",
        num_classes=20,
        class_list="pascal",
        anchors=AnchorConfig(scales=((32,), (64,), (128,), (256,), (512,)), square=False),
        solver=dataclasses.replace(SolverConfig(), steps=(60_000, 100_000), max_iterations=120_000),
    )


def _plus_anchors() -> AnchorConfig:
    # YOLACT++: three scales per level, s * 2^(j/3), and real (non-square) aspect ratios; 9 anchors per cell.
    return AnchorConfig(scales=tuple(tuple(s * 2 ** (j / 3.0) for j in range(3)) for s in BASE_SCALES), square=False)


def yolact_plus_base() -> YolactConfig:
    """YOLACT++-550 on ResNet-101-FPN with deformable convs in every third block of C3-C5 and mask re-scoring:
    34.1 mask AP on COCO test-dev in the TPAMI paper."""
    return dataclasses.replace(
        yolact_base(),
        name="yolact_plus_base",
        backbone=BackboneConfig(dcn_layers=(0, 4, 23, 3), dcn_interval=3),
        anchors=_plus_anchors(),
        mask_rescoring=True,
    )


def yolact_plus_resnet50() -> YolactConfig:
    """YOLACT++ on ResNet-50, deformable convs in every block of C3-C5."""
    return dataclasses.replace(
        yolact_plus_base(),
        name="yolact_plus_resnet50",
        backbone=BackboneConfig(layers=(3, 4, 6, 3), dcn_layers=(0, 4, 6, 3), dcn_interval=1),
    )


PRESETS = {
    "yolact_base": yolact_base,
    "yolact_im400": yolact_im400,
    "yolact_im700": yolact_im700,
    "yolact_resnet50": yolact_resnet50,
    "yolact_resnet50_pascal": yolact_resnet50_pascal,
    "yolact_darknet53": yolact_darknet53,
    "yolact_resnet18": yolact_resnet18,
    "yolact_plus_base": yolact_plus_base,
    "yolact_plus_resnet50": yolact_plus_resnet50,
}


def get_config(name: str) -> YolactConfig:
    """The preset called ``name`` (with or without the authors' ``_config`` suffix)."""
    key = name.removesuffix("_config")
    if key not in PRESETS:
        raise ValueError(f"unknown config {name!r}; choose one of: {', '.join(sorted(PRESETS))}")
    return PRESETS[key]()


def config_name_from_filename(path: str | Path) -> str | None:
    """The preset a checkpoint's file name names, as the authors' SavePath does (``<name>_<epoch>_<iter>.pth``).

    ``yolact_im700_54_800000.pth`` gives yolact_im700; a bare preset name (``yolact_base.pth``) is accepted too.
    Returns None when the name matches no preset.
    """
    stem = Path(path).stem.removesuffix("_interrupt")
    match = re.fullmatch(r"(.+)_(\d+)_(\d+)", stem)
    candidates = [match.group(1)] if match else []
    candidates.append(stem)
    for candidate in candidates:
        if candidate in PRESETS:
            return candidate
    return None
