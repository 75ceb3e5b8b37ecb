"""Reproduce the reference vectors of shared/spec (the authors' code on CPU, float32) with the spec's tolerances."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compare_dets

from yolact.checkpoint import load_checkpoint
from yolact.data.images import read_image
from yolact.data.transforms import image_to_tensor, normalize_image
from yolact.inference.postprocess import Postprocessor
from yolact.inference.predictor import load


def read_case(folder: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (folder / "case.txt").read_text().split())


VECTORS = ["yolact_resnet50_seed0", "yolact_plus_resnet50_seed0", "yolact_resnet50_pascal_seed0"]


@pytest.fixture(scope="module", params=VECTORS)
def vector(shared_dir: Path, request: pytest.FixtureRequest) -> Path:
    return shared_dir / "spec" / "vectors" / request.param


@pytest.fixture(scope="module")
def checkpoint_path(vector: Path, make_official_checkpoint) -> Path:
    case = read_case(vector)
    return make_official_checkpoint(case["config"], int(case["seed"]), float(case["class_gain"]))


def assert_close(name: str, actual: torch.Tensor, expected: np.ndarray) -> None:
    # The spec's tolerance for intermediate tensors: max abs difference <= 1e-4 x the tensor's max abs value.
    actual_np = actual.detach().cpu().numpy()
    assert actual_np.shape == expected.shape, name
    diff = np.abs(actual_np - expected).max()
    assert diff <= 1e-4 * np.abs(expected).max(), f"{name}: max abs diff {diff}"


@pytest.mark.numerics
def test_intermediate_tensors_match_reference(vector: Path, checkpoint_path: Path) -> None:
    reference = np.load(vector / "reference.npz")
    predictor = load(checkpoint_path, read_case(vector)["config"], device="cpu", backend="pytorch")
    config = predictor.config
    image = read_image(vector / "image.png")
    with torch.inference_mode():
        x = normalize_image(image_to_tensor(image), config.max_size, config.backbone)
        out = predictor.model(x)
        # YOLACT++ re-scores by the masks' predicted IoU and ranks by that (None for YOLACT).
        post = Postprocessor(config.postprocess, config.max_size, rescorer=predictor.model.maskiou_net)
        dets = post.detect(out)[0]
        final = post.finalize(dets, image.shape[1], image.shape[0])
    assert_close("input", x, reference["input"])
    assert_close("loc", out.loc, reference["loc"])
    assert_close("conf", out.class_logits.softmax(-1), reference["conf"])
    assert_close("mask_coef", out.mask_coeffs, reference["mask_coef"])
    assert_close("priors", out.anchors_cxcywh, reference["priors"])
    assert_close("proto", out.prototypes, reference["proto"])
    assert_close("det_box", dets.boxes_xyxy, reference["det_box"])
    assert_close("det_score", dets.scores, reference["det_score"])
    assert np.array_equal(dets.class_ids.numpy(), reference["det_class"])
    assert_close("masks_proto_soft", dets.soft_masks(), reference["masks_proto_soft"])
    assert np.array_equal(final.boxes_xyxy.numpy(), reference["boxes"])
    assert np.array_equal(final.class_ids.numpy(), reference["classes"])
    assert_close("scores", final.scores, reference["scores"])


@pytest.mark.numerics
@pytest.mark.parametrize("backend", ["auto", "pytorch"])
def test_predict_cli_json_matches_expected_detections(vector: Path, checkpoint_path: Path, tmp_path: Path,
                                                      shared_dir: Path, backend: str) -> None:
    # The default (auto: OpenVINO on a CPU where it is installed) and the PyTorch path, both within the bars.
    out = tmp_path / "dets.json"
    subprocess.run(
        [sys.executable, "-m", "yolact.cli", "predict", str(vector / "image.png"), "--weights", str(checkpoint_path),
         "--config", read_case(vector)["config"], "--score-threshold", "0", "--top-k", "100", "--json", str(out),
         "--device", "cpu", "--quiet", "--backend", backend],
        check=True,
    )
    records = json.loads(out.read_text())
    assert len(records) == len(json.loads((vector / "expected.json").read_text()))
    compare = compare_dets(vector / "expected.json", out)
    assert compare.returncode == 0, compare.stdout


def test_expected_detections_differ_from_a_wrong_model(vector: Path, make_official_checkpoint, tmp_path: Path,
                                                       shared_dir: Path) -> None:
    # The comparison is not vacuous: another seed's weights do not pass it.
    config = read_case(vector)["config"]
    predictor = load(load_checkpoint(make_official_checkpoint(config, seed=1)), device="cpu", score_threshold=0.0,
                     top_k=100)
    out = tmp_path / "wrong.json"
    out.write_text(json.dumps(predictor(vector / "image.png").to_coco(9)))
    compare = compare_dets(vector / "expected.json", out)
    assert compare.returncode == 1 and "MISMATCH" in compare.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cuda_graph", [False, None])
def test_cuda_fast_path_gives_expected_detections(vector: Path, checkpoint_path: Path, tmp_path: Path,
                                                  shared_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                  cuda_graph: bool | None) -> None:
    # fp32 as the authors' GPUs computed it: PyTorch's default TF32 convolutions round inputs to 10-bit mantissas.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    config = read_case(vector)["config"]
    predictor = load(checkpoint_path, config, device="cuda", score_threshold=0.0, top_k=100, cuda_graph=cuda_graph)
    # The default replays a CUDA graph, except for YOLACT++ (torchvision's deformable conv cannot be captured).
    replayed = cuda_graph is None and not config.startswith("yolact_plus")
    assert (predictor.network.cuda_graph is not None) == replayed
    out = tmp_path / "dets.json"
    out.write_text(json.dumps(predictor(vector / "image.png").to_coco(0)))
    compare = compare_dets(vector / "expected.json", out)
    assert compare.returncode == 0, compare.stdout


@pytest.mark.parametrize("anchors", ["square", "coco_scales"])
def test_pascal_vector_needs_the_pascal_anchors(anchors: str, make_official_checkpoint, shared_dir: Path,
                                                tmp_path: Path) -> None:
    # The Pascal preset differs from a 20-class yolact_resnet50 only in its anchors: either one wrong fails.
    import dataclasses

    import yolact

    vector = shared_dir / "spec" / "vectors" / "yolact_resnet50_pascal_seed0"
    pascal = yolact.get_config("yolact_resnet50_pascal")
    wrong = (dataclasses.replace(pascal.anchors, square=True) if anchors == "square"
             else dataclasses.replace(pascal.anchors, scales=yolact.get_config("yolact_resnet50").anchors.scales))
    predictor = load(make_official_checkpoint("yolact_resnet50_pascal"), dataclasses.replace(pascal, anchors=wrong),
                     device="cpu", score_threshold=0.0, top_k=100, backend="pytorch")
    out = tmp_path / "wrong.json"
    out.write_text(json.dumps(predictor(vector / "image.png").to_coco(2)))
    compare = compare_dets(vector / "expected.json", out)
    assert compare.returncode == 1 and "MISMATCH" in compare.stdout
