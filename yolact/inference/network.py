"""A checkpoint or an exported file, made ready to run: the one place that decides what network runs, where and
in what arithmetic (:func:`open_network`, :func:`network_from_model`)."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from yolact.checkpoint import Checkpoint, build_model, load_checkpoint
from yolact.config import YolactConfig
from yolact.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES
from yolact.devices import resolve_device
from yolact.errors import YolactError
from yolact.inference.cuda_graph import CudaGraphNetwork
from yolact.inference.options import InferenceOptions
from yolact.modeling import Yolact, YolactOutput
from yolact.modeling.inference import onednn_available, optimize_for_inference

EXPORTED_SUFFIXES = (".onnx", ".xml")


@dataclass(frozen=True)
class Network:
    """What runs, ready: ``run`` takes a prepared batch [B, 3, S, S] on ``device`` (channels-last when
    ``channels_last``) and gives the network's outputs in float32, whatever the arithmetic inside.

    ``config`` is the model's with the options' NMS applied; ``rescorer`` is YOLACT++'s mask-IoU network (the
    model's, or the one an exported file carries), which post-processing runs after the network. ``model`` is the
    PyTorch model as loaded and ``module`` the one ``run`` calls eagerly (a BatchNorm-folded copy when optimised);
    both are None for an exported network."""

    run: Callable[[Tensor], YolactOutput]
    config: YolactConfig
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]
    device: torch.device
    rescorer: Callable[[Tensor], Tensor] | None = None
    model: Yolact | None = None
    module: Yolact | None = None
    channels_last: bool = False
    cuda_graph: CudaGraphNetwork | None = None
    backend: str = "pytorch"  # what runs it: pytorch, onnxruntime or openvino (auto's choice, once made)


def choose_backend(weights: str | Path | Checkpoint, options: InferenceOptions) -> str:
    """The backend ``options.backend`` names; for "auto" the fastest exact one for these weights here.

    An exported file runs in the runtime its suffix names. A checkpoint runs in PyTorch on a GPU, and where only
    PyTorch can do what is asked (torch.compile, CUDA graphs, fp16, the plain network of ``optimize=False``) or no
    runtime is installed; otherwise, on the
    CPU, in OpenVINO, else ONNX Runtime: both give the authors' detections (the parity vectors), and both run our
    networks faster than PyTorch's CPU path (README, deployment table)."""
    if options.backend != "auto":
        return options.backend
    if not isinstance(weights, Checkpoint):
        suffix = Path(weights).suffix.lower()
        if suffix == ".xml":
            return "openvino"
        if suffix == ".onnx":
            return "onnxruntime"
    if (isinstance(weights, Checkpoint) or resolve_device(options.device).type != "cpu" or options.compile
            or options.cuda_graph is not None or options.precision == "fp16" or not options.optimize):
        return "pytorch"
    if _importable("onnx") and _importable("openvino"):
        return "openvino"
    if options.precision == "fp32" and _importable("onnx") and _importable("onnxruntime"):
        return "onnxruntime"
    return "pytorch"


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def open_network(weights: str | Path | Checkpoint, options: InferenceOptions,
                 config: YolactConfig | str | None = None) -> Network:
    """An official or our own checkpoint (``backend="pytorch"``; the config from ``config``, the checkpoint or its
    file name), or a file written by ``yolact export`` (onnxruntime, openvino), ready to run as ``options`` say.
    With "auto" (:func:`choose_backend`) a checkpoint may run in a runtime, exported through the export cache."""
    backend = choose_backend(weights, options)
    auto, options = options.backend == "auto", dataclasses.replace(options, backend=backend)
    if auto and backend != "pytorch" and not isinstance(weights, Checkpoint) \
            and Path(weights).suffix.lower() not in EXPORTED_SUFFIXES:
        return _exported_checkpoint(Path(weights), options, config)
    if options.backend == "pytorch":
        if isinstance(weights, Checkpoint):
            checkpoint, path = weights, "checkpoint"
        else:
            path = Path(weights)
            if path.suffix.lower() in EXPORTED_SUFFIXES:
                raise ValueError(f"{path}: an exported model; run it with --backend onnxruntime or openvino")
            checkpoint = load_checkpoint(path, config)
        return network_from_model(build_model(checkpoint, path), checkpoint.config, checkpoint.class_names,
                                  checkpoint.category_ids, options)
    if isinstance(weights, Checkpoint):
        raise ValueError(f"--backend {options.backend} runs a file written by `yolact export`, not a checkpoint")
    return _exported_network(_open_exported(Path(weights), options), weights, options, config)


def _open_exported(path: Path, options: InferenceOptions) -> Any:
    if options.backend == "onnxruntime":
        from yolact.export.onnx import OnnxNetwork

        return OnnxNetwork(path, options.threads)
    from yolact.export.openvino import OpenVinoNetwork

    return OpenVinoNetwork(path, options.threads, options.precision)


def _exported_network(exported: Any, weights: str | Path, options: InferenceOptions,
                      config: YolactConfig | str | None) -> Network:
    info = exported.info
    wanted = config.name if isinstance(config, YolactConfig) else config
    if wanted and wanted != info.config.name:
        raise ValueError(f"{weights}: exported from {info.config.name}, not {wanted}; leave --config out (the file "
                         "carries its config)")
    return Network(exported, options.apply(info.config), tuple(info.class_names), tuple(info.category_ids),
                   torch.device("cpu"), rescorer=info.mask_iou, backend=options.backend)


