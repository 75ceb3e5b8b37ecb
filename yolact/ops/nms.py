"""Non-maximum suppression as YOLACT uses it: Fast NMS (paper, section 3.5) and greedy per-class NMS.

Each function takes candidate boxes [N, 4] (xyxy) and per-class scores [C, N] (background excluded) and returns
``(keep_index [K], class_ids [K], scores [K])`` sorted by descending score and cut at ``max_detections``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from yolact.ops.boxes import box_iou


def _empty(scores: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    empty_index = torch.zeros(0, dtype=torch.int64, device=scores.device)
    return empty_index, empty_index.clone(), scores.new_zeros(0)


def _take_best(index: Tensor, classes: Tensor, scores: Tensor, max_detections: int) -> tuple[Tensor, Tensor, Tensor]:
    # Stable: ties keep their (class, rank) order, so every way of computing Fast NMS picks the same detections.
    scores, order = scores.sort(dim=0, descending=True, stable=True)
    order = order[:max_detections]
    return index[order], classes[order], scores[:max_detections]


def top_k_per_class(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Each row's ``k`` best scores and their column indices, exactly as the first k of a stable descending sort
    (ties in column order): scores [C, N] -> (scores [C, k'], index [C, k']), k' = min(k, N).

    ``topk`` finds them without sorting whole rows (N is every candidate anchor: up to tens of thousands); its
    order among equal values is unspecified, so the k are put in stable order by (score desc, index asc), and a
    row whose k-th score ties with a score left out falls back to the full stable sort.
    """
    k = min(k, scores.shape[1])
    if 4 * k >= scores.shape[1]:  # short rows: one sort is as cheap
        sorted_scores, index = scores.sort(dim=1, descending=True, stable=True)
        return sorted_scores[:, :k], index[:, :k]
    values, index = scores.topk(k, dim=1, sorted=False)
    kth = values.min(dim=1, keepdim=True).values
    if not torch.equal((scores == kth).sum(dim=1), (values == kth).sum(dim=1)):
        sorted_scores, index = scores.sort(dim=1, descending=True, stable=True)
        return sorted_scores[:, :k], index[:, :k]
    index = index.sort(dim=1).values  # column order first, so that the stable sort below breaks ties by it
    values = scores.gather(1, index)
    values, order = values.sort(dim=1, descending=True, stable=True)
    return values, index.gather(1, order)


