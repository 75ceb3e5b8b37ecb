"""Prediction records: the RLE encoding gives pycocotools' own strings, however masks sit in the image."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from yolact.engine.results import encode_masks


def reference(masks: np.ndarray) -> list[str]:
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [rle["counts"].decode("ascii") for rle in rles]


@pytest.mark.parametrize("seed", range(4))
def test_encode_masks_equals_pycocotools(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = 37, 53
    masks = np.zeros((12, height, width), bool)
    for mask in masks[:8]:  # blobs anywhere, some with holes
        x, y = rng.integers(0, width), rng.integers(0, height)
        mask[y : y + rng.integers(1, 20), x : x + rng.integers(1, 30)] = True
        mask &= rng.random((height, width)) > 0.2
    masks[8, :, 0] = True  # touches the left edge, first pixel set
    masks[9, -1, -1] = True  # the very last pixel only
    masks[10] = True  # everything
    # masks[11] stays empty
    got = encode_masks(masks)
    assert [r["counts"] for r in got] == reference(masks)
    assert all(r["size"] == [height, width] for r in got)
    decoded = mask_utils.decode([{"size": r["size"], "counts": r["counts"].encode()} for r in got])
    np.testing.assert_array_equal(decoded.transpose(2, 0, 1).astype(bool), masks)
    assert encode_masks(np.zeros((0, height, width), bool)) == []
