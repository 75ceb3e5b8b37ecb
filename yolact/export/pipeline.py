"""``yolact export``: a checkpoint (or a fresh model) written in another form (:func:`export_checkpoint`), and the steps
from a PyTorch model to a deployable file (:func:`export_model`)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from yolact.checkpoint import build_model, load_checkpoint, save_checkpoint, save_official
from yolact.config import YolactConfig, get_config
from yolact.data.class_lists import class_list
from yolact.errors import YolactError
from yolact.export.onnx import export_onnx
from yolact.export.quantize import DEFAULT_CALIBRATION_IMAGES, calibration_images, quantize_onnx
from yolact.modeling.yolact import Yolact, build_yolact
from yolact.outputs import check_output_file

FORMATS = ("onnx", "openvino")
CHECKPOINT_FORMATS = ("official", "yolact", *FORMATS)


@dataclass(frozen=True)
class ExportJob:
    """``weights`` (or, with ``random_init``, a fresh model of ``config`` drawn from ``seed``) written to ``output``
    as ``format``: "official" (the authors' flat state_dict), "yolact" (ours), "onnx" or "openvino"; ``int8``
    quantises the last two, calibrated on up to ``calibration_images`` images of the ``calibration`` folder."""

    output: Path
    weights: Path | None = None
    config: str | None = None
    format: str = "official"
    int8: bool = False
    calibration: Path | None = None
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES
    random_init: bool = False
    seed: int = 0


def export_checkpoint(job: ExportJob) -> str:
    """Check the output, write the file, and return the line that says what was written."""
    if job.random_init == (job.weights is not None):
        raise ValueError("give either --weights CKPT or --random-init (with --config)")
    if job.format not in CHECKPOINT_FORMATS:
        raise ValueError(f"--format {job.format!r}: choose one of {', '.join(CHECKPOINT_FORMATS)}")
    inputs = [p for p in (job.weights, job.calibration) if p is not None]
    check_output_file(job.output, "--output", inputs)
    if job.format == "openvino":  # the IR is two files: the .xml and its .bin
        check_output_file(job.output.with_suffix(".bin"), "--output", inputs)
    if job.int8 and job.format not in FORMATS:
        raise ValueError("--int8 quantises the onnx and openvino formats; add --format onnx or --format openvino")
    if job.int8 and job.calibration is None:
        raise ValueError("--int8 needs --calibration DIR: a folder of images like those the model will run on")
    if job.random_init:
        if not job.config:
            raise ValueError("--random-init needs --config NAME")
        torch.manual_seed(job.seed)
        config = get_config(job.config)
        model = build_yolact(config)
        state_dict = model.state_dict()
        class_names, category_ids = class_list(config.class_list, config.num_classes)
        named = False
    else:
        assert job.weights is not None
        checkpoint = load_checkpoint(job.weights, job.config)
        config, state_dict = checkpoint.config, checkpoint.state_dict
        class_names, category_ids, named = checkpoint.class_names, checkpoint.category_ids, True
    if job.format in FORMATS:
        if not job.random_init:
            model = build_model(checkpoint, job.weights)
        path = export_model(model, config, job.output, class_names, category_ids, job.format,
                            job.calibration if job.int8 else None, job.calibration_images)
        backend = "onnxruntime" if job.format == "onnx" else "openvino"
        return (f"wrote {path} ({job.format}{', INT8' if job.int8 else ''}, config {config.name}, dynamic batch; "
                f"run it with `yolact predict SOURCE --backend {backend} --weights {path}`)")
    if job.format == "official":
        save_official(job.output, state_dict)
        return f"wrote {len(state_dict)} tensors in the authors' format to {job.output} (config {config.name})"
    extra = {"class_names": class_names, "category_ids": category_ids} if named else {}
    save_checkpoint(job.output, state_dict, config, **extra)
    return f"wrote {job.output} (config {config.name})"


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
