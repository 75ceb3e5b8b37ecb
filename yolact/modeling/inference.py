"""The network prepared for inference: BatchNorm folded into the convolutions, channels-last memory.

Folding is exact in arithmetic terms (y = γ(Wx + b − μ)/σ + β is one convolution with W' = γW/σ and
b' = γ(b − μ)/σ + β); in float32 it moves outputs by rounding only, far inside the parity tolerances. Channels-last
lets oneDNN (CPU) and cuDNN (tensor cores) pick their fastest convolution kernels.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn
from torch.fx.experimental.optimization import fuse

from yolact.modeling.deform import ModulatedDeformConv2d
from yolact.modeling.yolact import Yolact


class _Tracer(fx.Tracer):
    """torch.fx's tracer, keeping deformable convs whole: their torchvision op cannot be traced through."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, ModulatedDeformConv2d) or super().is_leaf_module(module, qualified_name)


def _fold(module: nn.Module) -> nn.Module:
    traced = fx.GraphModule(module, _Tracer().trace(module))
    return fuse(traced, inplace=True, no_trace=True)


def optimize_for_inference(model: Yolact, channels_last: bool = True) -> Yolact:
    """A copy of ``model`` for inference: eval mode, the backbone's BatchNorms folded, optionally channels-last.
    Feed it channels-last inputs (``x.contiguous(memory_format=torch.channels_last)``) for the full benefit."""
    optimized = copy.deepcopy(model).eval()
    optimized.backbone = _fold(optimized.backbone)  # already a copy
    if channels_last:
        optimized = optimized.to(memory_format=torch.channels_last)
    return optimized
