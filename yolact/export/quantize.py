"""INT8 post-training quantisation of an exported ONNX network (ONNX Runtime, static, QDQ).

Static quantisation needs each activation's range, which calibration measures by running the fp32 network on
representative images, preprocessed exactly as inference does. Weights are quantised per output channel (int8)
and activations per tensor (uint8), the U8S8 QDQ form that ONNX Runtime runs with VNNI/AMX integer kernels on
x86 and that OpenVINO reads as int8 too. The int8 file keeps the fp32 file's metadata, so it runs wherever the
fp32 one does (``yolact predict --backend onnxruntime|openvino``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from yolact.data.images import list_images, read_image
from yolact.data.transforms import image_to_tensor, normalize_image
from yolact.errors import ImageReadError, YolactError
from yolact.export.onnx import INPUT_NAME, METADATA_KEY
from yolact.io import atomic_write

DEFAULT_CALIBRATION_IMAGES = 64


def calibration_images(folder: str | Path, limit: int = DEFAULT_CALIBRATION_IMAGES) -> list[Path]:
    """Up to ``limit`` images of ``folder``, spread evenly over its sorted listing (a folder sorted by scene
    would otherwise calibrate on its first scene only)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise YolactError(f"{folder}: no such folder; give --calibration a folder of images like those you will run on")
    images = list_images(folder)
    if not images:
        raise YolactError(f"{folder}: no images to calibrate on (looked for .jpg, .png, ...); give a folder of "
                          "images like those you will run on")
    if len(images) <= limit:
        return images
    picks = np.linspace(0, len(images) - 1, limit).round().astype(int)
    return [images[i] for i in picks]


class _CalibrationReader:
    """onnxruntime's CalibrationDataReader protocol: ``get_next()`` -> one input feed, or None when done."""

    def __init__(self, paths: Sequence[Path], size: int, backbone: object, progress: bool) -> None:
        self.paths = list(paths)
        self.size = size
        self.backbone = backbone
        self.skipped: list[str] = []
        self._bar = tqdm(total=len(self.paths), desc="calibrate", unit="img", disable=not progress)
        self._feeds = self._generate()

    def _generate(self) -> Iterator[dict[str, np.ndarray]]:
        for path in self.paths:
            self._bar.update()
            try:
                image = read_image(path)
            except ImageReadError as error:
                self.skipped.append(str(error))
                continue
            tensor = normalize_image(image_to_tensor(image), self.size, self.backbone)  # type: ignore[arg-type]
            yield {INPUT_NAME: tensor.numpy()}
        self._bar.close()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:
        self._feeds = self._generate()


def quantize_onnx(fp32_path: str | Path, output: str | Path, calibration: str | Path | Sequence[Path],
                  limit: int = DEFAULT_CALIBRATION_IMAGES, progress: bool = True) -> Path:
    """Write an INT8 (static, QDQ, per-channel weights) copy of the fp32 ONNX file ``fp32_path``, exported by
    :func:`yolact.export.onnx.export_onnx`, calibrated on ``calibration`` (a folder, or a list of image paths).
    The file is written atomically; returns its path."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from yolact.export.onnx import parse_metadata

    fp32_path, output = Path(fp32_path), Path(output)
    source = onnx.load(str(fp32_path), load_external_data=False)
    value = next((p.value for p in source.metadata_props if p.key == METADATA_KEY), None)
    if value is None:
        raise YolactError(f"{fp32_path}: not a model exported by `yolact export --format onnx`; export it first")
    config = parse_metadata(value).config
    paths = calibration_images(calibration, limit) if isinstance(calibration, (str, Path)) else list(calibration)
    if not paths:
        raise YolactError("no calibration images; give a folder of images like those you will run on")
    reader = _CalibrationReader(paths, config.max_size, config.backbone, progress)
    with tempfile.TemporaryDirectory() as folder:
        raw, prepared = Path(folder) / "int8.onnx", Path(folder) / "prepared.onnx"
        # ONNX Runtime's recommended preparation: shapes inferred and the graph simplified (constants folded)
        # before the quantiser looks for the patterns it quantises.
        quant_pre_process(str(fp32_path), str(prepared))
        quantize_static(str(prepared), str(raw), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        if len(reader.skipped) == len(paths):
            raise YolactError(f"none of the {len(paths)} calibration images could be read ({reader.skipped[0]})")
        proto = onnx.load(str(raw))
    metadata = json.loads(value)
    metadata["quantization"] = {"method": "onnxruntime static QDQ, uint8 activations, per-channel int8 weights, "
                                "min-max calibration", "calibration_images": len(paths) - len(reader.skipped)}
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    atomic_write(output, lambda f: f.write(proto.SerializeToString()))
    return output
