"""What a server is: the model to serve (:class:`ServeJob`) or the results to browse (:class:`ViewJob`), and how
requests are taken (:class:`ServeOptions`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from yolact.config import YolactConfig
from yolact.inference.options import InferenceOptions

# Segmentation forms a request may ask for ("none": boxes only, no mask work at encoding).
REQUEST_SEGMENTATIONS = ("rle", "polygon", "none")
RESPONSE_FORMATS = ("yolact", "coco")


@dataclass(frozen=True)
class ServeOptions:
    """How the server takes requests: where it listens (``host``, default loopback only), how the inference thread
    batches (``max_batch`` images per network call, waiting at most ``max_wait_ms`` after the first for more;
    ``max_batch`` 1 runs one request at a time), what it refuses (``max_pixels`` decoded pixels,
    ``max_upload_bytes`` per body) and ``workers``: threads decoding uploads and encoding responses, off the
    inference thread."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 8
    max_wait_ms: float = 10.0
    max_pixels: int = 40_000_000
    max_upload_bytes: int = 50 * 1024 * 1024
    workers: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port {self.port}: give a port from 1 to 65535 (0: any free port)")
        if self.max_batch < 1:
            raise ValueError(f"--max-batch {self.max_batch}: give a whole number at least 1")
        if self.max_wait_ms < 0:
            raise ValueError(f"--max-wait-ms {self.max_wait_ms}: give 0 or more milliseconds")
        if self.max_pixels < 1:
            raise ValueError(f"--max-pixels {self.max_pixels}: give a whole number at least 1")
        if self.max_upload_bytes < 1:
            raise ValueError(f"--max-upload-mb: give a size above 0 (got {self.max_upload_bytes} bytes)")
        if self.workers < 1:
            raise ValueError(f"--workers {self.workers}: give a whole number at least 1")


@dataclass(frozen=True)
class ServeJob:
    """``yolact serve``: the model (``weights``, ``config``, ``options``: a request's score threshold, top-k and
    classes default to these) behind HTTP as ``serve`` says."""

    weights: Path
    config: YolactConfig | str | None = None
    options: InferenceOptions = field(default_factory=InferenceOptions)
    serve: ServeOptions = field(default_factory=ServeOptions)


@dataclass(frozen=True)
class ViewJob:
    """``yolact view``: COCO results (``results``, and ``compare`` beside them) on the images of ``images``,
    with the ground truth of ``annotations`` when given, served on ``serve.host``:``serve.port``."""

    results: Path
    images: Path
    annotations: Path | None = None
    compare: Path | None = None
    serve: ServeOptions = field(default_factory=lambda: ServeOptions(port=8080))
