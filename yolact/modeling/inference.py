"""The network prepared for inference: BatchNorm folded into the convolutions, channels-last memory.

Folding is exact in arithmetic terms (y = γ(Wx + b − μ)/σ + β is one convolution with W' = γW/σ and
b' = γ(b − μ)/σ + β); in float32 it moves outputs by rounding only, far inside the parity tolerances. Channels-last
lets oneDNN (CPU) and cuDNN (tensor cores) pick their fastest convolution kernels. On the CPU in float32 the
backbone's convolutions may also run as oneDNN convolutions with their ReLU, and a bottleneck's residual add and
ReLU, as post-ops (:func:`fuse_onednn_post_ops`): the sum is then made while the convolution's output is still in
cache, instead of two more passes over a full feature map and a fresh allocation for each.
"""

from __future__ import annotations

import copy
import operator

import torch
from torch import Tensor, fx, nn
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


class OneDnnConv2d(nn.Module):
    """A convolution run by oneDNN with its post-ops: ``relu(conv(x) [+ other])`` when ``relu``, else
    ``conv(x) [+ other]``. CPU, float32, inference only; the same arithmetic as the unfused ops in another order."""

    def __init__(self, conv: nn.Conv2d, relu: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach(), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels),
                                 requires_grad=False)
        self.padding, self.stride = list(conv.padding), list(conv.stride)  # type: ignore[arg-type]
        self.dilation, self.groups, self.relu = list(conv.dilation), conv.groups, relu

    def forward(self, x: Tensor, other: Tensor | None = None) -> Tensor:
        geometry = (self.padding, self.stride, self.dilation, self.groups)
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, *geometry,
                                                           "relu" if self.relu else "none", [], "")
        return torch.ops.mkldnn._convolution_pointwise.binary(x, other, self.weight, self.bias, *geometry, "add",
                                                              1.0, "relu" if self.relu else None, [], "")


def _is_relu(node: fx.Node, traced: fx.GraphModule) -> bool:
    if node.op == "call_module":
        return isinstance(traced.get_submodule(str(node.target)), nn.ReLU)
    return node.op == "call_function" and node.target in (torch.relu, torch.nn.functional.relu)


def fuse_onednn_post_ops(traced: fx.GraphModule) -> fx.GraphModule:
    """``traced`` (BatchNorm already folded) with each Conv2d as a :class:`OneDnnConv2d` that takes in the ops
    after it when it is their only input: ``relu(conv(x))``, ``conv(x) + y`` and ``relu(conv(x) + y)``."""
    for node in list(traced.graph.nodes):
        if node.op != "call_module" or type(traced.get_submodule(str(node.target))) is not nn.Conv2d:
            continue
        tail, other, relu = node, None, False
        users = list(node.users)
        if len(users) == 1 and users[0].op == "call_function" and users[0].target in (operator.add, torch.add) \
                and len(users[0].args) == 2 and not users[0].kwargs:
            add = users[0]
            addend = add.args[1] if add.args[0] is node else add.args[0]
            if isinstance(addend, fx.Node) and addend is not node:
                tail, other, users = add, addend, list(add.users)
        if len(users) == 1 and _is_relu(users[0], traced):
            tail, relu = users[0], True
        fused_args = (node.args[0],) if other is None else (node.args[0], other)
        name = str(node.target).replace(".", "_") + "_onednn"
        traced.add_submodule(name, OneDnnConv2d(traced.get_submodule(str(node.target)), relu))
        with traced.graph.inserting_after(tail):
            fused = traced.graph.call_module(name, fused_args)
        tail.replace_all_uses_with(fused)
        for dead in reversed(_chain(node, tail)):
            traced.graph.erase_node(dead)
    traced.graph.lint()
    traced.delete_all_unused_submodules()
    traced.recompile()
    return traced


def _chain(first: fx.Node, last: fx.Node) -> list[fx.Node]:
    """The nodes from ``first`` to ``last`` along single users."""
    chain = [first]
    while chain[-1] is not last:
        chain.append(next(iter(chain[-1].users)))
    return chain


def onednn_available() -> bool:
    """Whether this torch has oneDNN's fused convolution."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def optimize_for_inference(model: Yolact, channels_last: bool = True, onednn: bool = False) -> Yolact:
    """A copy of ``model`` for inference: eval mode, the backbone's BatchNorms folded, optionally channels-last,
    and with ``onednn`` (CPU, float32) the backbone's convolutions fused with their post-ops.
    Feed it channels-last inputs (``x.contiguous(memory_format=torch.channels_last)``) for the full benefit."""
    optimized = copy.deepcopy(model).eval()
    optimized.backbone = _fold(optimized.backbone)  # already a copy
    if onednn:
        optimized.backbone = fuse_onednn_post_ops(optimized.backbone)
    if channels_last:
        optimized = optimized.to(memory_format=torch.channels_last)
    return optimized
