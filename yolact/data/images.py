"""Reading images and normalising user-supplied arrays to the BGR uint8 layout the model expects."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from yolact.errors import ImageReadError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as BGR uint8 [H, W, 3] (grayscale is replicated, alpha dropped, as cv2.IMREAD_COLOR)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file; check the path")
    # np.fromfile + imdecode instead of imread: works for non-ASCII paths on every platform.
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read it ({exc.strerror or exc}); check its permissions") from None
    return decode_image(data, path)


def decode_image(data: bytes | np.ndarray, name: str | Path = "image") -> np.ndarray:
    """An encoded image file's bytes as BGR uint8 [H, W, 3], decoded as :func:`read_image` decodes files."""
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data
    if buffer.size == 0:
        raise ImageReadError(f"{name}: the file is empty; replace or remove it")
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise ImageReadError(f"{name}: cannot decode this file as an image (corrupt?); replace or remove it")
    return image


def as_bgr_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """A user-supplied array as BGR uint8 [H, W, 3]: [H, W] and [H, W, 1] grayscale are replicated, [H, W, 4] BGRA
    loses its alpha; float arrays are taken as 0-255 values."""
    if not isinstance(image, np.ndarray):
        raise ImageReadError(f"{name}: expected a numpy array or an image path, got {type(image).__name__}")
    shape = image.shape
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) == 0:
        raise ImageReadError(f"{name}: expected an image array [H, W], [H, W, 3] or [H, W, 4], got shape {shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
