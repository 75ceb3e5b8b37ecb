"""The dynamic batcher: batched requests keep their own selections and get what they would get alone."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from yolact.inference.options import InferenceOptions
from yolact.inference.predictor import load
from yolact.serve.batcher import DynamicBatcher, Selection


def images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 255, shape, dtype=np.uint8) for shape in ((60, 90, 3), (128, 100, 3), (40, 40, 3))]


def test_requests_batched_together_keep_their_own_selections(small_checkpoint: Path) -> None:
    predictor = load(small_checkpoint, options=InferenceOptions(score_threshold=0.0, device="cpu"))
    selections = [Selection(0.0, 5), Selection(0.3, 100, ("square",)), Selection(0.0, 2, ("circle", "triangle"))]
    batcher = DynamicBatcher(predictor, max_batch=8, max_wait_s=1.0)
    batcher.start()
    try:
        futures = [batcher.submit(image, s) for image, s in zip(images(), selections, strict=True)]
        batched = [future.result(timeout=120) for future in futures]
    finally:
        batcher.stop()
    assert batcher.stats.batches == 1 and batcher.stats.largest_batch == 3
    for image, selection, got in zip(images(), selections, batched, strict=True):
        alone = load(small_checkpoint, options=InferenceOptions(device="cpu", score_threshold=selection.score_threshold,
                                                                top_k=selection.top_k, classes=selection.classes))
        expected = alone.predict_arrays([image])[0]
        assert got.image_size == image.shape[:2] and len(got) == len(expected) > 0
        np.testing.assert_array_equal(got.class_ids, expected.class_ids)
        np.testing.assert_allclose(got.scores, expected.scores, atol=1e-5)
        assert np.abs(got.boxes_xyxy - expected.boxes_xyxy).max() <= 1
        if selection.classes:
            assert set(got.class_names) <= set(selection.classes)
        assert (got.scores > selection.score_threshold).all() and len(got) <= selection.top_k


def test_a_cancelled_request_is_skipped_and_an_unknown_class_is_refused_before_queueing(small_checkpoint: Path
                                                                                       ) -> None:
    predictor = load(small_checkpoint, options=InferenceOptions(device="cpu"))
    batcher = DynamicBatcher(predictor, max_batch=4, max_wait_s=0.5)
    with pytest.raises(ValueError, match="unicorn"):
        batcher.predictor_for(Selection(0.1, 10, ("unicorn",)))
    batcher.start()
    try:
        dropped = batcher.submit(images()[0], Selection(0.1, 10))
        assert dropped.cancel()
        kept = batcher.submit(images()[1], Selection(0.1, 10))
        kept.result(timeout=120)
        time.sleep(0.05)
    finally:
        batcher.stop()
    assert batcher.stats.cancelled == 1 and batcher.stats.images == 1
