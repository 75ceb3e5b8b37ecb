"""Dynamic batching: one inference thread owns the network; requests queue and are run together, up to
``max_batch`` images or ``max_wait`` seconds after the first, as Triton's dynamic batcher does.

Each image is resized to the network's square input on its own, and post-processing runs per image with that
request's own score threshold, top-k and classes, so a request's detections do not depend on its batch-mates
(up to the float rounding of a batched convolution)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from yolact.inference.predictor import Predictor
from yolact.inference.results import Prediction
from yolact.modeling import YolactOutput

# Distinct (score threshold, top-k, classes) kept ready at once; each is a Postprocessor, cheap to make again.
_CACHED_SELECTIONS = 64


@dataclass(frozen=True)
class Selection:
    """What a request keeps: the per-request part of :class:`InferenceOptions`."""

    score_threshold: float
    top_k: int
    classes: tuple[str, ...] | None = None


@dataclass
class BatchStats:
    """Counters for ``/v1/info``: network calls, images run, requests dropped because their client left before
    their batch ran, and the largest batch so far."""

    batches: int = 0
    images: int = 0
    cancelled: int = 0
    largest_batch: int = 0
    queued: int = 0


@dataclass
class _Request:
    image: np.ndarray
    predictor: Predictor
    future: concurrent.futures.Future[Prediction]


def image_output(output: YolactOutput, index: int) -> YolactOutput:
    """Image ``index`` of a batched network output, as a batch of one."""
    return YolactOutput(
        output.loc[index : index + 1], output.class_logits[index : index + 1], output.mask_coeffs[index : index + 1],
        output.anchors_cxcywh, output.prototypes[index : index + 1],
        None if output.semantic_logits is None else output.semantic_logits[index : index + 1],
    )


class DynamicBatcher:
    """Owns ``predictor``'s network on one thread. :meth:`submit` queues an image and returns a future of its
    :class:`Prediction`; cancelling the future before its batch starts drops the request (a client that left)."""

    def __init__(self, predictor: Predictor, max_batch: int = 8, max_wait_s: float = 0.01) -> None:
        self.predictor = predictor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._selections: OrderedDict[Selection, Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="yolact-inference", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Run what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def predictor_for(self, selection: Selection) -> Predictor:
        """A predictor on the shared network keeping what ``selection`` says (ValueError for an unknown class)."""
        with self._lock:
            predictor = self._selections.get(selection)
            if predictor is None:
                options = dataclasses.replace(self.predictor.options, **dataclasses.asdict(selection))
                predictor = Predictor(self.predictor.network, options)
                self._selections[selection] = predictor
                if len(self._selections) > _CACHED_SELECTIONS:
                    self._selections.popitem(last=False)
            else:
                self._selections.move_to_end(selection)
            return predictor

    def submit(self, image: np.ndarray, selection: Selection) -> concurrent.futures.Future[Prediction]:
        future: concurrent.futures.Future[Prediction] = concurrent.futures.Future()
        self._queue.put(_Request(image, self.predictor_for(selection), future))
        self.stats.queued = self._queue.qsize()
        return future

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    request = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if request is None:
                    stopping = True
                    break
                batch.append(request)
            self.stats.queued = self._queue.qsize()
            live = [request for request in batch if request.future.set_running_or_notify_cancel()]
            self.stats.cancelled += len(batch) - len(live)
            if live:
                self._run(live)

    def _run(self, batch: list[_Request]) -> None:
        try:
            with torch.inference_mode():
                images = [request.image for request in batch]
                output = self.predictor.run_network(self.predictor.prepare(images))
        except Exception as exc:  # the server answers 500 for these requests and keeps running
            for request in batch:
                request.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.images += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for index, request in enumerate(batch):
            try:
                prediction = request.predictor.postprocess(image_output(output, index), [request.image])[0]
            except Exception as exc:
                request.future.set_exception(exc)
            else:
                request.future.set_result(prediction)