def _exported_checkpoint(path: Path, options: InferenceOptions, config: YolactConfig | str | None) -> Network:
    """A checkpoint run by a runtime: exported once into the export cache (or, without the cache, into a folder
    deleted once the runtime has read it), then opened like any exported file."""
    from yolact.export.cache import cached_export, discard
    from yolact.export.pipeline import export_model

    checkpoint = load_checkpoint(path, config)
    fmt = "openvino" if options.backend == "openvino" else "onnx"

    def build(output: Path) -> Path:
        model = build_model(checkpoint, path)
        return export_model(model, checkpoint.config, output, checkpoint.class_names, checkpoint.category_ids, fmt,
                            progress=False)

    if not options.cache:
        with tempfile.TemporaryDirectory(prefix="yolact-export-", ignore_cleanup_errors=True) as folder:
            exported = _open_exported(build(Path(folder) / ("model.xml" if fmt == "openvino" else "model.onnx")),
                                      options)
            return _exported_network(exported, path, options, checkpoint.config)
    def cached() -> Path:
        entry = cached_export(path, checkpoint.config.to_dict(), fmt, build)
        if entry.seconds is not None:
            print(f"exported {path.name} ({checkpoint.config.name}) for {options.backend} in {entry.seconds:.1f} s, "
                  f"once: cached in {entry.path.parent} (--backend pytorch runs without it)", file=sys.stderr)
        return entry.path

    exported = cached()
    try:
        return _exported_network(_open_exported(exported, options), path, options, checkpoint.config)
    except YolactError as error:  # an entry the runtime cannot read, although its files look whole: once more
        print(f"cache entry {exported.parent} cannot be read ({error}); exporting again", file=sys.stderr)
        discard(exported)
    return _exported_network(_open_exported(cached(), options), path, options, checkpoint.config)


def network_from_model(model: Yolact, config: YolactConfig, class_names: Sequence[str] = COCO_CLASSES,
                       category_ids: Sequence[int] = COCO_CATEGORY_IDS,
                       options: InferenceOptions | None = None) -> Network:
    """A PyTorch model ready to run as ``options`` say (device, precision, BatchNorm folding, compile, CUDA
    graph). With ``optimize`` the network is a folded, channels-last copy: the model itself is left as it is."""
    options = options or InferenceOptions()
    if options.backend not in ("pytorch", "auto"):
        raise ValueError(f"--backend {options.backend} runs an exported file; a PyTorch model runs with pytorch")
    device = resolve_device(options.device)
    if options.precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 inference needs a CUDA device; on CPU use bf16 (fast on AMX/AVX512-BF16 CPUs)")
    model = model.eval().to(device)
    # oneDNN's post-op fusion where PyTorch's oneDNN convolutions run it: eager float32 on the CPU.
    onednn = (device.type == "cpu" and options.precision == "fp32" and not options.compile and onednn_available())
    module = optimize_for_inference(model, onednn=onednn) if options.optimize else model
    run: Callable[[Tensor], YolactOutput] = module
    if options.compile:
        # Inductor; on CPU with freezing (weights as constants, prepacked for oneDNN), after a compilation of tens
        # of seconds on the first call of each batch size (benchmarks/deploy.py measures the gain).
        run = torch.compile(module, options={"freezing": True} if device.type == "cpu" else {})
    if options.precision != "fp32":
        run = _autocast(run, device, torch.float16 if options.precision == "fp16" else torch.bfloat16)
    graph = _cuda_graph(run, config, device, options)
    rescorer = model.maskiou_net if config.mask_rescoring else None
    if config.mask_rescoring and rescorer is None:
        raise ValueError(f"{config.name} re-scores masks with its mask-IoU network, which this model lacks")
    return Network(graph or run, options.apply(config), tuple(class_names), tuple(int(i) for i in category_ids),
                   device, rescorer, model, module, channels_last=options.optimize, cuda_graph=graph)


def _autocast(network: Callable[[Tensor], YolactOutput], device: torch.device, dtype: torch.dtype
              ) -> Callable[[Tensor], YolactOutput]:
    # Convolutions in half precision under autocast, weights kept fp32; outputs back in fp32, so post-processing is
    # the same code at the same precision.
    def run(batch: Tensor) -> YolactOutput:
        with torch.autocast(device.type, dtype=dtype):
            output = network(batch)
        return YolactOutput(*(t.float() if t is not None else None for t in output))

    return run


def _cuda_graph(network: Callable[[Tensor], YolactOutput], config: YolactConfig, device: torch.device,
                options: InferenceOptions) -> CudaGraphNetwork | None:
    """On CUDA the network is replayed as a CUDA graph (the same kernels, launched at once): at batch 1 launching
    hundreds of kernels one by one from Python costs more than running them. Default: on, unless compiled or the
    config has deformable convs, whose torchvision CUDA kernel runs on the legacy default stream, not the current
    one, so that a capture silently leaves it out."""
    capturable = device.type == "cuda" and not options.compile
    deformable = any(config.backbone.dcn_layers)
    wanted = options.cuda_graph
    if wanted is None:
        wanted = capturable and not deformable
    elif wanted and not capturable:
        raise ValueError("cuda_graph needs a PyTorch network on a CUDA device, not compiled")
    if wanted and deformable:
        raise ValueError(f"{config.name} has deformable convs, whose torchvision CUDA kernel cannot be captured in a "
                         "CUDA graph; leave cuda_graph off")
    return CudaGraphNetwork(network) if wanted else None
