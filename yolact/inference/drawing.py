"""Draw instance-segmentation results (masks, boxes, labels) onto a BGR image with OpenCV."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from yolact.inference.results import mask_bounds

__all__ = ["PALETTE_BGR", "color_for", "draw_instances"]

# Sasha Trubetskoy's "20 simple, distinct colours" minus white, black, grey and the palest tints,
# ordered so that consecutive instances get strongly contrasting hues. Written as RGB hex for
# readability and converted to OpenCV's BGR order below.
_PALETTE_RGB_HEX: tuple[str, ...] = (
    "e6194b",  # red
    "3cb44b",  # green
    "4363d8",  # blue
    "ffe119",  # yellow
    "911eb4",  # purple
    "f58231",  # orange
    "42d4f4",  # cyan
    "f032e6",  # magenta
    "bfef45",  # lime
    "469990",  # teal
    "9a6324",  # brown
    "dcbeff",  # lavender
    "800000",  # maroon
    "aaffc3",  # mint
    "000075",  # navy
    "808000",  # olive
    "fabed4",  # pink
)

PALETTE_BGR: tuple[tuple[int, int, int], ...] = tuple(
    (int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)) for h in _PALETTE_RGB_HEX
)
"""Fixed instance palette in BGR order; instance ``i`` gets ``PALETTE_BGR[i % len(PALETTE_BGR)]``."""

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def color_for(index: int) -> tuple[int, int, int]:
    """Return the BGR palette colour of instance ``index`` (the palette cycles)."""
    return PALETTE_BGR[index % len(PALETTE_BGR)]


def _text_color(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black text on light colours, white text on dark ones (ITU-R BT.601 luma)."""
    b, g, r = bgr
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


def _check_inputs(
    image: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    masks: np.ndarray | None,
    mask_alpha: float,
    mask_bounds: np.ndarray | None = None,
) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image_bgr must be an HxWx3 BGR image, got shape {image.shape}")
    n = boxes.shape[0]
    if boxes.shape != (n, 4):
        raise ValueError(f"boxes_xyxy must have shape [N, 4], got {boxes.shape}")
    if scores.shape != (n,) or class_ids.shape != (n,):
        raise ValueError(f"scores and class_ids must have shape [{n}], got {scores.shape} and {class_ids.shape}")
    if masks is not None and masks.shape != (n, *image.shape[:2]):
        raise ValueError(f"masks must have shape [{n}, {image.shape[0]}, {image.shape[1]}], got {masks.shape}")
    if mask_bounds is not None and mask_bounds.shape != (n, 4):
        raise ValueError(f"mask_bounds_xyxy must have shape [{n}, 4], got {mask_bounds.shape}")
    if not 0.0 <= mask_alpha <= 1.0:
        raise ValueError(f"mask_alpha must be in [0, 1], got {mask_alpha}")


def _blend_masks(out: np.ndarray, masks: np.ndarray, alpha: float, bounds_xyxy: np.ndarray | None) -> None:
    """Blend every mask into ``out`` in place; where masks overlap the lower instance index wins."""
    masks = masks.astype(bool, copy=False)
    if alpha == 0.0 or len(masks) == 0:
        return
    # Which instance owns each pixel: painted from the last instance to the first, each only inside the box that
    # holds its pixels (detections usually cover a small part of the image; a whole-image argmax over 100 masks
    # cost more than the network on a video frame).
    bounds = mask_bounds(masks) if bounds_xyxy is None else np.asarray(bounds_xyxy)
    height, width = out.shape[:2]
    owner = np.full((height, width), -1, dtype=np.int32)
    for index, (x1, y1, x2, y2) in reversed(list(enumerate(bounds.tolist()))):
        window = (slice(max(y1, 0), min(y2, height)), slice(max(x1, 0), min(x2, width)))
        np.copyto(owner[window], index, where=masks[index][window])
    index = np.flatnonzero(owner >= 0)
    if index.size == 0:
        return
    # Gather and scatter the covered pixels by flat index, each pixel one 3-byte item for the scatter: boolean
    # indexing of an HxWx3 image took three times as long as all of the blend's arithmetic.
    palette = np.asarray(PALETTE_BGR, dtype=np.float32) * np.float32(alpha)
    colors = np.take(palette, np.take(owner.reshape(-1), index) % len(PALETTE_BGR), axis=0)
    pixels = np.take(out.reshape(-1, 3), index, axis=0).astype(np.float32)
    pixels *= np.float32(1.0 - alpha)
    pixels += colors
    blended = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    pixel_items = np.dtype((np.void, 3))
    np.put(out.reshape(-1).view(pixel_items), index, blended.reshape(-1).view(pixel_items))


