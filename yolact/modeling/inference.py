"""The network prepared for inference: BatchNorm folded into the convolutions, channels-last memory.

Folding is exact in arithmetic terms (y = γ(Wx + b − μ)/σ + β is one convolution with W' = γW/σ and
b' = γ(b − μ)/σ + β); in float32 it moves outputs by rounding only, far inside the parity tolerances. Channels-last
lets oneDNN (CPU) and cuDNN (tensor cores) pick their fastest convolution kernels.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

from yolact.modeling.yolact import Yolact


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of ``module`` (traceable by torch.fx, in eval mode) with each BatchNorm that follows a convolution
    folded into it. The original is left as it is."""
    return fuse(copy.deepcopy(module).eval(), inplace=True)



def optimize_for_inference(model: Yolact, channels_last: bool = True) -> Yolact:
    """A copy of ``model`` for inference: eval mode, the backbone's BatchNorms folded, optionally channels-last.
    Feed it channels-last inputs (``x.contiguous(memory_format=torch.channels_last)``) for the full benefit."""
    optimized = copy.deepcopy(model).eval()
    optimized.backbone = fuse(optimized.backbone, inplace=True)
    if channels_last:
        optimized = optimized.to(memory_format=torch.channels_last)
    return optimized
