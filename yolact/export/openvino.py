"""OpenVINO: the exported network as OpenVINO IR (model.xml + model.bin), and IR or ONNX files run by OpenVINO.

The IR is converted from our ONNX export, fp32 or INT8 (QDQ), so it holds the same network and the same
metadata (config, class names, category ids; in the IR's runtime info). Weights stay fp32 in the IR (OpenVINO
would compress them to fp16 by default) and inference runs in fp32 unless asked otherwise (OpenVINO's CPU
plugin would pick bf16 on AMX CPUs by default), so the outputs match PyTorch's to float rounding.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from yolact.config import YolactConfig
from yolact.errors import YolactError
from yolact.export.onnx import (
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAMES,
    ExportedModelInfo,
    export_graph_module,
    export_metadata,
    parse_metadata,
    read_onnx_info,
)
from yolact.modeling.yolact import Yolact, YolactOutput

# Our precision names -> OpenVINO's for the CPU plugin's inference precision hint.
PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def _openvino() -> Any:
    try:
        import openvino
    except ImportError as error:
        raise YolactError('the openvino backend needs OpenVINO: pip install "yolact[openvino]"') from error
    return openvino


def export_openvino(onnx_path: str | Path, output: str | Path) -> Path:
    """Convert an ONNX file written by ``yolact export --format onnx`` (fp32 or INT8) to OpenVINO IR at
    ``output`` (``.xml``; the weights go to the ``.bin`` beside it). Both files appear only when complete."""
    ov = _openvino()
    import onnx

    output = Path(output).with_suffix(".xml")
    proto = onnx.load(str(onnx_path), load_external_data=False)
    metadata = next((p.value for p in proto.metadata_props if p.key == METADATA_KEY), None)
    if metadata is None:
        raise YolactError(f"{onnx_path}: not a model exported by `yolact export --format onnx`")
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as error:  # OpenVINO's conversion errors are its own RuntimeError subclasses
        raise YolactError(f"{onnx_path}: OpenVINO cannot convert it ({_reason(error)})") from error
    model.set_rt_info(metadata, [METADATA_KEY])
    return _save(ov, model, output)


def _save(ov: Any, model: Any, output: Path) -> Path:
    """Write IR ``output`` (.xml, .bin beside it) through a temporary folder: both files appear only when
    complete. Weights stay fp32 (OpenVINO compresses to fp16 by default)."""
    output = output.with_suffix(".xml")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as folder:
        tmp = Path(folder) / output.name
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        # The .bin first: an .xml never names weights that are not there yet.
        os.replace(tmp.with_suffix(".bin"), output.with_suffix(".bin"))
        os.replace(tmp, output)
    return output


def export_openvino_from_model(model: Yolact, config: YolactConfig, output: str | Path, class_names: Sequence[str],
                               category_ids: Sequence[int]) -> Path:
    """Convert ``model`` to OpenVINO IR through OpenVINO's PyTorch frontend (fp32, dynamic batch). This is the
    path for YOLACT++: OpenVINO's ONNX reader has no DeformConv, its PyTorch frontend has deform_conv2d."""
    ov = _openvino()
    network = export_graph_module(model)
    example = torch.zeros(1, 3, config.max_size, config.max_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the anchors are constants, as intended
        warnings.simplefilter("ignore", FutureWarning)  # torch's notice about the tracer OpenVINO calls
        converted = ov.convert_model(network, example_input=example)
    converted.reshape({converted.inputs[0]: ov.PartialShape([-1, 3, config.max_size, config.max_size])})
    converted.inputs[0].get_tensor().set_names({INPUT_NAME})
    for port, name in zip(converted.outputs, OUTPUT_NAMES, strict=True):
        port.get_tensor().set_names({name})
    converted.set_rt_info(export_metadata(model, config, class_names, category_ids), [METADATA_KEY])
    return _save(ov, converted, Path(output))


def _reason(error: Exception) -> str:
    """The line of an OpenVINO error that says what went wrong (its first lines are source locations)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("-- No conversion rule found"):
            return line.removeprefix("-- ")
    useful = [line for line in lines if not line.startswith(("Exception from", "Check ", "FrontEnd API"))]
    return (useful or lines or [type(error).__name__])[-1]


def _read_model(path: Path) -> Any:
    ov = _openvino()
    if not path.is_file():
        raise YolactError(f"{path}: no such model file; export one with `yolact export --format openvino` "
                          "(or --format onnx)")
    if path.suffix.lower() not in (".xml", ".onnx"):
        # By suffix, as OpenVINO chooses its reader: other files go to frontends (TensorFlow's) that log to stderr.
        raise YolactError(f"{path}: OpenVINO cannot read it (not an IR .xml or an .onnx file); export it with "
                          "`yolact export --format openvino`")
    try:
        return ov.Core().read_model(str(path))
    except Exception as error:  # OpenVINO raises RuntimeError subclasses of its own for unreadable files
        raise YolactError(f"{path}: OpenVINO cannot read it ({_reason(error)}); export it again "
                          "with `yolact export --format openvino`") from error


def read_openvino_info(path: str | Path) -> ExportedModelInfo:
    """Config, classes and (YOLACT++) the mask re-scoring network stored in an IR (.xml) or ONNX file that
    yolact exported."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return read_onnx_info(path)
    return _model_info(_read_model(path), path)


def _model_info(model: Any, path: Path) -> ExportedModelInfo:
    if not model.has_rt_info([METADATA_KEY]):
        raise YolactError(f"{path}: not a model exported by yolact (no '{METADATA_KEY}' metadata); export it with "
                          "`yolact export --format openvino`")
    return parse_metadata(model.get_rt_info([METADATA_KEY]).astype(str))


class OpenVinoNetwork:
    """An exported network (IR .xml or .onnx) run by OpenVINO on CPU, called like the PyTorch one:
    images -> YolactOutput. ``precision`` "fp32" (default) keeps fp32 arithmetic; "bf16" lets AMX/AVX512-BF16
    CPUs run it in bfloat16 (faster, not bit-comparable).

    The file has a dynamic batch; each batch size seen is compiled once with that size fixed (a few percent faster
    than running the dynamic model: the CPU plugin plans its memory and kernels for one known shape), so a stream
    of batches (video: full batches and one short last) compiles at most twice."""

    def __init__(self, path: str | Path, threads: int | None = None, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        self._ov = _openvino()
        self.path = Path(path)
        self.model = _read_model(self.path)
        self.properties: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision]}
        if threads:
            self.properties["INFERENCE_NUM_THREADS"] = threads
        self._core = self._ov.Core()
        self._requests: dict[int, tuple[Any, list[Any]]] = {}  # batch size -> (infer request, output ports)
        self._request(1)  # compiled now, so a model OpenVINO cannot compile fails at load, not mid-stream

    def _request(self, batch_size: int) -> tuple[Any, list[Any]]:
        if batch_size not in self._requests:
            model = self.model.clone()
            image_shape = list(model.inputs[0].partial_shape)[1:]
            model.reshape({model.inputs[0]: self._ov.PartialShape([batch_size, *image_shape])})
            compiled = self._core.compile_model(model, "CPU", self.properties)
            self._requests[batch_size] = (compiled.create_infer_request(),
                                          [compiled.output(name) for name in OUTPUT_NAMES])
        return self._requests[batch_size]

    @property
    def info(self) -> ExportedModelInfo:
        """What the file carries beside the network: from the IR already read (its runtime info); an ONNX file
        read by OpenVINO does not expose its metadata, so that one is read with ONNX Runtime."""
        if self.path.suffix.lower() == ".onnx":
            return read_onnx_info(self.path)
        return _model_info(self.model, self.path)

    def __call__(self, images: Tensor) -> YolactOutput:
        request, outputs = self._request(images.shape[0])
        results = request.infer({0: images.detach().cpu().contiguous().numpy()})
        loc, logits, coeffs, prototypes, anchors = (torch.from_numpy(results[o].copy()).to(images.device)
                                                    for o in outputs)
        return YolactOutput(loc, logits, coeffs, anchors, prototypes, None)
