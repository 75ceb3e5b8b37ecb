"""``yolact export --format onnx|openvino [--int8]``: the steps from a PyTorch model to a deployable file."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from yolact.config import YolactConfig
from yolact.errors import YolactError
from yolact.export.onnx import export_onnx
from yolact.export.quantize import DEFAULT_CALIBRATION_IMAGES, calibration_images, quantize_onnx
from yolact.modeling.yolact import Yolact

FORMATS = ("onnx", "openvino")


def export_model(model: Yolact, config: YolactConfig, output: str | Path, class_names: Sequence[str],
                 category_ids: Sequence[int], fmt: str = "onnx", calibration: str | Path | None = None,
                 calibration_limit: int = DEFAULT_CALIBRATION_IMAGES, progress: bool = True) -> Path:
    """Write ``model`` as ONNX (``fmt="onnx"``) or OpenVINO IR (``"openvino"``), INT8-quantised when a
    ``calibration`` folder is given (static post-training quantisation calibrated on its images). Returns the
    path written (for OpenVINO the .xml; its .bin lies beside it)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    output = Path(output)
    if fmt == "openvino" and config.backbone.dcn_layers:
        # OpenVINO reads deformable convs from PyTorch, not from ONNX (its ONNX reader lacks DeformConv).
        if calibration is not None:
            raise YolactError(f"{config.name}: INT8 OpenVINO export of deformable convs is not supported (OpenVINO "
                              "cannot read them from ONNX); use --format onnx --int8, or fp32 OpenVINO")
        from yolact.export.openvino import export_openvino_from_model

        return export_openvino_from_model(model, config, output, class_names, category_ids)
    # The calibration folder is checked before the (slow) export, so a wrong path fails at once.
    calibration_paths = None if calibration is None else calibration_images(calibration, calibration_limit)
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = output if fmt == "onnx" and calibration_paths is None else Path(folder) / "fp32.onnx"
        export_onnx(model, config, onnx_path, class_names, category_ids)
        if calibration_paths is not None:
            int8_path = output if fmt == "onnx" else Path(folder) / "int8.onnx"
            onnx_path = quantize_onnx(onnx_path, int8_path, calibration_paths, progress=progress)
        if fmt == "openvino":
            from yolact.export.openvino import export_openvino

            return export_openvino(onnx_path, output)
    return output
