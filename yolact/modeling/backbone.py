"""Backbones: ResNet-18/50/101 (torchvision-style BasicBlock / Bottleneck) and DarkNet-53.

Module names follow the authors' backbone.py, so the official checkpoints' ``backbone.*`` keys load as they are.
Each backbone returns the output of every stage; ``channels`` lists their widths.
"""

from __future__ import annotations

from torch import Tensor, nn

from yolact.config import BackboneConfig
from yolact.modeling.deform import ModulatedDeformConv2d


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carrying the stride) -> 1x1 (x4 channels), with a projection shortcut where shapes change.
    With ``deformable`` the 3x3 is a modulated deformable conv with a bias (YOLACT++)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 deformable: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2: nn.Module
        if deformable:
            self.conv2 = ModulatedDeformConv2d(planes, planes, kernel_size=3, stride=stride, padding=1)
        else:
            self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class BasicBlock(nn.Module):
    """Two 3x3 convs (the first carrying the stride), for ResNet-18/34."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 deformable: bool = False) -> None:
        super().__init__()
        if deformable:
            raise ValueError("deformable convolutions are built into bottleneck blocks only (as YOLACT++)")
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


def deformable_blocks(num_blocks: int, dcn_layers: int, dcn_interval: int) -> list[bool]:
    """Which blocks of a stage are deformable, by the authors' rule: the last ``dcn_layers`` blocks, every
    ``dcn_interval``-th of them counting from the stage's start; the first block whenever ``dcn_layers`` covers
    the whole stage. YOLACT++ R-101 (``dcn_layers`` 23, interval 3 in its 23-block stage) gets blocks 0, 3, ... 21."""
    return [dcn_layers >= num_blocks if i == 0 else (i + dcn_layers >= num_blocks and i % dcn_interval == 0)
            for i in range(num_blocks)]


class ResNetBackbone(nn.Module):
    def __init__(self, layers: tuple[int, ...], block: type[Bottleneck] | type[BasicBlock] = Bottleneck,
                 dcn_layers: tuple[int, ...] | None = None, dcn_interval: int = 1) -> None:
        super().__init__()
        dcn_layers = dcn_layers or (0,) * len(layers)
        # Stages registered before the stem: the official state_dicts list backbone.layers.* first.
        self.layers = nn.ModuleList()
        self.channels: list[int] = []
        in_channels = 64
        for index, num_blocks in enumerate(layers):
            planes = 64 * 2**index
            stride = 1 if index == 0 else 2
            out_channels = planes * block.expansion
            downsample = None
            if stride != 1 or in_channels != out_channels:
                downsample = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(out_channels),
                )
            deformable = deformable_blocks(num_blocks, dcn_layers[index], dcn_interval)
            blocks = [block(in_channels, planes, stride, downsample, deformable=deformable[0])]
            blocks += [block(out_channels, planes, deformable=deformable[i]) for i in range(1, num_blocks)]
            self.layers.append(nn.Sequential(*blocks))
            self.channels.append(out_channels)
            in_channels = out_channels
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs


def darknet_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """conv (no bias) -> BatchNorm -> LeakyReLU(0.1), the authors' ``darknetconvlayer``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.1, inplace=True),
    )


class DarkNetBlock(nn.Module):
    """1x1 conv halving the channels, 3x3 conv restoring them, added to the input (no activation after)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = darknet_conv(channels, channels // 2, kernel_size=1)
        self.conv2 = darknet_conv(channels // 2, channels, kernel_size=3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x)) + x


class DarkNetBackbone(nn.Module):
    def __init__(self, layers: tuple[int, ...] = (1, 2, 8, 8, 4)) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self.channels: list[int] = []
        in_channels = 32
        for index, num_blocks in enumerate(layers):
            out_channels = 64 * 2**index
            # Each stage opens with a stride-2 3x3 conv that doubles the channels.
            stage = [darknet_conv(in_channels, out_channels, kernel_size=3, stride=2)]
            stage += [DarkNetBlock(out_channels) for _ in range(num_blocks)]
            self.layers.append(nn.Sequential(*stage))
            self.channels.append(out_channels)
            in_channels = out_channels
        self._preconv = darknet_conv(3, 32, kernel_size=3)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self._preconv(x)
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs


def build_backbone(config: BackboneConfig) -> ResNetBackbone | DarkNetBackbone:
    if config.kind == "resnet":
        return ResNetBackbone(config.layers, BasicBlock if config.block == "basic" else Bottleneck,
                              config.dcn_layers, config.dcn_interval)
    if config.kind == "darknet":
        return DarkNetBackbone(config.layers)
    raise ValueError(f"unknown backbone kind {config.kind!r}; expected 'resnet' or 'darknet'")
