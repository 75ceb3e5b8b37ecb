"""Sharded, resumable prediction: shards split the sorted images exactly, and merged shards (interrupted and
resumed or not, under torchrun or not) equal one process's results."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from yolact.errors import YolactError
from yolact.inference.job import PredictJob, run_prediction
from yolact.inference.options import InferenceOptions
from yolact.inference.shards import Shard, merge_results, read_shard

REPO = Path(__file__).resolve().parents[2]
COCO_IMAGES = Path(os.environ.get("YOLACT_SHARED", REPO.parent / "shared")) / "data" / "coco128-seg" / "images"
OPTIONS = InferenceOptions(score_threshold=0.0, top_k=10, device="cpu")


@given(st.integers(0, 40), st.integers(1, 9))
def test_shards_are_disjoint_contiguous_blocks_covering_every_item(n: int, count: int) -> None:
    items = list(range(n))
    blocks = [Shard(i, count).select(items) for i in range(count)]
    assert [x for block in blocks for x in block] == items
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


@pytest.mark.parametrize("text", ["3/2", "-1/4", "x", "1/0", "2"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--shard"):
        Shard.parse(text)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images = tmp_path_factory.mktemp("shard_images")
    for path in sorted(COCO_IMAGES.iterdir())[:7]:
        shutil.copy(path, images / path.name)
    return images


@pytest.fixture(scope="module")
def one_process(folder: Path, small_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("one") / "all.json"
    run_prediction(PredictJob(folder, small_checkpoint, options=OPTIONS, json=out, progress=False))
    return json.loads(out.read_text())


def test_merged_shards_equal_one_process(folder: Path, small_checkpoint: Path, one_process: list[dict],
                                         tmp_path: Path) -> None:
    for index in range(3):
        run_prediction(PredictJob(folder, small_checkpoint, options=OPTIONS, json=tmp_path / "d.jsonl",
                                  progress=False, shard=Shard(index, 3), output=tmp_path / "overlays"))
    files = sorted(tmp_path.glob("d.shard-*-of-0003.jsonl"))
    assert [len(read_shard(f)) for f in files] == [2, 2, 3]
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == sorted(p.name for p in folder.iterdir())
    report = merge_results(files[::-1], tmp_path / "merged.json")  # any order in, shard order out
    assert json.loads((tmp_path / "merged.json").read_text()) == one_process
    assert report.images == 7 and report.records == len(one_process)
    with pytest.raises(YolactError, match="shard 1 of 3 is missing"):
        merge_results([files[0], files[2]], tmp_path / "x.json")
    with pytest.raises(YolactError, match="is in"):
        copy = Path(shutil.copy(files[0], tmp_path / "copy.jsonl"))
        merge_results([files[0], copy, files[1], files[2]], tmp_path / "x.json")
    with pytest.raises(ValueError, match="exists; add --resume"):
        run_prediction(PredictJob(folder, small_checkpoint, options=OPTIONS, json=tmp_path / "d.jsonl",
                                  progress=False, shard=Shard(1, 3)))


def test_a_cut_shard_file_is_resumed_to_the_same_records(folder: Path, small_checkpoint: Path,
                                                         one_process: list[dict], tmp_path: Path) -> None:
    job = PredictJob(folder, small_checkpoint, options=OPTIONS, json=tmp_path / "d.jsonl", progress=False,
                     shard=Shard(0, 1))
    run_prediction(job)
    path = job.shard_file()
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][:40])  # three whole lines and a cut one
    report = run_prediction(PredictJob(**{**job.__dict__, "resume": True}))
    assert "3 already done" in report.summary
    merge_results([path], tmp_path / "merged.json")
    assert json.loads((tmp_path / "merged.json").read_text()) == one_process


@pytest.mark.slow
def test_a_killed_shard_resumes_to_an_uninterrupted_runs_records(folder: Path, resnet50_checkpoint: Path,
                                                                 tmp_path: Path) -> None:
    command = [sys.executable, "-m", "yolact", "predict", str(folder), "--weights", str(resnet50_checkpoint),
               "--device", "cpu", "--quiet", "--top-k", "10", "--shard", "0/1"]
    subprocess.run([*command, "--json", str(tmp_path / "whole.jsonl")], check=True, timeout=600)
    shard = tmp_path / "cut.shard-0000-of-0001.jsonl"
    run = subprocess.Popen([*command, "--json", str(tmp_path / "cut.jsonl")])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        if shard.exists() and shard.read_bytes().count(b"\n") >= 2:
            run.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert run.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    done = len(read_shard(shard))
    assert 2 <= done < 7
    subprocess.run([*command, "--json", str(tmp_path / "cut.jsonl"), "--resume"], check=True, timeout=600)
    merge_results([shard], tmp_path / "resumed.json")
    merge_results([tmp_path / "whole.shard-0000-of-0001.jsonl"], tmp_path / "whole.json")
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert resumed == json.loads((tmp_path / "whole.json").read_text())
    assert [entry["file_name"] for entry in read_shard(shard)] == sorted(p.name for p in folder.iterdir())


@pytest.mark.slow
def test_torchrun_processes_take_one_shard_each(folder: Path, small_checkpoint: Path, one_process: list[dict],
                                                tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0",
                    "-m", "yolact", "predict", str(folder), "--weights", str(small_checkpoint), "--device", "cpu",
                    "--quiet", "--top-k", "10", "--score-threshold", "0", "--json", str(tmp_path / "d.jsonl")],
                   # The reference ran in this process: as many threads, since the count can move a score's last bits.
                   check=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
    files = sorted(tmp_path.glob("d.shard-*-of-0002.jsonl"))
    assert len(files) == 2
    merge_results(files, tmp_path / "merged.json")
    assert json.loads((tmp_path / "merged.json").read_text()) == one_process
