"""How a model runs and what it keeps: one frozen options object for every way in (Python, CLI, server)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from yolact.config import YolactConfig

# "auto": the fastest exact one here (yolact.inference.network.choose_backend).
BACKENDS = ("auto", "pytorch", "onnxruntime", "openvino")
# Arithmetic the network can run in at inference (fp16 on CUDA only).
INFERENCE_PRECISIONS = ("fp32", "fp16", "bf16")
NMS_KINDS = ("fast", "cross_class_fast", "traditional")


@dataclass(frozen=True)
class InferenceOptions:
    """Everything a prediction depends on besides the weights and the image.

    What is kept: ``score_threshold`` (strictly above; 0 keeps all), ``top_k`` per image, ``classes`` (the names
    of the classes to keep; None: all), and the NMS (``nms``,
    default the config's Fast NMS per class) over candidates scoring above ``candidate_threshold`` (default the
    config's, the authors' 0.05). How it runs: ``backend`` (pytorch runs checkpoints; onnxruntime and openvino run
    files written by ``yolact export``, on the CPU; "auto", the default, the fastest exact one here, a checkpoint
    exported once into the export cache, or with ``cache=False`` into a folder deleted after), ``device``,
    ``precision``, ``optimize`` (BatchNorm folded and
    channels-last: the same detections up to float rounding), ``compile`` (torch.compile), ``cuda_graph`` (None: on
    for PyTorch networks on CUDA that can be captured) and ``threads`` (exported runtimes).

    The combinations that cannot work are refused here, as one line naming the option, before anything is loaded.
    """

    score_threshold: float = 0.15
    top_k: int = 100
    classes: tuple[str, ...] | None = None
    nms: str | None = None
    candidate_threshold: float | None = None
    backend: str = "auto"
    cache: bool = True
    device: str = "auto"
    precision: str = "fp32"
    optimize: bool = True
    compile: bool = False
    cuda_graph: bool | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"--score-threshold {self.score_threshold}: give a score between 0 and 1")
        if self.top_k < 1:
            raise ValueError(f"--top-k {self.top_k}: give a whole number at least 1")
        if self.classes is not None and not self.classes:
            raise ValueError("--classes: give at least one class name")
        if self.nms is not None and self.nms not in NMS_KINDS:
            raise ValueError(f"--nms {self.nms!r}: choose one of {', '.join(NMS_KINDS)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"--backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.precision not in INFERENCE_PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: choose one of {', '.join(INFERENCE_PRECISIONS)}")
        if self.backend in ("pytorch", "auto"):
            return
        if str(self.device) not in ("auto", "cpu"):
            raise ValueError(f"--backend {self.backend} runs on the CPU; leave --device out")
        if self.compile or self.cuda_graph is not None:
            flag = "--compile" if self.compile else "--no-cuda-graph"
            raise ValueError(f"{flag} applies to the pytorch backend; {self.backend} runs the model its own way")
        if self.backend == "onnxruntime" and self.precision != "fp32":
            raise ValueError("--backend onnxruntime runs the exported precision; leave --precision out")
        if self.backend == "openvino" and self.precision == "fp16":
            raise ValueError("--backend openvino runs on the CPU: use --precision bf16 (or fp32)")

    def apply(self, config: YolactConfig) -> YolactConfig:
        """``config`` with this NMS and candidate threshold (the config's own where these are None)."""
        changes = {k: v for k, v in (("nms", self.nms), ("conf_threshold", self.candidate_threshold))
                   if v is not None}
        if not changes:
            return config
        return dataclasses.replace(config, postprocess=dataclasses.replace(config.postprocess, **changes))
