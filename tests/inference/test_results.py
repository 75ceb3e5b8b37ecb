"""Prediction records: the RLE encoding gives pycocotools' own strings, however masks sit in the image."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from yolact.inference.results import encode_masks, mask_bounds


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


def test_mask_bounds_are_the_tightest_boxes() -> None:
    masks = np.zeros((3, 20, 30), bool)
    masks[0, 4:9, 7:12] = True
    masks[1, 19, 29] = True
    assert mask_bounds(masks).tolist() == [[7, 4, 12, 9], [29, 19, 30, 20], [0, 0, 0, 0]]


@pytest.mark.parametrize("seed", range(3))
def test_encode_masks_reads_only_inside_the_given_bounds(seed: int) -> None:
    """Bounds that hold the masks, tight, loose or beyond the image, give pycocotools' strings; whatever lies
    outside them is not read."""
    rng = np.random.default_rng(seed)
    height, width = 29, 41
    masks = np.zeros((6, height, width), bool)
    for mask in masks[:4]:
        x, y = rng.integers(0, width - 5), rng.integers(0, height - 5)
        mask[y : y + rng.integers(1, 25), x : x + rng.integers(1, 35)] = True
        mask &= rng.random((height, width)) > 0.3
    masks[4, :, 3:9] = True  # whole columns: runs continue from one column into the next
    tight = mask_bounds(masks)
    loose = tight + np.array([-3, -2, 4, 5])
    loose[5] = [-5, -5, width + 5, height + 5]  # the empty mask, bounds past every edge
    expected = reference(masks)
    assert [r["counts"] for r in encode_masks(masks, tight)] == expected
    assert [r["counts"] for r in encode_masks(masks, loose)] == expected
    spilled = masks.copy()
    spilled[:, 0, 0] = ~spilled[:, 0, 0]  # outside the tight bounds of masks 0-3: not read
    outside = [i for i in range(4) if tight[i][0] > 0 or tight[i][1] > 0]
    got = encode_masks(spilled, tight)
    assert all(got[i]["counts"] == expected[i] for i in outside) and outside
