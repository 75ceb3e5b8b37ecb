"""``yolact eval`` over processes that torchrun started (one node or many; gloo on CPUs, NCCL on GPUs).

Each process takes an exact, disjoint block of the images (:class:`~yolact.inference.shards.Shard`: no padding
duplicates, as detectron2's and mmengine's samplers add), predicts on its own device and encodes its masks as
RLE there. Only the records travel: rank 0 gathers them, puts them in the dataset's order (the blocks are
contiguous, so rank order is image order) and runs pycocotools once, which gives the one-process figures.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from yolact import distributed
from yolact.data.coco import CocoDataset
from yolact.evaluation.evaluator import EvalResult, Evaluator
from yolact.inference.predictor import Predictor
from yolact.inference.shards import Shard
from yolact.outputs import JsonListWriter, WorkInterrupted

# Progress sums in flight at once: processes drift apart by this many images instead of moving in lockstep.
_PROGRESS_WINDOW = 8


@dataclass
class ShardRecords:
    """What one process hands to rank 0: its images' records, image by image, and the files it could not read."""

    images: list[tuple[int, list[dict[str, Any]]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class GlobalProgress:
    """Rank 0's bar over every process's finished images. After each step every process adds its count to a sum
    (asynchronously, on a CPU group); all take the same number of steps, the longest block's."""

    def __init__(self, total: int, group: Any, show: bool) -> None:
        self.group = group
        self.done = 0
        self.pending: deque[tuple[Any, torch.Tensor]] = deque()
        self.bar = tqdm(total=total, desc="eval", unit="img", disable=not show)

    def step(self, finished: int) -> None:
        self.done += finished
        count = torch.tensor([self.done], dtype=torch.int64)
        self.pending.append((dist.all_reduce(count, group=self.group, async_op=True), count))
        while self.pending and (len(self.pending) > _PROGRESS_WINDOW or self.pending[0][0].is_completed()):
            self._settle()

    def _settle(self) -> None:
        work, count = self.pending.popleft()
        work.wait()
        self.bar.update(int(count.item()) - self.bar.n)

    def close(self) -> None:
        while self.pending:
            self._settle()
        self.bar.close()


def evaluate_across_processes(predictor: Predictor, dataset: CocoDataset, json_path: Path | None = None,
                              progress: bool = True, limit: int | None = None) -> EvalResult | None:
    """``yolact eval`` in a torchrun group this process has joined: the result on rank 0, None on the others.

    ``json_path`` (rank 0 writes it) gets rank 0's records as each image finishes, then the others' as they
    arrive: the one-process file, in the same order."""
    rank, world = distributed.rank(), distributed.world_size()
    image_ids = dataset.image_ids[:limit]
    shard = Shard(rank, world)
    mine = shard.select(image_ids)
    steps = -(-len(image_ids) // world)  # the longest block's length
    group = distributed.cpu_group()
    evaluator = Evaluator(dataset, predictor.class_names)
    collected = ShardRecords(skipped=evaluator.skipped)
    writer = JsonListWriter(json_path) if json_path is not None and rank == 0 else None
    bar = GlobalProgress(len(image_ids), group, show=progress and rank == 0)
    try:
        for image_id in mine:
            done = evaluator.evaluate_image(predictor, image_id)
            if done is not None:
                collected.images.append((image_id, done[2]))
                if writer is not None:
                    writer.extend(done[2])
            bar.step(1)
        for _ in range(steps - len(mine)):
            bar.step(0)
        bar.close()
        gathered = distributed.gather_to_first(collected, group)
        if gathered is None:
            return None
        merged = Evaluator(dataset, predictor.class_names)
        for part_rank, part in enumerate(gathered):
            for image_id, records in part.images:
                merged.image_ids.append(image_id)
                merged.records.extend(records)
                if writer is not None and part_rank != 0:  # rank 0's are in the file already
                    writer.extend(records)
            merged.skipped.extend(part.skipped)
        return merged.evaluate()
    except KeyboardInterrupt:
        if writer is None:
            raise
        raise WorkInterrupted(f"saved: detections of {writer.saved_description()} in {json_path}") from None
    finally:
        bar.bar.close()
        if writer is not None:
            writer.close()
