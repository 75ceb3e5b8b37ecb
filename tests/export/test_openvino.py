"""OpenVINO export (``yolact export --format openvino``) and backend (``predict --backend openvino``): the same raw
outputs as PyTorch and the same detections, on a checkpoint built in the authors' format."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EXPORT_IMAGES as IMAGES
from conftest import compare_dets

import yolact
from yolact.data.images import read_image
from yolact.errors import YolactError
from yolact.export.openvino import OpenVinoNetwork, read_openvino_info
from yolact.export.pipeline import ExportJob, export_checkpoint
from yolact.inference.job import PredictJob, run_prediction
from yolact.inference.options import InferenceOptions

pytest.importorskip("openvino", reason="pip install 'yolact[openvino]'")
OUTPUTS = ("loc", "class_logits", "mask_coeffs", "prototypes", "anchors_cxcywh")


@pytest.fixture(scope="module")
def ir(resnet50_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("openvino") / "resnet50.xml"
    export_checkpoint(ExportJob(path, resnet50_checkpoint, format="openvino"))
    return path


def test_ir_is_fp32_and_carries_config_and_classes(ir: Path) -> None:
    assert ir.with_suffix(".bin").is_file()
    assert "f16" not in ir.read_text()  # weights not compressed to fp16 (OpenVINO's default)
    config, class_names, category_ids, _ = read_openvino_info(ir)
    assert config == yolact.get_config("yolact_resnet50")
    assert class_names[0] == "person" and len(class_names) == 80 and category_ids[-1] == 90
    # Written through a temporary folder: nothing else is left beside the two files.
    assert sorted(p.name for p in ir.parent.iterdir()) == sorted([ir.name, ir.with_suffix(".bin").name])


@pytest.mark.parametrize("source", ["ir", "onnx"])
def test_raw_outputs_match_pytorch_with_a_dynamic_batch(source: str, resnet50_checkpoint: Path, ir: Path,
                                                       resnet50_onnx: Path) -> None:
    plain = yolact.load(resnet50_checkpoint, device="cpu", optimize=False)
    batch = plain.prepare([read_image(p) for p in IMAGES])
    network = OpenVinoNetwork(ir if source == "ir" else resnet50_onnx)
    with torch.inference_mode():
        want = plain.model(batch)
    for size in (1, 2):
        got = network(batch[:size])
        for name in OUTPUTS:
            expected = getattr(want, name)[:size] if name != "anchors_cxcywh" else want.anchors_cxcywh
            actual = getattr(got, name)
            assert actual.shape == expected.shape, name
            assert (actual - expected).abs().max().item() <= 1e-4, name
    network(batch[:1])
    assert sorted(network._requests) == [1, 2]  # one static-shape compile per batch size, reused


def test_predict_with_openvino_gives_pytorchs_detections(resnet50_checkpoint: Path, ir: Path, tmp_path: Path) -> None:
    results = {}
    for backend, weights in (("pytorch", resnet50_checkpoint), ("openvino", ir)):
        out = tmp_path / f"{backend}.json"
        run_prediction(PredictJob(IMAGES[0], weights, options=InferenceOptions(backend=backend, top_k=20), json=out,
                                  progress=False))
        results[backend] = json.loads(out.read_text())
    assert len(results["pytorch"]) == len(results["openvino"]) > 0
    for a, b in zip(results["pytorch"], results["openvino"], strict=True):
        assert a["category_id"] == b["category_id"]
        assert abs(a["score"] - b["score"]) <= 1e-4
        assert np.abs(np.subtract(a["bbox"], b["bbox"])).max() <= 1


def test_bad_openvino_files_are_one_line_errors(tmp_path: Path, ir: Path, capsys) -> None:
    with pytest.raises(YolactError, match="no such model file"):
        OpenVinoNetwork(tmp_path / "missing.xml")
    corrupt = tmp_path / "corrupt.xml"
    corrupt.write_text("<net>not a model")
    with pytest.raises(YolactError, match=r"corrupt\.xml.*OpenVINO cannot read it"):
        yolact.load(corrupt, backend="openvino")
    with pytest.raises(ValueError, match="an exported model; run it with --backend onnxruntime or openvino"):
        yolact.load(ir, backend="pytorch")


def test_yolact_plus_converts_through_the_pytorch_frontend(make_official_checkpoint, tmp_path: Path) -> None:
    checkpoint = make_official_checkpoint("yolact_plus_resnet50")
    path = tmp_path / "plus.xml"
    export_checkpoint(ExportJob(path, checkpoint, format="openvino"))
    plain = yolact.load(checkpoint, device="cpu", optimize=False, score_threshold=0.0)
    batch = plain.prepare([read_image(p) for p in IMAGES])
    with torch.inference_mode():
        want = plain.model(batch)
    exported = yolact.load(path, backend="openvino", score_threshold=0.0)
    got = exported.run_network(batch)  # dynamic batch: 2 images
    for name in OUTPUTS:
        assert (getattr(got, name) - getattr(want, name)).abs().max().item() <= 1e-4, name
    a, b = plain.predict_arrays([read_image(IMAGES[0])])[0], exported.predict_arrays([read_image(IMAGES[0])])[0]
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    # INT8 OpenVINO of deformable convs is refused plainly (OpenVINO cannot read them from ONNX).
    with pytest.raises(YolactError, match="INT8 OpenVINO export of deformable convs is not supported"):
        export_checkpoint(ExportJob(tmp_path / "int8.xml", checkpoint, format="openvino", int8=True,
                                    calibration=IMAGES[0].parent))


def test_pascal_preset_ir_gives_its_reference_detections(make_official_checkpoint, shared_dir: Path,
                                                         tmp_path: Path) -> None:

    vector = shared_dir / "spec" / "vectors" / "yolact_resnet50_pascal_seed0"
    ir = tmp_path / "pascal.xml"
    export_checkpoint(ExportJob(ir, make_official_checkpoint("yolact_resnet50_pascal"), format="openvino"))
    config, class_names, category_ids, _ = read_openvino_info(ir)
    assert config.name == "yolact_resnet50_pascal" and class_names[-1] == "tvmonitor" and category_ids[-1] == 20
    out = tmp_path / "dets.json"
    run_prediction(PredictJob(vector / "image.png", ir, json=out, progress=False,
                              options=InferenceOptions(backend="openvino", score_threshold=0.0, top_k=100)))
    compare = compare_dets(vector / "expected.json", out)
    assert compare.returncode == 0, compare.stdout
