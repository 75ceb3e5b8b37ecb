"""ONNX export (``yolact export --format onnx``) and the onnxruntime backend (``predict --backend onnxruntime``):
the same raw outputs as PyTorch and the same detections, on a checkpoint built in the authors' format."""

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
from yolact.export.onnx import OnnxNetwork, read_onnx_info
from yolact.export.pipeline import ExportJob, export_checkpoint
from yolact.inference.job import PredictJob, run_prediction
from yolact.inference.options import InferenceOptions

pytest.importorskip("onnxruntime", reason="pip install 'yolact[export]'")


def test_metadata_carries_config_and_classes(resnet50_onnx: Path) -> None:
    config, class_names, category_ids, _ = read_onnx_info(resnet50_onnx)
    assert config == yolact.get_config("yolact_resnet50")
    assert class_names[0] == "person" and len(class_names) == 80 and category_ids[-1] == 90


def test_raw_outputs_match_pytorch_with_a_dynamic_batch(resnet50_checkpoint: Path, resnet50_onnx: Path) -> None:
    plain = yolact.load(resnet50_checkpoint, device="cpu", optimize=False)
    batch = plain.prepare([read_image(p) for p in IMAGES])
    network = OnnxNetwork(resnet50_onnx)
    with torch.inference_mode():
        want = plain.model(batch)
    for size in (1, 2):  # exported at batch 1, run at 1 and 2
        got = network(batch[:size])
        for name in ("loc", "class_logits", "mask_coeffs", "prototypes", "anchors_cxcywh"):
            expected = getattr(want, name)[:size] if name != "anchors_cxcywh" else want.anchors_cxcywh
            actual = getattr(got, name)
            assert actual.shape == expected.shape, name
            assert (actual - expected).abs().max().item() <= 1e-4, name


def test_predict_with_onnxruntime_gives_pytorchs_detections(resnet50_checkpoint: Path, resnet50_onnx: Path,
                                                          tmp_path: Path) -> None:
    results = {}
    for backend, weights in (("pytorch", resnet50_checkpoint), ("onnxruntime", resnet50_onnx)):
        out = tmp_path / f"{backend}.json"
        run_prediction(PredictJob(IMAGES[0], weights, options=InferenceOptions(backend=backend, top_k=20), json=out,
                                  progress=False))
        results[backend] = json.loads(out.read_text())
    torch_records, onnx_records = results["pytorch"], results["onnxruntime"]
    assert len(torch_records) == len(onnx_records) > 0
    for a, b in zip(torch_records, onnx_records, strict=True):
        assert a["category_id"] == b["category_id"]
        assert abs(a["score"] - b["score"]) <= 1e-4
        assert np.abs(np.subtract(a["bbox"], b["bbox"])).max() <= 1


def test_bad_onnx_files_are_one_line_errors(tmp_path: Path, resnet50_onnx: Path, capsys) -> None:
    missing = tmp_path / "missing.onnx"
    with pytest.raises(YolactError, match="no such ONNX file"):
        OnnxNetwork(missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    with pytest.raises(YolactError, match=r"corrupt\.onnx.*ONNX Runtime cannot load it"):
        yolact.load(corrupt, backend="onnxruntime")
    with pytest.raises(ValueError, match="exported from yolact_resnet50, not yolact_base"):
        yolact.load(resnet50_onnx, "yolact_base", backend="onnxruntime")
    with pytest.raises(ValueError, match="an exported model; run it with --backend onnxruntime or openvino"):
        yolact.load(resnet50_onnx, backend="pytorch")
    assert yolact.load(resnet50_onnx).network.backend == "onnxruntime"  # auto: by the suffix
    with pytest.raises(ValueError, match="--no-cuda-graph applies to the pytorch backend"):
        yolact.load(resnet50_onnx, backend="onnxruntime", cuda_graph=False)


def test_yolact_plus_exports_with_deform_conv_and_rescores_like_pytorch(make_official_checkpoint,
                                                                       tmp_path: Path) -> None:
    """YOLACT++: deformable convs as ONNX DeformConv (opset 19), the re-scoring net carried in the metadata."""
    import onnx

    checkpoint = make_official_checkpoint("yolact_plus_resnet50")
    path = tmp_path / "plus.onnx"
    export_checkpoint(ExportJob(path, checkpoint, format="onnx"))
    proto = onnx.load(str(path))
    assert sum(node.op_type == "DeformConv" for node in proto.graph.node) == 13  # every block of C3-C5
    plain = yolact.load(checkpoint, device="cpu", optimize=False, score_threshold=0.0)
    image = read_image(IMAGES[0])
    batch = plain.prepare([image])
    with torch.inference_mode():
        want = plain.model(batch)
    got = OnnxNetwork(path)(batch)
    for name in ("loc", "class_logits", "mask_coeffs", "prototypes"):
        assert (getattr(got, name) - getattr(want, name)).abs().max().item() <= 1e-4, name
    exported = yolact.load(path, backend="onnxruntime", score_threshold=0.0)
    assert exported.network.rescorer is not None
    a, b = plain.predict_arrays([image])[0], exported.predict_arrays([image])[0]
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    np.testing.assert_allclose(a.box_scores, b.box_scores, atol=1e-4)
    assert not np.allclose(a.scores, a.box_scores)  # re-scored


def test_pascal_preset_exported_gives_its_reference_detections(make_official_checkpoint, shared_dir: Path,
                                                               tmp_path: Path) -> None:

    vector = shared_dir / "spec" / "vectors" / "yolact_resnet50_pascal_seed0"
    onnx = tmp_path / "pascal.onnx"
    export_checkpoint(ExportJob(onnx, make_official_checkpoint("yolact_resnet50_pascal"), format="onnx"))
    config, class_names, category_ids, _ = read_onnx_info(onnx)
    assert config.name == "yolact_resnet50_pascal" and class_names[0] == "aeroplane" and category_ids[-1] == 20
    out = tmp_path / "dets.json"
    run_prediction(PredictJob(vector / "image.png", onnx, json=out, progress=False,
                              options=InferenceOptions(backend="onnxruntime", score_threshold=0.0, top_k=100)))
    compare = compare_dets(vector / "expected.json", out)
    assert compare.returncode == 0, compare.stdout
