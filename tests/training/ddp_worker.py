"""Run under torchrun by test_trainer.py: processes train a few iterations (``device`` cpu or cuda, the third
argument), then compare weights."""

import dataclasses
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import yolact
from yolact import distributed
from yolact.config import SolverConfig
from yolact.data.augment import TrainTransform
from yolact.data.coco import load_coco
from yolact.data.datasets import InstanceDataset
from yolact.training.options import TrainJob, TrainPlan
from yolact.training.trainer import Trainer


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    device = sys.argv[3] if len(sys.argv) > 3 else "cpu"
    torch.set_num_threads(1)
    distributed.init(device)
    coco = load_coco(data / "annotations.json", data / "images")
    config = dataclasses.replace(yolact.get_config("yolact_resnet18"), max_size=96, num_classes=3)
    torch.manual_seed(0)  # the same initial weights in every process
    dataset = InstanceDataset(coco, TrainTransform(config.max_size, config.backbone))
    solver = SolverConfig(batch_size=4, lr=1e-3, warmup_iterations=1, max_iterations=3)
    job = TrainJob(output_dir=out, config=config, batch_size=4, device=device, workers=0, progress=False)
    trainer = Trainer(yolact.build_yolact(config), config, dataset, job, TrainPlan(solver), dataset.class_names,
                      dataset.category_ids)
    trainer.train()
    flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(distributed.world_size())]
    dist.all_gather(gathered, flat)
    if distributed.rank() == 0:
        initial = yolact.build_yolact(config)  # not trained: the weights must have moved
        start = torch.cat([p.detach().flatten() for p in initial.parameters()]).to(flat.device)
        report = {"world_size": distributed.world_size(), "backend": dist.get_backend(),
                  "wrapped": type(trainer.network).__name__,
                  "max_difference": max(float((g - flat).abs().max()) for g in gathered),
                  "moved": float((flat - start).abs().max())}
        (out / "ddp.json").write_text(json.dumps(report))
    distributed.cleanup()


if __name__ == "__main__":
    main()
