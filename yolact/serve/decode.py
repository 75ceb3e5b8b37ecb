"""Uploaded bytes -> a BGR uint8 image, or a :class:`BadRequest` naming what is wrong. The pixels come from the
same decoder as ``yolact predict`` (OpenCV's), so a request gets that command's detections."""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image

# Pillow's names of the formats served (JPEG, PNG, BMP, TIFF, WebP), as ``yolact predict`` reads.
SERVED_FORMATS = {"JPEG", "PNG", "BMP", "TIFF", "WEBP"}


class BadRequest(Exception):
    """A request the server refuses: ``status`` (4xx) and a one-line ``message`` with the fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Image file bytes -> BGR uint8 [H, W, 3]. Refused: an empty body, bytes that are no image of a served format
    (415), an image over ``max_pixels`` (413; checked from the header, before any pixel is decoded) and a
    truncated or corrupt file (400; OpenCV would fill a cut JPEG with grey, so Pillow reads it fully first)."""
    if not data:
        raise BadRequest(400, "the request has no image: send the file as the body or as a multipart upload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            header = Image.open(io.BytesIO(data))
    except Exception:  # Pillow raises many kinds for bytes it cannot identify
        raise BadRequest(415, "the body is not an image: send a JPEG, PNG, BMP, TIFF or WebP file") from None
    with header:
        if header.format not in SERVED_FORMATS:
            raise BadRequest(415, f"{header.format} images are not served: send a JPEG, PNG, BMP, TIFF or WebP file")
        width, height = header.size
        if width * height > max_pixels:
            raise BadRequest(413, f"the image is {width}x{height} ({width * height:,} pixels), over this server's "
                                  f"limit of {max_pixels:,} pixels: send a smaller image")
        if width == 0 or height == 0:
            raise BadRequest(400, "the image has no pixels: send a real image")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header.load()
        except Exception:
            raise BadRequest(400, f"the {header.format} file is truncated or corrupt: send the whole file") from None
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise BadRequest(400, f"the {header.format} file cannot be decoded (corrupt?): send another file")
    return image
