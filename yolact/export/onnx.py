"""ONNX export of the network, and the exported network run by ONNX Runtime in place of PyTorch's.

The graph holds the network only (normalised images [B, 3, S, S] in; loc, class logits, mask coefficients,
prototypes and the constant anchors out), with a dynamic batch axis; pre- and post-processing stay in our
Python code, so both backends give the same detections through one path. The file carries the config, class
names and category ids as metadata, so ``yolact predict --backend onnxruntime --weights model.onnx`` needs
nothing else.
"""

from __future__ import annotations

import base64
import json
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from yolact.config import YolactConfig
from yolact.errors import YolactError
from yolact.io import atomic_write
from yolact.modeling.inference import optimize_for_inference
from yolact.modeling.maskiou import MaskIoUNet
from yolact.modeling.yolact import Yolact, YolactOutput

INPUT_NAME = "images"
OUTPUT_NAMES = ("loc", "class_logits", "mask_coeffs", "prototypes", "anchors_cxcywh")
METADATA_KEY = "yolact"
DEFAULT_OPSET = 17
DEFORM_CONV_OPSET = 19


class _Outputs(nn.Module):
    """The network with its output as a plain tuple, as the exporter needs."""

    def __init__(self, model: Yolact) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        out = self.model(images)
        return out.loc, out.class_logits, out.mask_coeffs, out.prototypes, out.anchors_cxcywh


