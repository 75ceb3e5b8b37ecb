"""YOLACT composed from its parts: backbone -> FPN -> (protonet on P3, shared prediction head on P3-P7)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from yolact.config import AnchorConfig, YolactConfig
from yolact.modeling.anchors import make_anchors
from yolact.modeling.backbone import build_backbone
from yolact.modeling.fpn import FPN
from yolact.modeling.head import PredictionHead
from yolact.modeling.maskiou import MaskIoUNet
from yolact.modeling.protonet import Protonet

# The smallest input whose prototypes YOLACT++'s mask-IoU net can take (ResNet strides; see build_yolact).
MIN_RESCORING_SIZE = 256


class YolactOutput(NamedTuple):
    """Raw network output, the same in training and evaluation (softmax and NMS belong to post-processing)."""

    loc: Tensor  # [B, A, 4] encoded box offsets
    class_logits: Tensor  # [B, A, num_classes + 1], background first
    mask_coeffs: Tensor  # [B, A, k] in (-1, 1)
    anchors_cxcywh: Tensor  # [A, 4] relative
    prototypes: Tensor  # [B, h, w, k]
    semantic_logits: Tensor | None  # [B, num_classes, H3, W3], training only


class Yolact(nn.Module):
    """The YOLACT network.

    Submodules carry the authors' names (``backbone``, ``fpn``, ``proto_net``, ``prediction_layers.0``,
    ``semantic_seg_conv``) so that ``state_dict()`` is exactly the official checkpoint layout. The prediction
    head is one module shared by every level, stored once as ``prediction_layers.0``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        fpn: FPN,
        proto_net: Protonet,
        head: PredictionHead,
        semantic_seg_conv: nn.Conv2d,
        anchor_config: AnchorConfig,
        input_size: int,
        selected_layers: tuple[int, ...],
        maskiou_net: MaskIoUNet | None = None,
    ) -> None:
        super().__init__()
        # Registration order = the official state_dict's key order.
        self.backbone = backbone
        self.proto_net = proto_net
        # YOLACT++ only: re-scores detections by their masks' predicted IoU (post-processing and training use it).
        self.maskiou_net = maskiou_net
        self.fpn = fpn
        self.prediction_layers = nn.ModuleList([head])
        self.semantic_seg_conv = semantic_seg_conv
        self.anchor_config = anchor_config
        self.input_size = input_size
        self.selected_layers = selected_layers
        self._anchor_cache: dict[tuple, Tensor] = {}

    @property
    def head(self) -> PredictionHead:
        return self.prediction_layers[0]

    def anchors(self, feature_sizes: list[tuple[int, int]], device: torch.device) -> Tensor:
        key = (tuple(feature_sizes), str(device))
        if key not in self._anchor_cache:
            self._anchor_cache[key] = make_anchors(feature_sizes, self.anchor_config, self.input_size, device)
        return self._anchor_cache[key]

    def forward(self, images: Tensor) -> YolactOutput:
        """Normalised RGB images [B, 3, S, S] -> :class:`YolactOutput`."""
        return self.predict_from_pyramid(self.extract_pyramid(images))

    def extract_pyramid(self, images: Tensor) -> list[Tensor]:
        """Backbone + FPN: images [B, 3, S, S] -> P3..P7."""
        features = self.backbone(images)
        return self.fpn([features[i] for i in self.selected_layers])

    def predict_from_pyramid(self, pyramid: list[Tensor]) -> YolactOutput:
        """Protonet, prediction head and (in training) the semantic head over P3..P7."""
        prototypes = self.proto_net(pyramid[0])
        locs, logits, coeffs = [], [], []
        for level in pyramid:
            out = self.head(level)
            locs.append(out.loc)
            logits.append(out.class_logits)
            coeffs.append(out.mask_coeffs)
        anchors = self.anchors([tuple(level.shape[-2:]) for level in pyramid], pyramid[0].device)
        semantic_logits = self.semantic_seg_conv(pyramid[0]) if self.training else None
        return YolactOutput(
            loc=torch.cat(locs, dim=1),
            class_logits=torch.cat(logits, dim=1),
            mask_coeffs=torch.cat(coeffs, dim=1),
            anchors_cxcywh=anchors,
            prototypes=prototypes,
            semantic_logits=semantic_logits,
        )


def build_yolact(config: YolactConfig) -> Yolact:
    """A randomly initialised YOLACT for ``config``."""
    if config.mask_rescoring and config.max_size < MIN_RESCORING_SIZE:
        # Five unpadded stride-2 convs need a 63 px prototype map, i.e. P3 of 32 cells.
        raise ValueError(f"{config.name}: mask re-scoring needs an input of at least {MIN_RESCORING_SIZE} px, "
                         f"not {config.max_size}")
    backbone = build_backbone(config.backbone)
    in_channels = [backbone.channels[i] for i in config.backbone.selected_layers]
    features = config.fpn.num_features
    model = Yolact(
        backbone=backbone,
        fpn=FPN(in_channels, features, config.fpn.num_downsample),
        proto_net=Protonet(features, config.protonet_channels, config.num_prototypes),
        head=PredictionHead(features, config.anchors.num_per_location, config.num_classes, config.num_prototypes),
        semantic_seg_conv=nn.Conv2d(features, config.num_classes, kernel_size=1),
        anchor_config=config.anchors,
        input_size=config.max_size,
        selected_layers=config.backbone.selected_layers,
        maskiou_net=MaskIoUNet(config.num_classes) if config.mask_rescoring else None,
    )
    init_head_weights(model)
    return model.eval()


def init_head_weights(model: Yolact) -> None:
    """The authors' initialisation of everything but the backbone: Xavier-uniform conv weights, zero biases."""
    modules = [model.fpn, model.proto_net, model.prediction_layers, model.semantic_seg_conv, model.maskiou_net]
    for module in (m for m in modules if m is not None):
        for conv in (m for m in module.modules() if isinstance(m, nn.Conv2d)):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
