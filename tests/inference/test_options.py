"""InferenceOptions: the one place where the options of a prediction are checked and applied."""

import dataclasses
import re
from pathlib import Path

import pytest

import yolact
from yolact.inference.options import InferenceOptions


@pytest.mark.parametrize(("fields", "message"), [
    ({"score_threshold": 1.5}, "--score-threshold 1.5: give a score between 0 and 1"),
    ({"top_k": 0}, "--top-k 0: give a whole number at least 1"),
    ({"nms": "greedy"}, "--nms 'greedy': choose one of fast, cross_class_fast, traditional"),
    ({"backend": "tensorrt"}, "--backend 'tensorrt': choose one of auto, pytorch, onnxruntime, openvino"),
    ({"precision": "int4"}, "choose one of fp32, fp16, bf16"),
    ({"backend": "onnxruntime", "device": "cuda"}, "--backend onnxruntime runs on the CPU; leave --device out"),
    ({"backend": "openvino", "compile": True}, "--compile applies to the pytorch backend"),
    ({"backend": "onnxruntime", "cuda_graph": False}, "--no-cuda-graph applies to the pytorch backend"),
    ({"backend": "onnxruntime", "precision": "bf16"}, "--backend onnxruntime runs the exported precision"),
    ({"backend": "openvino", "precision": "fp16"}, "use --precision bf16 (or fp32)"),
])
def test_combinations_that_cannot_work_are_refused_at_once(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        InferenceOptions(**fields)


def test_options_are_frozen_and_changed_by_replace() -> None:
    options = InferenceOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.top_k = 5  # type: ignore[misc]
    assert dataclasses.replace(options, top_k=5).top_k == 5 and options.top_k == 100
    with pytest.raises(ValueError, match="--top-k 0"):
        dataclasses.replace(options, top_k=0)  # replace checks too


def test_nms_and_candidate_threshold_apply_to_the_config_only_when_given() -> None:
    config = yolact.get_config("yolact_resnet50")
    assert InferenceOptions().apply(config) is config
    changed = InferenceOptions(nms="traditional", candidate_threshold=0.2).apply(config)
    assert changed.postprocess.nms == "traditional" and changed.postprocess.conf_threshold == 0.2
    assert changed.postprocess.nms_top_k == config.postprocess.nms_top_k and changed.backbone == config.backbone
    assert config.postprocess.nms == "fast"  # the config itself is untouched


def test_a_predictor_keeps_what_the_options_say(tmp_path: Path) -> None:
    config = dataclasses.replace(yolact.get_config("yolact_resnet18"), max_size=96)
    predictor = yolact.Predictor.from_model(yolact.build_yolact(config), config, device="cpu", score_threshold=0.4,
                                            top_k=7, nms="cross_class_fast", optimize=False)
    assert predictor.options.score_threshold == 0.4 and predictor.postprocessor.score_threshold == 0.4
    assert predictor.postprocessor.top_k == 7 and predictor.config.postprocess.nms == "cross_class_fast"
    assert predictor.network.module is predictor.model and not predictor.network.channels_last
