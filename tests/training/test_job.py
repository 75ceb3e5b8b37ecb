"""``yolact train --resume``: the run's data, flags and output come back from the checkpoint; flags given again
override where a run may change them, and the run says which; a different class count is named as such."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import yolact
from yolact.config import SolverConfig
from yolact.data.augment import MAX_EXPAND
from yolact.data.splits import DataSplit
from yolact.data.synthetic import write_synthetic_coco
from yolact.errors import YolactError
from yolact.training.job import TrainJob, resume_job, run_training
from yolact.training.schedule import learning_rate


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    write_synthetic_coco(folder, 4, seed=0, size=(96, 96))
    return folder


def start_run(scenes: Path, out: Path, iterations: int, progress: bool = False, **options) -> Path:
    """A run of a small yolact_resnet18 (96 px) as ``yolact train`` would start it; its resumption below is
    ``yolact train --resume``'s: :func:`resume_job` takes the job from the checkpoint."""
    config = dataclasses.replace(yolact.get_config("yolact_resnet18"), max_size=96)
    job = TrainJob(train=DataSplit(scenes / "images", scenes / "annotations.json"), output_dir=out, config=config,
                   iterations=iterations, batch_size=2, device="cpu", workers=0, progress=progress, **options)
    return run_training(job, report=lambda _: None)


def resume(path: Path, **given) -> list[str]:
    """``yolact train --resume PATH`` with ``given`` flags: what the run reported."""
    lines: list[str] = []
    run_training(resume_job(path, report=lines.append, progress=False, **given), report=lines.append)
    return lines


def test_resume_alone_restores_the_run(scenes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    start_run(scenes, out, 3, checkpoint_every=1, keep_checkpoints=5, log_every=1)
    # A run killed after its iteration-1 checkpoint: metrics.jsonl holds rows past it, as after a kill.
    (out / "last.pth").unlink()
    for name in ("iter_0000002.pth",):
        (out / name).unlink()
    monkeypatch.chdir(tmp_path)  # nothing of the run is relative to where it is resumed from
    text = "\n".join(resume(out / "iter_0000001.pth"))
    assert "resumed from" in text and "at iteration 1" in text and "resumed with" not in text
    # The cadence came back (a checkpoint at every iteration), and each iteration is logged once.
    assert (out / "iter_0000002.pth").is_file() and (out / "last.pth").is_file()
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [1, 2, 3]
    assert not (tmp_path / "runs").exists()  # not the default output folder


def test_flags_given_again_override_and_are_named(scenes: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    start_run(scenes, out, 2, checkpoint_every=1)
    assert "resumed with --checkpoint-every 5 (was 1)" in resume(out / "iter_0000001.pth", checkpoint_every=5)
    job = yolact.load_checkpoint(out / "last.pth").extra["train"]["job"]
    assert job["checkpoint_every"] == 5
    # The folder form takes the newest checkpoint of the run.
    assert any("resumed from" in line and "last.pth" in line for line in resume(out))


def test_schedule_flags_cannot_change_on_resume(scenes: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    start_run(scenes, out, 2, checkpoint_every=1)
    with pytest.raises(YolactError, match=r"--batch-size 4: this run was started with 2.*--weights"):
        resume(out / "iter_0000001.pth", batch_size=4)


def test_resuming_on_data_with_another_class_count_says_so(scenes: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    start_run(scenes, out, 1, checkpoint_every=1)
    two = json.loads((scenes / "annotations.json").read_text())
    two["categories"] = two["categories"][:2]
    two["annotations"] = [a for a in two["annotations"] if a["category_id"] in (1, 2)]
    (tmp_path / "two.json").write_text(json.dumps(two))
    with pytest.raises(YolactError, match="the run has 3 classes but this training data has 2"):
        resume(out / "last.pth", train=DataSplit(scenes / "images", tmp_path / "two.json"))


def test_the_progress_bar_shows_the_lr_of_the_last_iteration(scenes: Path, tmp_path: Path,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    last_path = start_run(scenes, tmp_path / "run", 4, progress=True)
    err = capfd.readouterr().err
    solver = SolverConfig.from_dict(yolact.load_checkpoint(last_path).extra["train"]["solver"])
    rates = [learning_rate(solver, i) for i in range(4)]
    smoothed = rates[0]
    for rate in rates[1:]:
        smoothed = 0.9 * smoothed + 0.1 * rate
    assert f"{rates[-1]:.3g}" != f"{smoothed:.3g}"  # the schedule moved, so an average would show
    assert f"lr={rates[-1]:.3g}" in err.replace("\n", "\r").split("\r")[-2:][0] + err[-300:], err[-500:]


def test_a_checkpoint_from_before_jobs_were_kept_resumes_on_the_data_given_again(scenes: Path,
                                                                                 tmp_path: Path) -> None:
    out = tmp_path / "run"
    start_run(scenes, out, 2, checkpoint_every=1)
    straight = yolact.load_checkpoint(out / "last.pth")
    assert set(straight.extra) >= {"iteration", "optimizer", "scaler", "rng", "history", "train"}
    assert set(straight.extra["train"]) == {"seed", "batch_size", "iterations", "freeze_bn", "max_expand", "job",
                                            "solver"}
    # Its iteration-1 checkpoint as written before "train" held the job (and, earlier still, max_expand).
    payload = torch.load(out / "iter_0000001.pth", weights_only=True)
    del payload["train"]["job"], payload["train"]["max_expand"]
    legacy = tmp_path / "legacy.pth"
    torch.save(payload, legacy)
    with pytest.raises(YolactError, match="does not record its data; give the training data again"):
        resume_job(legacy, report=lambda _: None)
    job = resume_job(legacy, report=lambda _: None, train=DataSplit(scenes / "images", scenes / "annotations.json"),
                     output_dir=tmp_path / "resumed", device="cpu", workers=0, progress=False)
    assert (job.seed, job.batch_size, job.max_expand, job.resume) == (0, 2, MAX_EXPAND, legacy)
    resumed = yolact.load_checkpoint(run_training(job, report=lambda _: None))
    assert int(resumed.extra["iteration"]) == 2
    for name, tensor in straight.state_dict.items():
        assert torch.equal(tensor, resumed.state_dict[name]), name