def _draw_label(
    out: np.ndarray,
    text: str,
    box: tuple[int, int, int, int],
    color: tuple[int, int, int],
    font_scale: float,
    thickness: int,
) -> None:
    """Draw a filled tag with ``text`` above the box, or just inside it when there is no room above."""
    h, w = out.shape[:2]
    x1, y1 = box[0], box[1]
    (tw, th), baseline = cv2.getTextSize(text, _FONT, font_scale, thickness)
    pad = max(1, thickness)
    tag_w = tw + 2 * pad
    tag_h = th + baseline + 2 * pad

    top = y1 - tag_h if y1 - tag_h >= 0 else y1  # above the box, else inside its top edge
    top = min(max(top, 0), max(h - tag_h, 0))
    left = min(max(x1, 0), max(w - tag_w, 0))

    cv2.rectangle(out, (left, top), (left + tag_w - 1, top + tag_h - 1), color, thickness=cv2.FILLED)
    cv2.putText(
        out,
        text,
        (left + pad, top + pad + th),
        _FONT,
        font_scale,
        _text_color(color),
        thickness,
        lineType=cv2.LINE_AA,
    )


def draw_instances(
    image_bgr: np.ndarray,
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    class_names: Sequence[str],
    masks: np.ndarray | None,
    *,
    mask_alpha: float = 0.45,
    draw_boxes: bool = True,
    draw_labels: bool = True,
    mask_bounds_xyxy: np.ndarray | None = None,
) -> np.ndarray:
    """Return a new uint8 BGR image with the given instances drawn on a copy of ``image_bgr``.

    Args:
        image_bgr: HxWx3 image in BGR order (converted to uint8 if needed); never modified.
        boxes_xyxy: [N, 4] pixel corners ``x1, y1, x2, y2`` (integer or float).
        scores: [N] confidences, shown with two decimals in the label.
        class_ids: [N] indices into ``class_names`` (an out-of-range id is shown as the number).
        class_names: Names of the classes.
        masks: Optional bool [N, H, W] masks at image size.
        mask_alpha: Opacity of the mask colour (0 leaves the pixels unchanged, 1 paints them solid).
        draw_boxes: Draw each instance's box outline.
        draw_labels: Draw a filled ``"name 0.87"`` tag above each box (inside it at the top edge).
        mask_bounds_xyxy: Optional [N, 4] boxes (ends exclusive) that hold each mask's True pixels, as
            ``Prediction.mask_bounds_xyxy``: masks are then read only inside them (found by scanning when None).

    Instance ``i`` uses ``PALETTE_BGR[i % len(PALETTE_BGR)]`` for its mask, box and tag. Where
    instances overlap, the one with the lower index (usually the higher score) is drawn on top.
    """
    image = np.asarray(image_bgr)
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    scores_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    masks_arr = None if masks is None else np.asarray(masks)
    bounds = None if mask_bounds_xyxy is None else np.asarray(mask_bounds_xyxy, dtype=np.int64)
    _check_inputs(image, boxes, scores_arr, ids, masks_arr, mask_alpha, bounds)

    out = np.array(image, dtype=np.uint8, copy=True)
    out = np.ascontiguousarray(out)
    n = boxes.shape[0]
    if n == 0:
        return out

    if masks_arr is not None:
        _blend_masks(out, masks_arr, mask_alpha, bounds)

    h, w = out.shape[:2]
    thickness = max(1, round((h + w) / 600))
    font_scale = max(0.4, min(h, w) / 800)
    # Guard cv2 against NaN/inf and coordinates far outside the image (int overflow).
    limit = 4 * max(h, w)
    safe = np.clip(np.nan_to_num(boxes, nan=0.0, posinf=limit, neginf=-limit), -limit, limit)
    int_boxes = [tuple(int(v) for v in np.rint(b)) for b in safe]

    # Reverse order so that instance 0 ends up on top, consistent with the mask overlap rule.
    if draw_boxes:
        for i in reversed(range(n)):
            x1, y1, x2, y2 = int_boxes[i]
            cv2.rectangle(out, (x1, y1), (x2, y2), color_for(i), thickness, lineType=cv2.LINE_AA)
    if draw_labels:
        for i in reversed(range(n)):
            cid = int(ids[i])
            name = class_names[cid] if 0 <= cid < len(class_names) else str(cid)
            _draw_label(out, f"{name} {scores_arr[i]:.2f}", int_boxes[i], color_for(i), font_scale, thickness)
    return out
