"""Uploaded bytes -> the pixels `yolact predict` reads from the same file, or a 4xx naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from yolact.data.images import read_image
from yolact.serve.decode import BadRequest, decode_image


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".tiff", ".webp"])
def test_every_served_format_decodes_to_the_pixels_predict_reads(suffix: str, tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    path = tmp_path / f"x{suffix}"
    assert cv2.imwrite(str(path), image)
    np.testing.assert_array_equal(decode_image(path.read_bytes(), 10_000), read_image(path))


def test_grayscale_and_alpha_images_come_back_as_bgr(tmp_path: Path) -> None:
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 7)])
    for name, array in (("g.png", gray), ("a.png", rgba)):
        cv2.imwrite(str(tmp_path / name), array)
        decoded = decode_image((tmp_path / name).read_bytes(), 1000)
        assert decoded.shape == (12, 10, 3)
        np.testing.assert_array_equal(decoded, read_image(tmp_path / name))


def test_pixel_limit_is_read_from_the_header(tmp_path: Path) -> None:
    data = cv2.imencode(".png", np.zeros((100, 100, 3), np.uint8))[1].tobytes()
    assert decode_image(data, 10_000).shape == (100, 100, 3)
    with pytest.raises(BadRequest) as error:
        decode_image(data, 9_999)
    assert error.value.status == 413 and "10,000 pixels" in error.value.message


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_files_are_refused(cut: float) -> None:
    image = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for ext in (".jpg", ".png"):
        data = cv2.imencode(ext, image)[1].tobytes()
        with pytest.raises(BadRequest) as error:
            decode_image(data[: int(len(data) * cut)], 10_000)
        assert error.value.status == 400
