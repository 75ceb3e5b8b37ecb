"""Predict on a video file, a folder of frames or a camera: an annotated video at the source's fps and size,
optional per-frame JSON, and decoding, inference and encoding overlapped in threads.

Three stages joined by bounded queues: a reader thread decodes frames into batches of ``batch_size``, the caller's
thread runs the network on each batch (PyTorch releases the GIL in its kernels, so decoding and encoding proceed
meanwhile), and a writer thread encodes the overlays (and on a GPU draws them too). The bounded queues keep memory
flat and let the slowest stage set the pace.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from yolact.data.images import list_images, read_image
from yolact.errors import YolactError
from yolact.inference.drawing import draw_instances
from yolact.inference.forms import ImageForms
from yolact.inference.predictor import Predictor
from yolact.inference.results import Prediction
from yolact.outputs import JsonListWriter, OutputError, WorkInterrupted, make_dir

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
_DONE = object()


def is_video_source(source: str | Path) -> bool:
    """True for a camera index ("0") or a file with a video suffix."""
    text = str(source)
    return text.isdigit() or Path(text).suffix.lower() in VIDEO_SUFFIXES


@dataclass
class VideoSummary:
    frames: int
    detections: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class FrameSource:
    """Frames of a video file, a camera or a folder of images, with the fps and size to write them back at."""

    def __init__(self, source: str | Path, folder_fps: float = 30.0) -> None:
        text = str(source)
        self.name = text
        self._paths: list[Path] | None = None
        self._capture: cv2.VideoCapture | None = None
        if text.isdigit():
            with quiet_opencv():  # OpenCV logs its own warnings for a missing camera; the error below says it
                self._capture = cv2.VideoCapture(int(text))
            if not self._capture.isOpened():
                raise YolactError(f"camera {text} cannot be opened: no such camera or it is in use; 0 is the first "
                                  "camera (on Linux, ls /dev/video* lists them)")
            self.name = f"camera {text}"
        elif Path(text).is_dir():
            self._paths = list_images(Path(text))
            if not self._paths:
                raise YolactError(f"{text}: no images in this folder to read as frames")
        elif Path(text).is_file():
            with quiet_opencv():
                self._capture = cv2.VideoCapture(text)
            if not self._capture.isOpened():
                raise YolactError(f"{text}: OpenCV cannot decode this video; convert it to .mp4 (H.264) or .avi")
        else:
            raise YolactError(f"{text}: no such video file, folder or camera index")
        if self._capture is not None:
            fps = self._capture.get(cv2.CAP_PROP_FPS)
            self.fps = fps if fps and fps > 0 and np.isfinite(fps) else folder_fps
            count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
            self.length: int | None = count if count > 0 and not text.isdigit() else None
        else:
            self.fps = folder_fps
            self.length = len(self._paths or [])

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._paths is not None:
            for path in self._paths:
                yield read_image(path)
            return
        assert self._capture is not None
        try:
            while True:
                ok, frame = self._capture.read()
                if not ok:
                    return
                yield frame
        finally:
            self._capture.release()


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's log silenced, for calls whose failure we report ourselves in one line."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def display_available() -> str | None:
    """None when ``cv2.imshow`` can open a window here, else why not (one line)."""
    gui = [line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:")]
    if gui and "NONE" in gui[0].upper():
        return "this OpenCV has no GUI support (opencv-python-headless); pip install opencv-python for --show"
    if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display here (DISPLAY is not set); write the video with --output instead"
    return None


def frame_stem(index: int) -> str:
    """The per-frame file name (without suffix) of frame ``index`` (from 1)."""
    return f"frame_{index:06d}"


def predict_video(
    predictor: Predictor,
    source: str | Path | FrameSource,
    output: Path | None = None,
    json_path: Path | None = None,
    batch_size: int = 1,
    show: bool = False,
    progress: bool = True,
    queue_size: int = 4,
    draw_in_writer: bool | None = None,
    streams: int | None = None,
    forms: ImageForms | None = None,
    segmentation: str = "rle",
) -> VideoSummary:
    """Segment every frame of ``source`` (a path, a camera index, or a :class:`FrameSource` already opened);
    write the annotated video to ``output`` (same fps and size; .mp4 or
    .avi) and, with ``json_path``, one JSON list of per-frame COCO records (``image_id`` = frame index from 1).
    ``draw_in_writer`` picks the thread that draws overlays and encodes JSON records (default: the writer thread
    on a GPU, the caller's on the CPU; the outputs are the same). ``streams`` batches run at once, each in its own
    thread with an equal share of torch's CPU threads (default: 2 on a CPU with at least 2 threads, else 1).
    ``forms`` writes each frame's per-image files as ``frame_000001.txt`` (.png), ... and ``segmentation`` is the
    JSON's ("rle" or "polygon")."""
    if forms is not None and forms.labelme is not None:
        raise YolactError("--save-labelme applies to images: a labelme file points at its image file; save the "
                          "frames as images first")
    if batch_size < 1:
        raise YolactError("--batch must be at least 1")
    # Streams share the predictor: an eager PyTorch network can run in several threads at once; an exported one
    # (one OpenVINO infer request, ONNX Runtime's own thread pool) or a compiled one runs one batch at a time.
    concurrent = predictor.model is not None and not predictor.options.compile
    if streams is None:
        streams = 2 if predictor.device.type == "cpu" and concurrent and torch.get_num_threads() >= 2 else 1
    if streams < 1:
        raise YolactError("streams must be at least 1")
    if streams > 1 and not concurrent:
        raise YolactError("streams > 1 needs an eager PyTorch network; exported (onnxruntime, openvino) and "
                          "compiled networks run one batch at a time")
    if show and (why := display_available()):
        raise YolactError(f"--show: {why}")
    frames = source if isinstance(source, FrameSource) else FrameSource(source)
    batches: queue.Queue = queue.Queue(maxsize=queue_size)
    predicted: queue.Queue = queue.Queue(maxsize=queue_size * batch_size)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            batch: list[np.ndarray] = []
            for frame in frames:
                batch.append(frame)
                if len(batch) == batch_size:
                    batches.put(batch)
                    batch = []
            if batch:
                batches.put(batch)
        except BaseException as error:  # reported by the caller's thread
            errors.append(error)
        finally:
            batches.put(_DONE)

    results = JsonListWriter(json_path, unit="frame") if json_path is not None else None
    writer_state: dict[str, cv2.VideoWriter | None] = {"writer": None}
    # Where the overlays are drawn: on a GPU in the writer thread, beside the network; on the CPU in the caller's
    # thread, after each batch. There the network's kernels use every core, and a thread drawing beside them
    # stalls them (a preempted kernel thread holds up the rest, which spin-wait). benchmarks/video_fps.py on 2
    # cores, yolact_resnet18 at 100 detections, one stream: 13.5 % below the in-memory throughput drawing in turn,
    # 20.1 % alongside (--draw-in-writer).
    draw_here = predictor.device.type == "cpu" if draw_in_writer is None else not draw_in_writer

    def annotate(index: int, frame: np.ndarray, prediction: Prediction) -> np.ndarray | None:
        if forms is not None:
            forms.write(prediction, frame_stem(index))
        if results is not None:
            results.extend(prediction.to_coco(index, segmentation, forms.tolerance if forms is not None else 0.0))
        if output is None and not show:
            return None  # nothing shows the overlay: do not draw it
        return draw_instances(frame, prediction.boxes_xyxy, prediction.scores, prediction.class_ids,
                              predictor.class_names, prediction.masks, mask_bounds_xyxy=prediction.mask_bounds_xyxy)

    def write() -> None:
        try:
            while (item := predicted.get()) is not _DONE:
                overlay = item if draw_here else annotate(*item)
                if overlay is None:
                    continue
                if output is not None:
                    if writer_state["writer"] is None:
                        writer_state["writer"] = _open_writer(output, frames.fps, overlay.shape[1], overlay.shape[0])
                    writer_state["writer"].write(overlay)
                if show:
                    cv2.imshow(frames.name, overlay)
                    cv2.waitKey(1)
        except BaseException as error:
            errors.append(error)
            while predicted.get() is not _DONE:  # keep the producer from blocking
                pass

    reader = threading.Thread(target=read, name="yolact-video-reader", daemon=True)
    writer = threading.Thread(target=write, name="yolact-video-writer", daemon=True)
    reader.start()
    writer.start()
    count = detections = 0
    bar = tqdm(total=frames.length, desc=f"predict {Path(frames.name).name}", unit="frame", disable=not progress)
    started = time.perf_counter()
    predictions = _predict_in_streams(predictor, batches, streams)
    try:
        for batch, batch_predictions in predictions:
            for frame, prediction in zip(batch, batch_predictions, strict=True):
                count += 1
                detections += len(prediction)
                item = annotate(count, frame, prediction) if draw_here else (count, frame, prediction)
                if item is not None:  # None: JSON only, nothing for the writer
                    predicted.put(item)
            bar.update(len(batch))
            bar.set_postfix(fps=f"{count / (time.perf_counter() - started):.1f}", refresh=False)
            if errors:
                break
    except KeyboardInterrupt:
        saved = [f"{count} frame(s) in {output}"] if output is not None else []
        if results is not None:
            saved.append(f"detections of {results.saved_description()} in {json_path}")
        raise WorkInterrupted(f"after {count} frame(s)" + (f"; saved: {', '.join(saved)}" if saved else "")
                              ) from None
    finally:
        predictions.close()
        predicted.put(_DONE)
        writer.join()
        bar.close()
        if writer_state["writer"] is not None:
            writer_state["writer"].release()
        if show:
            cv2.destroyAllWindows()
        if results is not None:
            results.close()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    if count == 0:
        raise YolactError(f"{frames.name}: no frames could be read")
    return VideoSummary(count, detections, seconds)


def _predict_in_streams(predictor: Predictor, batches: queue.Queue, streams: int
                        ) -> Iterator[tuple[list[np.ndarray], list[Prediction]]]:
    """(batch, predictions) for every batch from ``batches`` until _DONE, in order, ``streams`` batches at a time.

    Several streams, each with a share of the CPU threads, instead of one stream using all of them: a network
    whose kernels span every core waits at each kernel's end for its slowest thread, and any other thread
    (decoding, drawing, encoding) makes one of them slow; streams of one thread each only lose the time taken.
    benchmarks/video_fps.py on 2 cores, yolact_resnet18 at 100 detections: 6.1 % below the in-memory throughput
    with two streams, 13.5 % with one (--streams 1).
    """
    if streams == 1:
        while (batch := batches.get()) is not _DONE:
            yield batch, predictor.predict_arrays(batch)
        return
    total = torch.get_num_threads()
    pending: deque[tuple[list[np.ndarray], Future]] = deque()
    try:
        # torch.set_num_threads in a worker sets that thread's OpenMP threads, but MKL's count for the process:
        # restored below.
        with ThreadPoolExecutor(streams, thread_name_prefix="yolact-video-stream", initializer=torch.set_num_threads,
                                initargs=(max(1, total // streams),)) as pool:
            try:
                while (batch := batches.get()) is not _DONE:
                    pending.append((batch, pool.submit(predictor.predict_arrays, batch)))
                    if len(pending) == streams:
                        batch, future = pending.popleft()
                        yield batch, future.result()
                while pending:
                    batch, future = pending.popleft()
                    yield batch, future.result()
            finally:  # stopped early (an error): batches not yet started are dropped before the pool drains
                for _, future in pending:
                    future.cancel()
    finally:
        torch.set_num_threads(total)


def _open_writer(path: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    make_dir(path.parent)
    codec = "XVID" if path.suffix.lower() == ".avi" else "mp4v"
    with quiet_opencv():
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    if not writer.isOpened():
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise OutputError(f"{path}: the folder {path.parent} is not writable; choose a folder you can write to")
        if path.suffix.lower() in (".mp4", ".avi"):
            raise OutputError(f"{path}: OpenCV cannot create this video file; check the path and the free space")
        raise YolactError(f"{path}: OpenCV cannot write this video; use a .mp4 or .avi file name")
    return writer
