"""INT8 post-training quantisation (``yolact export --int8 --calibration DIR``): a real QDQ model that keeps its
metadata, runs in both backends, stays close to fp32, and refuses bad calibration input with one line."""

import json
import re
import shutil
from pathlib import Path

import onnx
import pytest
import torch
from conftest import COCO128
from conftest import EXPORT_IMAGES as IMAGES

import yolact
from yolact.data.images import read_image
from yolact.errors import YolactError
from yolact.evaluation.evaluator import evaluate_agreement
from yolact.export.onnx import METADATA_KEY, OnnxNetwork, read_onnx_info
from yolact.export.pipeline import ExportJob, export_checkpoint

pytest.importorskip("onnxruntime", reason="pip install 'yolact[export]'")


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calibration")
    for name in ("000000000030.jpg", "000000000034.jpg", "000000000036.jpg"):
        shutil.copy(COCO128 / "images" / name, folder / name)
    (folder / "broken.jpg").write_bytes(b"not an image")  # skipped, not fatal
    return folder


@pytest.fixture(scope="module")
def int8(resnet50_checkpoint: Path, calibration: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("int8") / "resnet50_int8.onnx"
    export_checkpoint(ExportJob(path, resnet50_checkpoint, format="onnx", int8=True, calibration=calibration))
    return path


def test_int8_file_is_quantised_and_keeps_its_metadata(int8: Path, resnet50_onnx: Path) -> None:
    proto = onnx.load(str(int8))
    ops = {node.op_type for node in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_weights) >= 50  # every conv of the network (ResNet-50 alone has 53)
    assert int8.stat().st_size < 0.4 * resnet50_onnx.stat().st_size
    config, class_names, _, _ = read_onnx_info(int8)
    assert config == yolact.get_config("yolact_resnet50") and len(class_names) == 80
    metadata = json.loads(next(p.value for p in proto.metadata_props if p.key == METADATA_KEY))
    assert metadata["quantization"]["calibration_images"] == 3  # the unreadable file was skipped


def test_int8_outputs_stay_close_to_fp32(int8: Path, resnet50_checkpoint: Path) -> None:
    plain = yolact.load(resnet50_checkpoint, device="cpu", optimize=False)
    batch = plain.prepare([read_image(IMAGES[0])])
    with torch.inference_mode():
        want = plain.model(batch)
    got = OnnxNetwork(int8)(batch)
    for name in ("loc", "class_logits", "mask_coeffs", "prototypes"):
        a, b = getattr(want, name).flatten(), getattr(got, name).flatten()
        assert not torch.equal(a, b), name  # really quantised
        assert torch.nn.functional.cosine_similarity(a, b, dim=0).item() > 0.98, name


def test_int8_detections_agree_with_fp32_in_both_backends(int8: Path, resnet50_checkpoint: Path) -> None:
    images = [read_image(p) for p in IMAGES]
    fp32 = yolact.load(resnet50_checkpoint, device="cpu").predict(images)
    backends = [yolact.load(int8, backend="onnxruntime")]
    if _has_openvino():  # OpenVINO runs the same QDQ file with its own int8 kernels
        backends.append(yolact.load(int8, backend="openvino"))
    for predictor in backends:
        result = evaluate_agreement(fp32, predictor.predict(images), predictor.class_names)
        assert result.bbox["AP50"] > 0.5 and result.segm["AP50"] > 0.5, (predictor.network, result.bbox)


def _has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def test_bad_int8_requests_are_one_line_errors(resnet50_checkpoint: Path, tmp_path: Path) -> None:
    output = tmp_path / "m.onnx"
    cases = [
        ({"format": "onnx", "int8": True}, "--int8 needs --calibration DIR"),
        ({"format": "yolact", "int8": True, "calibration": tmp_path}, "add --format onnx or --format openvino"),
        ({"format": "onnx", "int8": True, "calibration": tmp_path}, "no images to calibrate on"),
        ({"format": "onnx", "int8": True, "calibration": tmp_path / "nope"}, "no such folder"),
    ]
    for fields, message in cases:
        with pytest.raises((YolactError, ValueError), match=re.escape(message)) as error:
            export_checkpoint(ExportJob(output, resnet50_checkpoint, **fields))
        assert "\n" not in str(error.value)
    assert not (tmp_path / "m.onnx").exists()
