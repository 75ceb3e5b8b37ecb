"""Inference from images to :class:`~yolact.inference.results.Prediction`: preprocess, network, post-process.

Read :func:`load` first: options -> :func:`~yolact.inference.network.open_network` -> :class:`Predictor`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yolact.checkpoint import Checkpoint
from yolact.config import YolactConfig
from yolact.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES
from yolact.data.images import as_bgr_uint8, read_image
from yolact.data.transforms import image_to_tensor, normalize_image
from yolact.inference.network import Network, network_from_model, open_network
from yolact.inference.options import InferenceOptions
from yolact.inference.postprocess import Postprocessor
from yolact.inference.results import Prediction
from yolact.modeling import Yolact, YolactOutput

ImageInput = np.ndarray | str | Path


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
    """Runs a ready :class:`Network` on images: numpy arrays (BGR uint8, as OpenCV reads them; grayscale and BGRA
    accepted) or image paths. ``predictor(image)`` gives one :class:`Prediction`, ``predictor([a, b])`` a list.
    What is kept (score threshold, top-k) comes from ``options``; how the network runs was fixed when it was
    opened."""

    def __init__(self, network: Network, options: InferenceOptions | None = None) -> None:
        self.network = network
        self.options = options or InferenceOptions()
        config = network.config
        self.postprocessor = Postprocessor(config.postprocess, config.max_size, config.box_variances,
                                           self.options.score_threshold, self.options.top_k, network.rescorer,
                                           _class_ids(self.options.classes, network.class_names))

    @classmethod
    def from_model(cls, model: Yolact, config: YolactConfig, class_names: Sequence[str] = COCO_CLASSES,
                   category_ids: Sequence[int] = COCO_CATEGORY_IDS, options: InferenceOptions | None = None,
                   **overrides: Any) -> Predictor:
        """A PyTorch model in memory (being trained, say); ``overrides`` are :class:`InferenceOptions` fields."""
        options = dataclasses.replace(options or InferenceOptions(), **overrides)
        return cls(network_from_model(model, config, class_names, category_ids, options), options)

    @property
    def config(self) -> YolactConfig:
        return self.network.config

    @property
    def device(self) -> torch.device:
        return self.network.device

    @property
    def model(self) -> Yolact | None:
        return self.network.model

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.network.class_names

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
        finals = self.postprocessor(output, [image.shape[:2] for image in images_bgr])
        sources = sources or [None] * len(images_bgr)
        fields = [(f.boxes_xyxy, f.scores.float(), f.class_ids, f.masks, f.box_scores.float(), f.mask_bounds_xyxy)
                  for f in finals]
        host = to_numpy([tensor for group in fields for tensor in group])
        category_ids = np.asarray(self.network.category_ids, dtype=np.int64)
        rescored = self.network.rescorer is not None
        predictions = []
        for index, (image, source) in enumerate(zip(images_bgr, sources, strict=True)):
            boxes, scores, class_ids, masks, box_scores, mask_bounds = host[6 * index : 6 * index + 6]
            predictions.append(
                Prediction(
                    boxes_xyxy=boxes,
                    scores=scores,
                    class_ids=class_ids,
                    class_names=[self.class_names[i] for i in class_ids],
                    category_ids=category_ids[class_ids],
                    masks=masks,
                    image_size=image.shape[:2],
                    source=source,
                    box_scores=box_scores if rescored else None,
                    mask_bounds_xyxy=mask_bounds,
                )
            )
        return predictions

    def run_network(self, batch: torch.Tensor) -> YolactOutput:
        """The network on a prepared batch, in its arithmetic; outputs in fp32."""
        return self.network.run(batch)

    def prepare(self, images_bgr: Sequence[np.ndarray]) -> torch.Tensor:
        """BGR uint8 images -> the network's input batch [B, 3, S, S] on the device (channels-last when optimised)."""
        cfg = self.config
        batch = torch.cat(
            [normalize_image(image_to_tensor(image, self.device), cfg.max_size, cfg.backbone) for image in images_bgr]
        )
        return batch.contiguous(memory_format=torch.channels_last) if self.network.channels_last else batch

    @staticmethod
    def _load(image: ImageInput, index: int) -> np.ndarray:
        if isinstance(image, (str, Path)):
            return read_image(image)
        return as_bgr_uint8(image, name=f"image {index}")


def _class_ids(names: Sequence[str] | None, class_names: Sequence[str]) -> list[int] | None:
    """The indices of the classes named (``--classes``), each checked against the model's."""
    if names is None:
        return None
    unknown = [name for name in names if name not in class_names]
    if unknown:
        shown = ", ".join(class_names[:12]) + (", ..." if len(class_names) > 12 else "")
        raise ValueError(f"--classes {unknown[0]!r}: not a class of this model (its classes: {shown})")
    return [class_names.index(name) for name in names]


def load(weights: str | Path | Checkpoint, config: YolactConfig | str | None = None,
         options: InferenceOptions | None = None, **overrides: Any) -> Predictor:
    """A model ready to run: ``yolact.load("w.pth")(image)``. ``weights`` is an official or our own checkpoint, or
    with ``backend="onnxruntime"``/``"openvino"`` a file written by ``yolact export``; the config comes from
    ``config``, the checkpoint or its file name. ``options`` (:class:`InferenceOptions`) or its fields as keywords:
    ``score_threshold``, ``top_k``, ``device``, ``precision`` ("fp16" on CUDA, "bf16"), ``optimize=False`` (the
    plain network, as the authors run it), ``compile``, ``cuda_graph``, ``nms``, ``backend``, ``threads``."""
    options = dataclasses.replace(options or InferenceOptions(), **overrides)
    return Predictor(open_network(weights, options, config), options)
