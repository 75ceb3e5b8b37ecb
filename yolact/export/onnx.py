"""ONNX export of the network, and the exported network run by ONNX Runtime in place of PyTorch's.

The graph holds the network only (normalised images [B, 3, S, S] in; loc, class logits, mask coefficients,
prototypes and the constant anchors out), with a dynamic batch axis; pre- and post-processing stay in our
Python code, so both backends give the same detections through one path. The file carries the config, class
names and category ids as metadata, so ``yolact predict --backend onnxruntime --weights model.onnx`` needs
nothing else.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from yolact.config import YolactConfig
from yolact.errors import YolactError
from yolact.io import atomic_write
from yolact.modeling.inference import optimize_for_inference
from yolact.modeling.yolact import Yolact, YolactOutput

INPUT_NAME = "images"
OUTPUT_NAMES = ("loc", "class_logits", "mask_coeffs", "prototypes", "anchors_cxcywh")
METADATA_KEY = "yolact"
DEFAULT_OPSET = 17


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
    network = _Outputs(optimize_for_inference(model.cpu(), channels_last=False)).eval()
    example = torch.zeros(1, 3, config.max_size, config.max_size)
    dynamic = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES[:4]}}
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "model.onnx"
        with warnings.catch_warnings():
            # The anchors are constants of the input size, which is fixed: the tracer's warning about recording
            # them as constants is exactly what we want.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(network, (example,), str(raw), input_names=[INPUT_NAME],
                              output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic, opset_version=opset,
                              dynamo=False)
        proto = onnx.load(str(raw))
    metadata = {"config": config.to_dict(), "class_names": list(class_names),
                "category_ids": [int(i) for i in category_ids]}
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    return path


def read_onnx_metadata(path: str | Path) -> tuple[YolactConfig, list[str], list[int]]:
    """(config, class names, category ids) stored in an exported file."""
    session = _session(path, threads=1)
    value = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if value is None:
        raise YolactError(f"{path}: not a model exported by `yolact export --format onnx` (no '{METADATA_KEY}' "
                          "metadata); export it with yolact")
    data = json.loads(value)
    return YolactConfig.from_dict(data["config"]), list(data["class_names"]), list(data["category_ids"])


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

    def __call__(self, images: Tensor) -> YolactOutput:
        outputs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.detach().cpu().contiguous().numpy()})
        loc, logits, coeffs, prototypes, anchors = (torch.from_numpy(o).to(images.device) for o in outputs)
        return YolactOutput(loc, logits, coeffs, anchors, prototypes, None)
