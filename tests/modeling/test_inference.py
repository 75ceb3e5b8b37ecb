"""The inference copy of the network: BatchNorm folded into convolutions, channels-last memory."""

import dataclasses

import torch
from torch import nn

import yolact
from yolact.modeling.inference import optimize_for_inference


def small_model() -> yolact.Yolact:
    torch.manual_seed(0)
    config = dataclasses.replace(yolact.get_config("yolact_resnet18"), max_size=96, num_classes=3)
    model = yolact.build_yolact(config)
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
