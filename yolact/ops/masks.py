"""Mask operations: assemble prototypes with coefficients, crop by box, paste at image size. Pure tensor functions."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from yolact.ops.boxes import sanitize_coordinates


def assemble_masks(prototypes: Tensor, mask_coeffs: Tensor) -> Tensor:
    """Prototypes [H, W, k] and coefficients [N, k] -> soft masks sigmoid(P·Cᵀ) [N, H, W] (paper, eq. 1)."""
    # P @ Cᵀ in the prototypes' H×W×k layout, as the authors compute it, so results agree to the last bit; then
    # contiguous [N, H, W] (as theirs), which also makes the later resize about 6x faster than on the permuted view.
    return torch.sigmoid(prototypes @ mask_coeffs.t()).permute(2, 0, 1).contiguous()


def crop_masks(masks: Tensor, boxes_xyxy: Tensor, padding: float = 1) -> Tensor:
    """Zero each mask [N, H, W] outside its box [N, 4] (relative xyxy) -> [N, H, W].

    The box is scaled to the mask size, padded by ``padding`` pixels and clamped; a pixel with index i is kept
    when x1 <= i < x2 (float comparison), as the authors' ``crop``.
    """
    num, height, width = masks.shape
    x1, x2 = sanitize_coordinates(boxes_xyxy[:, 0], boxes_xyxy[:, 2], width, padding)
    y1, y2 = sanitize_coordinates(boxes_xyxy[:, 1], boxes_xyxy[:, 3], height, padding)
    cols = torch.arange(width, device=masks.device, dtype=x1.dtype).view(1, 1, width)
    rows = torch.arange(height, device=masks.device, dtype=y1.dtype).view(1, height, 1)
    inside_x = (cols >= x1.view(num, 1, 1)) & (cols < x2.view(num, 1, 1))
    inside_y = (rows >= y1.view(num, 1, 1)) & (rows < y2.view(num, 1, 1))
    return masks * (inside_x & inside_y).to(masks.dtype)


def paste_masks(masks: Tensor, height: int, width: int, threshold: float = 0.5, method: str = "auto",
                bounds_xyxy: Tensor | None = None) -> Tensor:
    """Soft masks [N, h, w] -> boolean masks [N, height, width]: bilinear resize (align_corners=False), then
    strictly above ``threshold``.

    ``method`` "full" resizes every mask over the whole image (``F.interpolate``); "region" computes only the
    output pixels whose bilinear taps reach a mask's non-zero support (the crop rectangle plus one prototype pixel
    of reach), with F.interpolate's own arithmetic, so the masks are the same bit for bit (outside that region the
    resize is exactly 0, never above a threshold >= 0). "auto" takes "region" on CPU when enlarging (the usual
    case: prototypes are a quarter of the network input) and "full" otherwise. ``bounds_xyxy`` passes the
    regions when :func:`paste_bounds` has already computed them.
    """
    if masks.shape[0] == 0:
        return torch.zeros((0, height, width), dtype=torch.bool, device=masks.device)
    if method == "auto":
        enlarging = height >= masks.shape[1] and width >= masks.shape[2]
        method = "region" if masks.device.type == "cpu" and enlarging and threshold >= 0 else "full"
    if method == "full":
        resized = F.interpolate(masks[None], (height, width), mode="bilinear", align_corners=False)[0]
        return resized > threshold
    if method != "region":
        raise ValueError(f"unknown paste method {method!r}; expected 'auto', 'full' or 'region'")
    if threshold < 0:
        raise ValueError(f"the region method needs threshold >= 0, got {threshold}")
    if bounds_xyxy is None:
        bounds_xyxy = paste_bounds(masks, height, width)
    return _paste_in_region(masks, height, width, threshold, bounds_xyxy)


@functools.lru_cache(maxsize=64)
def _bilinear_taps(in_size: int, out_size: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per output index: source indices i0, i1 and weights w0, w1 [out_size] as F.interpolate's CPU kernel forms
    them (align_corners=False): scale = in/out in float32, source = max(scale * (i + 0.5) - 0.5, 0) with one
    rounding (a fused multiply-add, emulated in float64), i0 = floor, i1 = i0 + 1 except at the last index.

    Cached (callers only read them): every image of a stream has the same sizes, and on CUDA each fresh set would
    be four copies from the host. Made as normal tensors even under inference mode, so that a later caller outside
    it may use them in any way."""
    with torch.inference_mode(False):
        scale = torch.tensor(in_size, dtype=torch.float32) / out_size
        centres = torch.arange(out_size, dtype=torch.float32) + 0.5
        source = (scale.double() * centres.double() - 0.5).float().clamp(min=0)
        i0 = source.floor().long().clamp(max=in_size - 1)
        lam = (source - i0).clamp(0, 1)
        i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
        return i0.to(device), i1.to(device), (1 - lam).to(device), lam.to(device)