def export_onnx(model: Yolact, config: YolactConfig, path: str | Path, class_names: Sequence[str],
                category_ids: Sequence[int], opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` (BatchNorm folded, eval mode) as an ONNX file with a dynamic batch axis; returns the path.
    The file is written atomically."""
    import onnx  # optional dependency: pip install "yolact[export]"

    path = Path(path)
    if config.backbone.dcn_layers:
        # Deformable convs become ONNX DeformConv, which exists from opset 19 (ONNX Runtime runs it on CPU).
        _register_deform_conv()
        opset = max(opset, DEFORM_CONV_OPSET)
    network = export_graph_module(model)
    example = torch.zeros(1, 3, config.max_size, config.max_size)
    dynamic = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES[:4]}}
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "model.onnx"
        with warnings.catch_warnings():
            # The anchors are constants of the input size, which is fixed: the tracer's warning about recording
            # them as constants is exactly what we want.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # We choose the TorchScript exporter (dynamo=False: it handles our traced graph and custom symbolics);
            # its deprecation notices are torch's, not something a user of ours can act on.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(network, (example,), str(raw), input_names=[INPUT_NAME],
                              output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic, opset_version=opset,
                              dynamo=False)
        proto = onnx.load(str(raw))
    _inline_initializer_identities(proto)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, export_metadata(model, config, class_names, category_ids)
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    return path


def export_metadata(model: Yolact, config: YolactConfig, class_names: Sequence[str],
                    category_ids: Sequence[int]) -> str:
    """The JSON an exported file carries beside the network: config, classes, and for YOLACT++ the re-scoring
    network's weights (it works on post-processed masks, so it runs with the post-processing, in PyTorch; its
    few weights travel here as float32 base64)."""
    metadata: dict[str, Any] = {"config": config.to_dict(), "class_names": list(class_names),
                                "category_ids": [int(i) for i in category_ids]}
    if model.maskiou_net is not None:
        metadata["maskiou_state"] = {name: {"shape": list(t.shape), "data": _b64(t)}
                                     for name, t in model.maskiou_net.state_dict().items()}
    return json.dumps(metadata)


def export_graph_module(model: Yolact) -> nn.Module:
    """The module exporters trace: ``model`` with BatchNorm folded, outputs as a plain tuple (OUTPUT_NAMES)."""
    return _Outputs(optimize_for_inference(model.cpu(), channels_last=False)).eval()


def _b64(tensor: Tensor) -> str:
    return base64.b64encode(tensor.detach().float().cpu().numpy().tobytes()).decode()


def _deform_conv_symbolic(g: Any, input: Any, weight: Any, offset: Any, mask: Any, bias: Any, stride_h: Any,
                          stride_w: Any, pad_h: Any, pad_w: Any, dil_h: Any, dil_w: Any, groups: Any,
                          offset_groups: Any, use_mask: Any) -> Any:
    """torchvision::deform_conv2d as ONNX DeformConv (same offset layout: (dy, dx) per kernel tap)."""
    from torch.onnx import symbolic_helper

    def const(value: Any, name: str) -> int:
        return int(symbolic_helper._get_const(value, "i", name))

    kernel = symbolic_helper._get_tensor_sizes(weight)[2:]
    inputs = [input, weight, offset, bias] + ([mask] if const(use_mask, "use_mask") else [])
    return g.op("DeformConv", *inputs, strides_i=[const(stride_h, "stride_h"), const(stride_w, "stride_w")],
                pads_i=[const(pad_h, "pad_h"), const(pad_w, "pad_w")] * 2,
                dilations_i=[const(dil_h, "dil_h"), const(dil_w, "dil_w")], group_i=const(groups, "groups"),
                offset_group_i=const(offset_groups, "offset_groups"), kernel_shape_i=list(kernel))


def _register_deform_conv() -> None:
    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", _deform_conv_symbolic, DEFORM_CONV_OPSET)


def _inline_initializer_identities(proto: Any) -> None:
    """Point consumers of ``Identity(initializer)`` at the initializer itself and drop the Identity.

    The exporter emits such nodes for parameters used more than once (the prediction head shared by all FPN
    levels) and for equal tensors it deduplicates. They are no-ops to run, but quantisers look for weights and
    biases among the initializers and would leave these layers unquantised.
    """
    graph = proto.graph
    initializers = {tensor.name for tensor in graph.initializer}
    outputs = {value.name for value in graph.output}
    alias = {node.output[0]: node.input[0] for node in graph.node
             if node.op_type == "Identity" and node.input[0] in initializers and node.output[0] not in outputs}
    if not alias:
        return
    kept = [node for node in graph.node if not (node.op_type == "Identity" and node.output[0] in alias)]
    for node in kept:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    del graph.node[:]
    graph.node.extend(kept)


class ExportedModelInfo(NamedTuple):
    """What an exported file carries beside the network."""

    config: YolactConfig
    class_names: list[str]
    category_ids: list[int]
    mask_iou: MaskIoUNet | None  # YOLACT++'s re-scoring network, run in PyTorch after the exported network


def parse_metadata(value: str) -> ExportedModelInfo:
    """The metadata string of an exported file -> :class:`ExportedModelInfo`."""
    data = json.loads(value)
    config = YolactConfig.from_dict(data["config"])
    mask_iou = None
    if "maskiou_state" in data:
        mask_iou = MaskIoUNet(config.num_classes)
        mask_iou.load_state_dict({name: torch.from_numpy(np.frombuffer(base64.b64decode(entry["data"]),
                                                                       dtype=np.float32).copy()).view(entry["shape"])
                                  for name, entry in data["maskiou_state"].items()})
        mask_iou.eval()
    return ExportedModelInfo(config, list(data["class_names"]), list(data["category_ids"]), mask_iou)


def read_onnx_info(path: str | Path) -> ExportedModelInfo:
    """Config, classes and (YOLACT++) the mask re-scoring network stored in a file from ``export_onnx``."""
    return _session_info(_session(path, threads=1), path)


def _session_info(session: Any, path: str | Path) -> ExportedModelInfo:
    value = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if value is None:
        raise YolactError(f"{path}: not a model exported by `yolact export --format onnx` (no '{METADATA_KEY}' "
                          "metadata); export it with yolact")
    return parse_metadata(value)


def _session(path: str | Path, threads: int | None = None) -> Any:  # an onnxruntime.InferenceSession
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise YolactError('the onnxruntime backend needs onnxruntime: pip install "yolact[export]"') from error
    if not Path(path).is_file():
        raise YolactError(f"{path}: no such ONNX file; export one with `yolact export --format onnx`")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for unreadable models
        raise YolactError(f"{path}: ONNX Runtime cannot load it ({str(error).splitlines()[0]}); export it "
                          "again with `yolact export --format onnx`") from error


class OnnxNetwork:
    """An exported network run by ONNX Runtime on CPU, called like the PyTorch one: images -> YolactOutput."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = _session(path, threads)

    @property
    def info(self) -> ExportedModelInfo:
        """What the file carries beside the network, read from the loaded session (not from disk again)."""
        return _session_info(self.session, self.path)

    def __call__(self, images: Tensor) -> YolactOutput:
        outputs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.detach().cpu().contiguous().numpy()})
        loc, logits, coeffs, prototypes, anchors = (torch.from_numpy(o).to(images.device) for o in outputs)
        return YolactOutput(loc, logits, coeffs, anchors, prototypes, None)
