import dataclasses

import pytest
import torch

from yolact.config import PostprocessConfig
from yolact.inference.postprocess import Detections, Postprocessor
from yolact.modeling.yolact import YolactOutput
from yolact.ops import box_iou


def synthetic_output(num_anchors: int = 300, num_classes: int = 5, seed: int = 0) -> YolactOutput:
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(num_anchors, 2, generator=g) * 0.6 + 0.2
    sizes = torch.rand(num_anchors, 2, generator=g) * 0.2 + 0.1
    return YolactOutput(
        loc=torch.randn(1, num_anchors, 4, generator=g) * 0.5,
        class_logits=torch.randn(1, num_anchors, num_classes + 1, generator=g) * 3,
        mask_coeffs=torch.rand(1, num_anchors, 8, generator=g) * 2 - 1,
        anchors_cxcywh=torch.cat((centres, sizes), dim=1),
        prototypes=torch.rand(1, 20, 20, 8, generator=g),
        semantic_logits=None,
    )


@pytest.mark.parametrize("nms", ["fast", "cross_class_fast", "traditional"])
def test_each_nms_variant_gives_sorted_non_overlapping_detections(nms: str) -> None:
    config = PostprocessConfig(nms=nms, max_detections=50)
    dets = Postprocessor(config, input_size=550).detect(synthetic_output())[0]
    assert 0 < len(dets.scores) <= 50
    assert torch.all(dets.scores[:-1] >= dets.scores[1:])
    iou = box_iou(dets.boxes_xyxy, dets.boxes_xyxy).triu(diagonal=1)
    same_class = dets.class_ids[:, None] == dets.class_ids[None, :]
    overlapping = iou > 0.5 if nms == "cross_class_fast" else (iou > 0.5) & same_class
    # Traditional NMS uses the +1 pixel convention, so relative IoU may slightly exceed the threshold.
    if nms == "traditional":
        overlapping = (iou > 0.55) & same_class
    assert not overlapping.any()


def test_candidates_need_a_class_score_above_the_threshold() -> None:
    out = synthetic_output()
    none_pass = dataclasses.replace(PostprocessConfig(), conf_threshold=1.0)
    assert len(Postprocessor(none_pass, 550).detect(out)[0].scores) == 0


def make_detections(scores: list[float]) -> Detections:
    n = len(scores)
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5]] * n)
    return Detections(boxes, torch.zeros(n, dtype=torch.int64), torch.tensor(scores), torch.ones(n, 4),
                      torch.ones(10, 10, 4))


def test_finalize_threshold_is_strict_and_top_k_keeps_the_best() -> None:
    dets = make_detections([0.9, 0.5, 0.3, 0.7])
    final = Postprocessor(PostprocessConfig(), 550, score_threshold=0.5).finalize(dets, width=100, height=80)
    assert final.scores.tolist() == pytest.approx([0.9, 0.7])
    final = Postprocessor(PostprocessConfig(), 550, top_k=3).finalize(dets, width=100, height=80)
    assert final.scores.tolist() == pytest.approx([0.9, 0.7, 0.5])
    assert final.masks.shape == (3, 80, 100) and final.masks.dtype == torch.bool
    assert final.boxes_xyxy.tolist()[0] == [10, 8, 50, 40]


def test_finalize_with_nothing_left() -> None:
    final = Postprocessor(PostprocessConfig(), 550, score_threshold=0.5).finalize(make_detections([0.1]), width=30,
                                                                         height=20)
    assert final.masks.shape == (0, 20, 30) and final.boxes_xyxy.shape == (0, 4)
