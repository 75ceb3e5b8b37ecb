"""YOLACT++'s mask re-scoring network (Bolya et al., TPAMI, section 3.2): predicts each detection's mask IoU
with its object from the cropped soft mask alone, so that a good box with a poor mask ranks lower."""

from __future__ import annotations

from torch import Tensor, nn

# The authors' maskiou_net: 3x3 stride-2 convs without padding.
CHANNELS = (8, 16, 32, 64, 128)


class MaskIoUNet(nn.Module):
    """Soft masks [N, 1, h, w] at prototype resolution -> predicted mask IoU per class [N, num_classes].

    Five 3x3 stride-2 convs (no padding) with ReLU, a 1x1 conv to one channel per class with ReLU, then a
    global max pool. Parameters named as the authors' (``maskiou_net.maskiou_net.N``) for their checkpoints.
    """

    def __init__(self, num_classes: int, channels: tuple[int, ...] = CHANNELS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 1
        for out_channels in channels:
            layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2), nn.ReLU(inplace=True)]
            in_channels = out_channels
        layers += [nn.Conv2d(in_channels, num_classes, kernel_size=1), nn.ReLU(inplace=True)]
        self.maskiou_net = nn.Sequential(*layers)

    def forward(self, masks: Tensor) -> Tensor:
        return self.maskiou_net(masks).amax(dim=(2, 3))
