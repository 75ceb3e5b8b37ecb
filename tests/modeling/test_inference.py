"""The inference copy of the network: BatchNorm folded into convolutions, channels-last memory."""

import dataclasses

import pytest
import torch
from torch import nn

import yolact
from yolact.inference.network import network_from_model
from yolact.inference.options import InferenceOptions
from yolact.modeling.inference import OneDnnConv2d, onednn_available, optimize_for_inference


def small_config(preset: str = "yolact_resnet18") -> yolact.YolactConfig:
    return dataclasses.replace(yolact.get_config(preset), max_size=96, num_classes=3)


def small_model(preset: str = "yolact_resnet18") -> yolact.Yolact:
    torch.manual_seed(0)
    model = yolact.build_yolact(small_config(preset))
    # Non-trivial BatchNorm statistics and affine parameters, so that folding has something to fold.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
    return model.eval()


def test_fold_batchnorm_removes_batchnorm_and_keeps_outputs() -> None:
    model = small_model()
    folded = optimize_for_inference(model, channels_last=False).backbone
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())  # the original is untouched
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        for got, want in zip(folded(x), model.backbone(x), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_optimized_model_gives_the_same_raw_outputs() -> None:
    model = small_model()
    optimized = optimize_for_inference(model)
    assert not optimized.training
    x = torch.randn(2, 3, 96, 96)
    with torch.inference_mode():
        want = model(x)
        got = optimized(x.contiguous(memory_format=torch.channels_last))
    for name in ("loc", "class_logits", "mask_coeffs", "anchors_cxcywh", "prototypes"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=1e-4, atol=1e-4, msg=name)
    assert got.semantic_logits is None


onednn = pytest.mark.skipif(not onednn_available(), reason="this torch has no oneDNN fused convolution")


@onednn
@pytest.mark.parametrize("preset", ["yolact_resnet18", "yolact_resnet50"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_onednn_post_ops_replace_every_plain_conv_and_keep_outputs(preset: str, channels_last: bool) -> None:
    model = small_model(preset)
    fused = optimize_for_inference(model, channels_last=channels_last, onednn=True)
    backbone = fused.backbone
    assert not any(type(m) is nn.Conv2d for m in backbone.modules())
    convs = [m for m in backbone.modules() if isinstance(m, OneDnnConv2d)]
    # Every block's last conv takes in its residual add and ReLU (ResNet-18: 2 convs a block, ResNet-50: 3).
    blocks = sum(small_config(preset).backbone.layers)
    assert sum(m.relu for m in convs) == 1 + blocks * (1 if preset == "yolact_resnet18" else 2) + blocks
    adds = [n for n in backbone.graph.nodes if n.op == "call_function" and "add" in str(n.target)]
    assert not adds
    x = torch.randn(2, 3, 96, 96)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        want = model(x)
        got = fused(x)
    for name in ("loc", "class_logits", "mask_coeffs", "prototypes"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=1e-4, atol=1e-4, msg=name)


@onednn
def test_cpu_fp32_network_fuses_post_ops_and_bf16_does_not() -> None:
    model = small_model()
    fp32 = network_from_model(model, small_config(), options=InferenceOptions(device="cpu", backend="pytorch"))
    assert fp32.module is not None
    assert any(isinstance(m, OneDnnConv2d) for m in fp32.module.modules())
    bf16 = network_from_model(model, small_config(),
                              options=InferenceOptions(device="cpu", backend="pytorch", precision="bf16"))
    assert bf16.module is not None
    assert not any(isinstance(m, OneDnnConv2d) for m in bf16.module.modules())
