"""Inference from images to :class:`~yolact.inference.results.Prediction`: preprocess, network, post-process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from yolact.checkpoint import Checkpoint, load_checkpoint, load_model_weights
from yolact.config import YolactConfig
from yolact.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES
from yolact.data.images import as_bgr_uint8, read_image
from yolact.data.transforms import image_to_tensor, normalize_image
from yolact.inference.cuda_graph import CudaGraphNetwork
from yolact.inference.postprocess import Postprocessor, finalize_detections
from yolact.inference.results import Prediction
from yolact.modeling import Yolact, YolactOutput, build_yolact
from yolact.modeling.inference import optimize_for_inference

ImageInput = np.ndarray | str | Path
# Arithmetic the PyTorch network can run in at inference (fp16 on CUDA only).
INFERENCE_PRECISIONS = ("fp32", "fp16", "bf16")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; anything else as torch.device understands it."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    return resolved


def to_numpy(tensors: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Tensors -> numpy arrays. From CUDA, every copy goes into pinned (page-locked) host memory and is queued
    before one wait: full-resolution masks are tens of MB per image, and a copy to pageable memory is staged by the
    driver and blocks the host."""
    if not tensors or tensors[0].device.type != "cuda":
        return [tensor.cpu().numpy() for tensor in tensors]
    host = [torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True) for tensor in tensors]
    for target, tensor in zip(host, tensors, strict=True):
        target.copy_(tensor, non_blocking=True)
    torch.cuda.current_stream(tensors[0].device).synchronize()
    return [target.numpy() for target in host]