def fast_nms(
    boxes_xyxy: Tensor,
    scores: Tensor,
    iou_threshold: float = 0.5,
    top_k: int = 200,
    max_detections: int = 100,
    method: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class Fast NMS.

    For each class, the ``top_k`` candidates by that class's score are compared in a [C, k, k] IoU matrix; a
    candidate is kept if its IoU with every higher-scoring candidate of its class is <= ``iou_threshold`` (a
    suppressed box may still suppress others, unlike greedy NMS). All kept (class, candidate) pairs are then
    sorted by score and the best ``max_detections`` kept.

    ``method`` only changes how this is computed, never the result: "matrix" builds the whole [C, k, k] matrix
    (the paper's GPU-parallel form); "lazy" decides the (class, candidate) pairs in descending score order, a
    growing chunk at a time, each against the higher-ranked candidates of its class only, and stops once
    ``max_detections`` are kept (tens of times less work on a CPU, where the matrix is not free); "auto" picks
    "matrix" on CUDA and "lazy" elsewhere.
    """
    if scores.shape[1] == 0:
        return _empty(scores)
    scores, index = top_k_per_class(scores, top_k)
    num_classes, num_candidates = index.shape
    boxes = boxes_xyxy[index.reshape(-1)].view(num_classes, num_candidates, 4)
    if method == "auto":
        method = "matrix" if boxes_xyxy.is_cuda else "lazy"
    if method == "matrix":
        iou = box_iou(boxes, boxes).triu_(diagonal=1)
        # The kept (class, rank) pairs in row-major order, as boolean indexing gives them, found once: on CUDA
        # every boolean index is a host sync of its own.
        kept = (iou.max(dim=1).values <= iou_threshold).reshape(-1).nonzero().squeeze(1)
        classes = kept // num_candidates
        return _take_best(index.reshape(-1)[kept], classes, scores.reshape(-1)[kept], max_detections)
    if method != "lazy":
        raise ValueError(f"unknown Fast NMS method {method!r}; expected 'auto', 'matrix' or 'lazy'")
    return _lazy_fast_nms(boxes, index, scores, iou_threshold, max_detections)


def _lazy_fast_nms(boxes: Tensor, index: Tensor, scores: Tensor, iou_threshold: float, max_detections: int
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Fast NMS over per-class sorted candidates (boxes [C, k, 4], index and scores [C, k]), pairs decided in the
    matrix form's final order (score descending, then class, then rank: a stable sort of the row-major pairs)."""
    num_candidates = scores.shape[1]
    order = scores.reshape(-1).sort(descending=True, stable=True).indices
    ranks = torch.arange(num_candidates, device=boxes.device)
    kept: list[Tensor] = []
    num_kept, start, chunk = 0, 0, max(4 * max_detections, 64)
    while start < order.numel() and num_kept < max_detections:
        pairs = order[start : start + chunk]
        classes, rank = pairs // num_candidates, pairs % num_candidates
        # The same IoU arithmetic as the matrix form (rows: higher-ranked boxes of the class), then its triu_:
        # entries at or below the diagonal set to exactly 0, so NaNs of degenerate boxes propagate alike.
        iou = box_iou(boxes[classes], boxes[classes, rank][:, None, :])[..., 0]
        iou = torch.where(ranks[None, :] < rank[:, None], iou, iou.new_zeros(()))
        keep = iou.max(dim=1).values <= iou_threshold
        kept.append(pairs[keep])
        num_kept += int(keep.sum())
        start += chunk
        chunk *= 2
    pairs = torch.cat(kept)[:max_detections]
    classes, rank = pairs // num_candidates, pairs % num_candidates
    return index[classes, rank], classes, scores[classes, rank]


def cross_class_fast_nms(
    boxes_xyxy: Tensor,
    scores: Tensor,
    iou_threshold: float = 0.5,
    top_k: int = 200,
    max_detections: int = 100,
) -> tuple[Tensor, Tensor, Tensor]:
    """Fast NMS over all classes at once: each candidate takes its best class, then one [k, k] IoU matrix."""
    if scores.shape[1] == 0:
        return _empty(scores)
    best_scores, classes = scores.max(dim=0)
    order = best_scores.sort(0, descending=True).indices[:top_k]
    boxes = boxes_xyxy[order]
    iou = box_iou(boxes, boxes).triu_(diagonal=1)
    keep = iou.max(dim=0).values <= iou_threshold
    index = order[keep]
    return _take_best(index, classes[index], best_scores[index], max_detections)


def traditional_nms(
    boxes_xyxy: Tensor,
    scores: Tensor,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.05,
    max_detections: int = 100,
    box_scale: float = 550.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Greedy per-class NMS, as the authors' Cython ``nms``: boxes scaled by ``box_scale`` (the input size), +1 in
    widths and heights, and per class only the candidates whose score for it is above ``score_threshold``."""
    above = scores > score_threshold
    class_ids, index = above.nonzero(as_tuple=True)
    candidate_scores = scores[class_ids, index]
    boxes = boxes_xyxy[index] * box_scale
    # torchvision computes areas without the +1; widening x2, y2 by one pixel reproduces the authors' convention.
    boxes = torch.cat((boxes[:, :2], boxes[:, 2:] + 1), dim=1)
    # The authors suppress at IoU >= threshold, torchvision at IoU > threshold: step to the next float below.
    below = torch.nextafter(torch.tensor(iou_threshold, dtype=boxes.dtype), torch.tensor(-1.0, dtype=boxes.dtype))
    keep = batched_nms(boxes, candidate_scores, class_ids, float(below))
    return _take_best(index[keep], class_ids[keep], candidate_scores[keep], max_detections)
