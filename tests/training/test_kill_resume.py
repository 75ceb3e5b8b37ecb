"""A training process killed with SIGKILL at random moments, checkpoint writes included, always leaves a loadable
checkpoint, and ``--resume`` from it ends bit for bit where a run that was never stopped ends."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import yolact
from yolact.data.synthetic import write_synthetic_coco
from yolact.training.checkpoints import latest_checkpoint

WORKER = Path(__file__).with_name("train_worker.py")
ITERATIONS = 8


def start(data: Path, out: Path, resume: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(data), str(out), str(ITERATIONS),
                             *(["resume"] if resume else [])], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def checkpoints(out: Path) -> list[Path]:
    return sorted(out.glob("iter_*.pth")) if out.is_dir() else []


def kill_when(proc: subprocess.Popen, ready, timeout: float = 180.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None:
        assert time.monotonic() < deadline, "the training process made no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


@pytest.mark.slow
def test_killed_runs_resume_bit_for_bit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_synthetic_coco(data, 6, seed=1, size=(96, 96))
    straight = start(data, tmp_path / "straight")
    assert straight.wait(timeout=300) == 0, straight.stderr.read().decode()[-3000:]  # type: ignore[union-attr]

    out = tmp_path / "killed"
    rng = random.Random(0)
    # First kill: at a random moment after the first checkpoint. Second: while a checkpoint is being written
    # (its temporary file exists). Third: at a random moment again.
    kills = [
        lambda: len(checkpoints(out)) >= 1 and (time.sleep(rng.uniform(0, 0.5)) or True),
        lambda: any(out.glob(".*.tmp")),
        lambda: (time.sleep(rng.uniform(0.2, 1.0)) or True) and len(checkpoints(out)) >= 1,
    ]
    proc = start(data, out)
    for ready in kills:
        kill_when(proc, ready)
        yolact.load_checkpoint(latest_checkpoint(out))  # loadable, whatever the kill interrupted
        proc = start(data, out, resume=True)  # the newest checkpoint, with the run's data and flags
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]

    expected = torch.load(tmp_path / "straight" / "last.pth", weights_only=True)
    resumed = torch.load(out / "last.pth", weights_only=True)
    assert resumed["iteration"] == expected["iteration"] == ITERATIONS
    for name, tensor in expected["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    # Each iteration once in the log, whatever was replayed after the kills; the same losses as the straight run.
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    straight_log = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == list(range(1, ITERATIONS + 1))
    assert [r["total"] for r in log] == [r["total"] for r in straight_log]
    # The cadence of the run came back with it: a checkpoint at every iteration, two kept.
    assert len(checkpoints(out)) == 2 and not list(out.glob(".*.tmp"))