def _lerp(a: Tensor, b: Tensor, weight_a: Tensor, weight_b: Tensor) -> Tensor:
    # a * wa + b * wb with the product b * wb rounded first, then one fused multiply-add: the kernel's order.
    return torch.addcmul(b * weight_b, a, weight_a)


def paste_bounds(masks: Tensor, height: int, width: int) -> Tensor:
    """Soft masks [N, h, w] -> int64 boxes [N, 4] (x1, y1, x2, y2; ends exclusive) of the output pixels whose
    bilinear taps (``paste_masks``' resize to ``height`` x ``width``) reach each mask's non-zero support, plus one
    pixel on each side (clamped to the image): outside its box a pasted mask is exactly 0, so with any threshold
    >= 0 every True pixel lies inside it. An all-zero mask gets (0, 0, 0, 0).

    Downstream code (COCO RLE, drawing) then reads each mask only inside its box instead of scanning the whole
    image: at 100 detections a 640x480 frame holds 30 MB of masks.
    """
    num, mask_height, mask_width = masks.shape
    if num == 0:
        return torch.zeros((0, 4), dtype=torch.int64, device=masks.device)
    y0, y1, _, _ = _bilinear_taps(mask_height, height, masks.device)
    x0, x1, _, _ = _bilinear_taps(mask_width, width, masks.device)
    support = masks != 0
    rows, cols = support.any(dim=2), support.any(dim=1)
    # First and last non-zero row / column of each mask; output pixels whose taps reach them.
    first_row, last_row = rows.int().argmax(dim=1), mask_height - 1 - rows.flip(1).int().argmax(dim=1)
    first_col, last_col = cols.int().argmax(dim=1), mask_width - 1 - cols.flip(1).int().argmax(dim=1)
    top = torch.searchsorted(y1, first_row, side="left")
    bottom = torch.searchsorted(y0, last_row, side="right")
    left = torch.searchsorted(x1, first_col, side="left")
    right = torch.searchsorted(x0, last_col, side="right")
    empty = ~rows.any(dim=1) | (bottom <= top) | (right <= left)
    # One pixel of margin: another kernel's rounding (CUDA's resize) may place a tap one pixel further.
    bounds = torch.stack(((left - 1).clamp(min=0), (top - 1).clamp(min=0), (right + 1).clamp(max=width),
                          (bottom + 1).clamp(max=height)), dim=1)
    return bounds.masked_fill(empty[:, None], 0)


def _paste_in_region(masks: Tensor, height: int, width: int, threshold: float, bounds_xyxy: Tensor) -> Tensor:
    num, mask_height, mask_width = masks.shape
    y0, y1, wy0, wy1 = _bilinear_taps(mask_height, height, masks.device)
    x0, x1, wx0, wx1 = _bilinear_taps(mask_width, width, masks.device)
    if masks.device.type == "cpu":
        # calloc'd memory, zeroed by the OS page by page when first touched: only the pages under the regions are
        # (torch.zeros would write all of it: 30 MB at 100 detections on a 640x480 image, several ms).
        out = torch.from_numpy(np.zeros((num, height, width), dtype=bool))
    else:
        out = torch.zeros((num, height, width), dtype=torch.bool, device=masks.device)
    for n, (xs, ys, xe, ye) in enumerate(bounds_xyxy.tolist()):
        if ye <= ys or xe <= xs:
            continue
        mask = masks[n]
        cx0, cx1, cwx0, cwx1 = x0[xs:xe], x1[xs:xe], wx0[xs:xe], wx1[xs:xe]
        # index_select: the same gathers as advanced indexing at a fraction of its per-call overhead (100 masks).
        top_rows, bottom_rows = mask.index_select(0, y0[ys:ye]), mask.index_select(0, y1[ys:ye])
        upper = _lerp(top_rows.index_select(1, cx0), top_rows.index_select(1, cx1), cwx0, cwx1)
        lower = _lerp(bottom_rows.index_select(1, cx0), bottom_rows.index_select(1, cx1), cwx0, cwx1)
        out[n, ys:ye, xs:xe] = _lerp(upper, lower, wy0[ys:ye, None], wy1[ys:ye, None]) > threshold
    return out