class Predictor:
    """Runs YOLACT on images: numpy arrays (BGR uint8, as OpenCV reads them; grayscale and BGRA accepted) or
    image paths. ``predictor(image)`` gives one :class:`Prediction`, ``predictor([a, b])`` a list."""

    def __init__(
        self,
        model: Yolact | None,
        config: YolactConfig,
        class_names: Sequence[str] = COCO_CLASSES,
        category_ids: Sequence[int] = COCO_CATEGORY_IDS,
        device: str | torch.device | None = "auto",
        score_threshold: float = 0.15,
        top_k: int = 100,
        optimize: bool = True,
        network: Callable[[torch.Tensor], YolactOutput] | None = None,
        precision: str = "fp32",
        mask_iou: Callable[[torch.Tensor], torch.Tensor] | None = None,
        compile: bool = False,
        cuda_graph: bool | None = None,
    ) -> None:
        self.device = resolve_device(device)
        if precision not in INFERENCE_PRECISIONS:
            raise ValueError(f"precision {precision!r}: choose one of {', '.join(INFERENCE_PRECISIONS)}")
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 inference needs a CUDA device; on CPU use bf16 (fast on AMX/AVX512-BF16 CPUs)")
        if precision != "fp32" and network is not None:
            raise ValueError("precision applies to PyTorch models; an exported network runs as it was exported")
        # fp16/bf16: the network runs under autocast (convolutions in half precision, weights kept fp32); its
        # outputs are cast back to fp32, so post-processing is the same code at the same precision.
        self.precision = precision
        # What runs: ``network`` when given (an exported model, e.g. OnnxNetwork, with no PyTorch model); else
        # with ``optimize`` a copy of ``model`` with BatchNorm folded and channels-last memory (same detections up
        # to float rounding), or with ``optimize=False`` the plain network, as the authors' code runs it.
        self.model = model.eval().to(self.device) if model is not None else None
        self.optimized = optimize and network is None
        self.compiled = compile
        if network is not None:
            self.network = network
        elif self.model is None:
            raise ValueError("a Predictor needs a model or a network")
        else:
            self.network = optimize_for_inference(self.model) if optimize else self.model
        if compile:
            if network is not None:
                raise ValueError("compile applies to PyTorch models; an exported network is compiled by its runtime")
            # Inductor; on CPU with freezing (weights as constants, prepacked for oneDNN): about 12 % faster
            # than the optimised eager network for yolact_resnet50 on 2 cores (benchmarks/deploy.py), after a
            # compilation of tens of seconds on the first call of each batch size.
            options = {"freezing": True} if self.device.type == "cpu" else {}
            self.network = torch.compile(self.network, options=options)
        # On CUDA the network is replayed as a CUDA graph (the same kernels, launched at once): at batch 1 launching
        # hundreds of kernels one by one from Python costs more time than running them. None: on for PyTorch
        # networks on CUDA that are not compiled and have no deformable convs: torchvision's deform_conv2d launches
        # its CUDA kernel on the legacy default stream, not the current one, so a capture silently leaves it out.
        capturable = self.device.type == "cuda" and network is None and not compile
        deformable = any(config.backbone.dcn_layers)
        if cuda_graph is None:
            cuda_graph = capturable and not deformable
        elif cuda_graph and not capturable:
            raise ValueError("cuda_graph needs a PyTorch network on a CUDA device, not compiled")
        if cuda_graph and deformable:
            raise ValueError(f"{config.name} has deformable convs, whose torchvision CUDA kernel cannot be captured "
                             "in a CUDA graph; leave cuda_graph off")
        self.cuda_graph = CudaGraphNetwork(self._run_network_eagerly) if cuda_graph else None
        self.config = config
        self.class_names = list(class_names)
        self.category_ids = np.asarray(category_ids, dtype=np.int64)
        self.score_threshold = score_threshold
        self.top_k = top_k
        self.postprocessor = Postprocessor(config.postprocess, config.max_size, config.box_variances)
        # YOLACT++ re-scores detections with its mask-IoU network, run in PyTorch after the network: the model's,
        # or ``mask_iou`` beside an exported network.
        self.mask_iou = None
        if config.mask_rescoring:
            self.mask_iou = mask_iou or (self.model.maskiou_net if self.model is not None else None)
            if self.mask_iou is None:
                raise ValueError(f"{config.name} re-scores masks with its mask-IoU network; give it (mask_iou)")

    @classmethod
    def from_checkpoint(
        cls,
        weights: str | Path,
        config: YolactConfig | str | None = None,
        device: str | torch.device | None = "auto",
        score_threshold: float = 0.15,
        top_k: int = 100,
        optimize: bool = True,
        precision: str = "fp32",
        compile: bool = False,
        cuda_graph: bool | None = None,
    ) -> Predictor:
        """Load an official or our own checkpoint (the config from ``config``, the checkpoint or its file name)."""
        checkpoint = load_checkpoint(weights, config)
        return cls.from_loaded(checkpoint, weights, device, score_threshold, top_k, optimize, precision, compile,
                               cuda_graph)

    @classmethod
    def from_onnx(cls, path: str | Path, score_threshold: float = 0.15, top_k: int = 100,
                  threads: int | None = None) -> Predictor:
        """A model exported by ``yolact export --format onnx``, run by ONNX Runtime on CPU (the config and classes
        come from the file)."""
        from yolact.export.onnx import OnnxNetwork

        network = OnnxNetwork(path, threads)
        info = network.info
        return cls(None, info.config, info.class_names, info.category_ids, "cpu", score_threshold, top_k,
                   network=network, mask_iou=info.mask_iou)

    @classmethod
    def from_openvino(cls, path: str | Path, score_threshold: float = 0.15, top_k: int = 100,
                      threads: int | None = None, precision: str = "fp32") -> Predictor:
        """A model exported by ``yolact export --format openvino`` (IR .xml) or ``--format onnx``, run by OpenVINO
        on CPU (the config and classes come from the file). ``precision="bf16"`` lets AMX CPUs use bfloat16."""
        from yolact.export.openvino import OpenVinoNetwork

        network = OpenVinoNetwork(path, threads, precision)
        info = network.info
        return cls(None, info.config, info.class_names, info.category_ids, "cpu", score_threshold, top_k,
                   network=network, mask_iou=info.mask_iou)

    @classmethod
    def from_loaded(
        cls,
        checkpoint: Checkpoint,
        path: str | Path = "checkpoint",
        device: str | torch.device | None = "auto",
        score_threshold: float = 0.15,
        top_k: int = 100,
        optimize: bool = True,
        precision: str = "fp32",
        compile: bool = False,
        cuda_graph: bool | None = None,
    ) -> Predictor:
        model = build_yolact(checkpoint.config)
        load_model_weights(model, checkpoint, path)
        return cls(model, checkpoint.config, checkpoint.class_names, checkpoint.category_ids, device,
                   score_threshold, top_k, optimize, precision=precision, compile=compile, cuda_graph=cuda_graph)

    def __call__(self, images: ImageInput | Sequence[ImageInput], batch_size: int = 1
                 ) -> Prediction | list[Prediction]:
        if isinstance(images, (np.ndarray, str, Path)):
            return self.predict([images])[0]
        return self.predict(images, batch_size)

    def predict(self, images: Sequence[ImageInput], batch_size: int = 1) -> list[Prediction]:
        """Predictions for every image, computed ``batch_size`` images per network call."""
        results: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            loaded = [self._load(image, start + i) for i, image in enumerate(chunk)]
            sources = [str(image) if isinstance(image, (str, Path)) else None for image in chunk]
            results.extend(self.predict_arrays(loaded, sources))
        return results

    @torch.inference_mode()
    def predict_arrays(self, images_bgr: Sequence[np.ndarray], sources: Sequence[str | None] | None = None
                       ) -> list[Prediction]:
        """BGR uint8 images [H, W, 3] -> predictions, in one network call."""
        return self.postprocess(self.run_network(self.prepare(images_bgr)), images_bgr, sources)

    @torch.inference_mode()
    def postprocess(self, output: YolactOutput, images_bgr: Sequence[np.ndarray],
                    sources: Sequence[str | None] | None = None) -> list[Prediction]:
        """The network's output for ``images_bgr`` -> predictions at each image's size, on the host."""
        detections = self.postprocessor(output)
        sources = sources or [None] * len(images_bgr)
        finals = []
        for image, dets in zip(images_bgr, detections, strict=True):
            height, width = image.shape[:2]
            finals.append(finalize_detections(dets, width, height, self.score_threshold, self.top_k, self.mask_iou))
        fields = [(f.boxes_xyxy, f.scores.float(), f.class_ids, f.masks, f.box_scores.float(), f.mask_bounds_xyxy)
                  for f in finals]
        host = to_numpy([tensor for group in fields for tensor in group])
        predictions = []
        for index, (image, source) in enumerate(zip(images_bgr, sources, strict=True)):
            boxes, scores, class_ids, masks, box_scores, mask_bounds = host[6 * index : 6 * index + 6]
            predictions.append(
                Prediction(
                    boxes_xyxy=boxes,
                    scores=scores,
                    class_ids=class_ids,
                    class_names=[self.class_names[i] for i in class_ids],
                    category_ids=self.category_ids[class_ids],
                    masks=masks,
                    image_size=image.shape[:2],
                    source=source,
                    box_scores=box_scores if self.mask_iou is not None else None,
                    mask_bounds_xyxy=mask_bounds,
                )
            )
        return predictions

    def run_network(self, batch: torch.Tensor) -> YolactOutput:
        """The network on a prepared batch, at the predictor's precision; outputs in fp32."""
        if self.cuda_graph is not None:
            return self.cuda_graph(batch)
        return self._run_network_eagerly(batch)

    def _run_network_eagerly(self, batch: torch.Tensor) -> YolactOutput:
        if self.precision == "fp32":
            return self.network(batch)
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        with torch.autocast(self.device.type, dtype=dtype):
            output = self.network(batch)
        return YolactOutput(*(t.float() if t is not None else None for t in output))

    def prepare(self, images_bgr: Sequence[np.ndarray]) -> torch.Tensor:
        """BGR uint8 images -> the network's input batch [B, 3, S, S] on the device (channels-last when optimised)."""
        cfg = self.config
        batch = torch.cat(
            [normalize_image(image_to_tensor(image, self.device), cfg.max_size, cfg.backbone) for image in images_bgr]
        )
        return batch.contiguous(memory_format=torch.channels_last) if self.optimized else batch

    @staticmethod
    def _load(image: ImageInput, index: int) -> np.ndarray:
        if isinstance(image, (str, Path)):
            return read_image(image)
        return as_bgr_uint8(image, name=f"image {index}")


def load(
    weights: str | Path,
    config: YolactConfig | str | None = None,
    device: str | torch.device | None = "auto",
    score_threshold: float = 0.15,
    top_k: int = 100,
    optimize: bool = True,
    precision: str = "fp32",
    compile: bool = False,
    cuda_graph: bool | None = None,
) -> Predictor:
    """Load a model from an official or our own checkpoint, ready to run: ``yolact.load("w.pth")(image)``.
    ``optimize=False`` runs the plain network (no BatchNorm folding, no channels-last); ``precision`` "fp16"
    (CUDA) or "bf16" runs it in half precision; ``compile`` runs it through ``torch.compile``; ``cuda_graph``
    (default: on CUDA) replays the network as a CUDA graph."""
    return Predictor.from_checkpoint(weights, config, device, score_threshold, top_k, optimize, precision, compile,
                                     cuda_graph)
