"""ONNX export (``yolact export --format onnx``) and the onnxruntime backend (``predict --backend onnxruntime``):
the same raw outputs as PyTorch and the same detections, on a checkpoint built in the authors' format."""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import COCO128

import yolact
from yolact.cli import main
from yolact.data.images import read_image
from yolact.errors import YolactError
from yolact.export.onnx import OnnxNetwork, read_onnx_metadata

pytest.importorskip("onnxruntime", reason="pip install 'yolact[export]'")

IMAGES = [COCO128 / "images" / "000000000009.jpg", COCO128 / "images" / "000000000025.jpg"]


@pytest.fixture(scope="module")
def checkpoint(make_official_checkpoint: Callable[..., Path]) -> Path:
    return make_official_checkpoint("yolact_resnet50")


@pytest.fixture(scope="module")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "resnet50.onnx"
    assert main(["export", "--weights", str(checkpoint), "--format", "onnx", "--output", str(path)]) == 0
    return path


def test_metadata_carries_config_and_classes(exported: Path) -> None:
    config, class_names, category_ids = read_onnx_metadata(exported)
    assert config == yolact.get_config("yolact_resnet50")
    assert class_names[0] == "person" and len(class_names) == 80 and category_ids[-1] == 90


def test_raw_outputs_match_pytorch_with_a_dynamic_batch(checkpoint: Path, exported: Path) -> None:
    plain = yolact.load(checkpoint, device="cpu", optimize=False)
    batch = plain.prepare([read_image(p) for p in IMAGES])
    network = OnnxNetwork(exported)
    with torch.inference_mode():
        want = plain.model(batch)
    for size in (1, 2):  # exported at batch 1, run at 1 and 2
        got = network(batch[:size])
        for name in ("loc", "class_logits", "mask_coeffs", "prototypes", "anchors_cxcywh"):
            expected = getattr(want, name)[:size] if name != "anchors_cxcywh" else want.anchors_cxcywh
            actual = getattr(got, name)
            assert actual.shape == expected.shape, name
            assert (actual - expected).abs().max().item() <= 1e-4, name


def test_predict_with_onnxruntime_gives_pytorchs_detections(checkpoint: Path, exported: Path,
                                                          tmp_path: Path) -> None:
    results = {}
    for backend, weights in (("pytorch", checkpoint), ("onnxruntime", exported)):
        out = tmp_path / f"{backend}.json"
        assert main(["predict", str(IMAGES[0]), "--weights", str(weights), "--backend", backend, "--json", str(out),
                     "--top-k", "20", "--quiet"]) == 0
        results[backend] = json.loads(out.read_text())
    torch_records, onnx_records = results["pytorch"], results["onnxruntime"]
    assert len(torch_records) == len(onnx_records) > 0
    for a, b in zip(torch_records, onnx_records, strict=True):
        assert a["category_id"] == b["category_id"]
        assert abs(a["score"] - b["score"]) <= 1e-4
        assert np.abs(np.subtract(a["bbox"], b["bbox"])).max() <= 1


def test_bad_onnx_files_are_one_line_errors(tmp_path: Path, exported: Path, capsys) -> None:
    missing = tmp_path / "missing.onnx"
    with pytest.raises(YolactError, match="no such ONNX file"):
        OnnxNetwork(missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    assert main(["predict", str(IMAGES[0]), "--backend", "onnxruntime", "--weights", str(corrupt)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt.onnx" in err[0] and "ONNX Runtime cannot load it" in err[0]
    assert main(["predict", str(IMAGES[0]), "--backend", "onnxruntime", "--weights", str(exported),
                 "--config", "yolact_base"]) != 0
    assert "exported from yolact_resnet50, not yolact_base" in capsys.readouterr().err
    assert main(["predict", str(IMAGES[0]), "--weights", str(exported)]) != 0
    assert "an ONNX model; run it with --backend onnxruntime" in capsys.readouterr().err
