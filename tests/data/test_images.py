"""Reading image files and normalising user arrays to BGR uint8 [H, W, 3]."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from yolact.data.images import as_bgr_uint8, list_images, read_image
from yolact.errors import ImageReadError, YolactError

H, W = 24, 32


def _bgr() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def test_image_read_error_is_a_yolact_error() -> None:
    assert issubclass(ImageReadError, YolactError)


def test_read_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "missing.jpg"
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_read_folder_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    with pytest.raises(ImageReadError, match=r"folder\.jpg"):
        read_image(folder)


def test_read_corrupt_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, size=4096, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_read_empty_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_read_truncated_png_is_an_error(tmp_path: Path) -> None:
    ok, encoded = cv2.imencode(".png", _bgr())
    assert ok
    path = tmp_path / "truncated.png"
    path.write_bytes(encoded.tobytes()[:40])
    with pytest.raises(ImageReadError, match=r"truncated\.png"):
        read_image(path)


def test_read_color_png_round_trips(tmp_path: Path) -> None:
    image = _bgr()
    path = tmp_path / "color.png"
    assert cv2.imwrite(str(path), image)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, image)


def test_read_accepts_str_and_non_ascii_path(tmp_path: Path) -> None:
    image = _bgr()
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    path = tmp_path / "café_图像.png"
    path.write_bytes(encoded.tobytes())
    np.testing.assert_array_equal(read_image(str(path)), image)


def test_read_grayscale_png_as_three_channels(tmp_path: Path) -> None:
    gray = _bgr()[:, :, 0]
    path = tmp_path / "gray.png"
    assert cv2.imwrite(str(path), gray)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).ndim == 2  # the file really is single-channel
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], gray)


def test_read_rgba_png_drops_alpha(tmp_path: Path) -> None:
    bgr = _bgr()
    alpha = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))  # transparent to opaque
    path = tmp_path / "rgba.png"
    assert cv2.imwrite(str(path), np.dstack([bgr, alpha]))
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape == (H, W, 4)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, bgr)


def test_as_bgr_keeps_bgr_uint8() -> None:
    image = _bgr()
    out = as_bgr_uint8(image)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("shape", [(H, W), (H, W, 1)])
def test_as_bgr_replicates_grayscale(shape: tuple[int, ...]) -> None:
    gray = _bgr()[:, :, 1].reshape(shape)
    out = as_bgr_uint8(gray)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], gray.reshape(H, W))


def test_as_bgr_drops_alpha() -> None:
    bgr = _bgr()
    alpha = np.full((H, W, 1), 7, dtype=np.uint8)
    out = as_bgr_uint8(np.concatenate([bgr, alpha], axis=2))
    assert out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, bgr)


def test_as_bgr_float_is_taken_as_0_255_and_clipped() -> None:
    image = np.array([[[-5.0, 0.0, 12.0], [254.0, 255.0, 300.0]]], dtype=np.float32)
    out = as_bgr_uint8(image)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.array([[[0, 0, 12], [254, 255, 255]]], dtype=np.uint8))


def test_as_bgr_makes_views_contiguous_and_does_not_touch_the_input() -> None:
    image = _bgr()
    before = image.copy()
    view = image[:, ::-1]
    out = as_bgr_uint8(view)
    assert out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, before[:, ::-1])
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize(
    "shape",
    [(W,), (H, W, 2), (H, W, 5), (1, H, W, 3), (0, W, 3), (H, 0, 3)],
)
def test_as_bgr_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ImageReadError) as info:
        as_bgr_uint8(np.zeros(shape, dtype=np.uint8), name="frame 3")
    message = str(info.value)
    assert "frame 3" in message and str(shape) in message


def test_as_bgr_rejects_empty_grayscale() -> None:
    with pytest.raises(ImageReadError, match="frame 4"):
        as_bgr_uint8(np.zeros((0, 0), dtype=np.uint8), name="frame 4")


def test_as_bgr_rejects_non_arrays() -> None:
    with pytest.raises(ImageReadError, match="my image"):
        as_bgr_uint8([[0, 1], [2, 3]], name="my image")  # type: ignore[arg-type]


def test_list_images_sorted_and_filtered(tmp_path: Path) -> None:
    names = ["b.png", "a.jpg", "c.JPG", "d.jpeg", "e.bmp", "f.tif", "g.tiff", "h.webp", "000010.png", "000002.png"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    for name in ["notes.txt", "labels.json", "README", "archive.jpg.zip"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()  # a folder, even with an image suffix
    (tmp_path / "sub.jpg" / "inner.jpg").write_bytes(b"x")  # not recursive

    found = list_images(tmp_path)
    assert all(isinstance(p, Path) for p in found)
    assert [p.name for p in found] == sorted(names)
    assert all(p.parent == tmp_path for p in found)


def test_list_images_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    assert list_images(tmp_path) == []
