"""Masks as polygons: every part's outer ring and every hole, exact where polygons can be.

Coordinates are COCO's continuous pixel coordinates: pixel (x, y) covers [x, x + 1) x [y, y + 1). OpenCV's
contours run through the centres of a mask's border pixels, half a pixel inside the true edge: rasterised again
(pycocotools, as COCO evaluates polygons) they lose a ring of pixels, a large share of a small object. Here each
mask is traced at twice its resolution, where the contour passes a quarter pixel inside the edge, between the
mask's border pixel centres and their outside neighbours: rasterised by "pixel centre inside the polygon" it gives
back exactly the mask's pixels (tests/inference/test_polygons.py), holes included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True)
class MaskPolygon:
    """One connected part of a mask: its outer ring and the rings of its holes, each [K, 2] float (x, y)."""

    exterior: np.ndarray
    holes: list[np.ndarray] = field(default_factory=list)


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.0, offset_xy: tuple[int, int] = (0, 0)
                     ) -> list[MaskPolygon]:
    """A boolean mask [H, W] -> one :class:`MaskPolygon` per connected part (8-connected, as OpenCV traces),
    largest first. ``tolerance`` > 0 simplifies each ring (Douglas-Peucker, at most that far from the exact one,
    in pixels); rings that collapse below 3 points are dropped. ``offset_xy`` is added to every point (the mask
    is a window of a larger image)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return []
    # Traced at 2x, padded by one pixel so that parts touching the border get a closed contour of their own.
    doubled = np.zeros((2 * mask.shape[0] + 2, 2 * mask.shape[1] + 2), dtype=np.uint8)
    doubled[1:-1, 1:-1] = np.kron(mask, np.ones((2, 2), dtype=np.uint8))
    contours, hierarchy = cv2.findContours(doubled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    # Doubled pixel i (after the pad) has its centre at (i - 1 + 0.5) / 2 in the mask's own coordinates.
    shift = np.array(offset_xy, dtype=np.float64) - 0.25

    def ring(contour: np.ndarray) -> np.ndarray | None:
        if tolerance > 0:
            contour = cv2.approxPolyDP(contour, 2 * tolerance, closed=True)
        points = contour[:, 0, :].astype(np.float64) / 2 + shift
        return points if len(points) >= 3 else None

    parts: dict[int, MaskPolygon] = {}
    for index, (_, _, _, parent) in enumerate(hierarchy[0]):
        if parent < 0:
            exterior = ring(contours[index])
            if exterior is not None:
                parts[index] = MaskPolygon(exterior)
    for index, (_, _, _, parent) in enumerate(hierarchy[0]):
        if parent >= 0 and parent in parts:
            hole = ring(contours[index])
            if hole is not None:
                parts[parent].holes.append(hole)
    return sorted(parts.values(), key=lambda part: -_ring_area(part.exterior))


def polygons_to_mask(polygons: list[MaskPolygon], height: int, width: int) -> np.ndarray:
    """The pixels of ``polygons`` [H, W] bool, rasterised as COCO rasterises polygons (pycocotools): each part's
    exterior filled, its holes cut out."""
    from pycocotools import mask as mask_utils

    out = np.zeros((height, width), dtype=bool)
    for part in polygons:
        filled = mask_utils.decode(mask_utils.frPyObjects([part.exterior.ravel().tolist()], height, width))
        part_mask = filled[..., 0].astype(bool)
        if part.holes:
            holes = mask_utils.decode(mask_utils.frPyObjects([h.ravel().tolist() for h in part.holes], height, width))
            part_mask &= ~holes.any(axis=2)
        out |= part_mask
    return out


def _ring_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def bridge_rings(rings: list[np.ndarray]) -> np.ndarray:
    """Several rings [K, 2] as one closed path that visits each in turn and comes back along the same zero-width
    bridge (between each ring and the nearest point of the path so far): what a one-polygon-per-instance format
    (YOLO-seg) can hold of a mask in several parts. Filled, the path covers the union of the rings."""
    path = rings[0]
    for ring in rings[1:]:
        distances = ((path[:, None, :] - ring[None, :, :]) ** 2).sum(axis=2)
        i, j = np.unravel_index(int(distances.argmin()), distances.shape)
        detour = np.concatenate((ring[j:], ring[: j + 1]))
        path = np.concatenate((path[: i + 1], detour, path[i:]))
    return path
