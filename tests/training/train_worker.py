"""Run as a subprocess by test_kill_resume.py: ``train_worker.py DATA OUT ITERATIONS [resume]`` trains a small
yolact_resnet18 (96 px, from scratch) through ``run_training``, writing a checkpoint at every iteration; with
``resume`` it continues from the newest checkpoint in OUT, everything else read from that checkpoint."""

import dataclasses
import sys
from pathlib import Path

import torch

import yolact
from yolact.data.splits import DataSplit
from yolact.training.job import TrainJob, resume_job, run_training


def main() -> None:
    data, out, iterations = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)  # the same kernels, and so the same rounding, in every process
    if len(sys.argv) > 4 and sys.argv[4] == "resume":
        job = resume_job(out, progress=False)
    else:
        config = dataclasses.replace(yolact.get_config("yolact_resnet18"), max_size=96)
        job = TrainJob(train=DataSplit(data / "images", data / "annotations.json"), output_dir=out, config=config,
                       iterations=iterations, batch_size=2, device="cpu", workers=0, checkpoint_every=1,
                       keep_checkpoints=2, log_every=1, progress=False)
    run_training(job)


if __name__ == "__main__":
    main()
