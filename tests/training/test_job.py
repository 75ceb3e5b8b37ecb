"""``yolact train --resume``: the run's data, flags and output come back from the checkpoint; flags given again
override where a run may change them, and the run says which; a different class count is named as such."""

import dataclasses
import json
from pathlib import Path

import pytest

import yolact
from yolact.cli import main
from yolact.config import SolverConfig
from yolact.data.splits import DataSplit
from yolact.data.synthetic import write_synthetic_coco
from yolact.training.job import TrainJob, run_training
from yolact.training.schedule import learning_rate


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    write_synthetic_coco(folder, 4, seed=0, size=(96, 96))
    return folder


def start_run(scenes: Path, out: Path, iterations: int, progress: bool = False, **options) -> Path:
    """A run of a small yolact_resnet18 (96 px) as ``yolact train`` would start it; its resumption below goes
    through the command line, which takes the model from the checkpoint."""
    config = dataclasses.replace(yolact.get_config("yolact_resnet18"), max_size=96)
    job = TrainJob(train=DataSplit(scenes / "images", scenes / "annotations.json"), output_dir=out, config=config,
                   iterations=iterations, batch_size=2, device="cpu", workers=0, progress=progress, **options)
    return run_training(job, report=lambda _: None)


def test_resume_alone_restores_the_run(scenes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    start_run(scenes, out, 3, checkpoint_every=1, keep_checkpoints=5, log_every=1)
    # A run killed after its iteration-1 checkpoint: metrics.jsonl holds rows past it, as after a kill.
    (out / "last.pth").unlink()
    for name in ("iter_0000002.pth",):
        (out / name).unlink()
    monkeypatch.chdir(tmp_path)  # nothing of the run is relative to where it is resumed from
    capsys.readouterr()
    assert main(["train", "--resume", str(out / "iter_0000001.pth"), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "resumed from" in text and "at iteration 1" in text and "resumed with" not in text
    # The cadence came back (a checkpoint at every iteration), and each iteration is logged once.
    assert (out / "iter_0000002.pth").is_file() and (out / "last.pth").is_file()
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [1, 2, 3]
    assert not (tmp_path / "runs").exists()  # not the default output folder


def test_flags_given_again_override_and_are_named(scenes: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    start_run(scenes, out, 2, checkpoint_every=1)
    capsys.readouterr()
    assert main(["train", "--resume", str(out / "iter_0000001.pth"), "--checkpoint-every", "5", "--quiet"]) == 0
    assert "resumed with --checkpoint-every 5 (was 1)" in capsys.readouterr().out
    job = yolact.load_checkpoint(out / "last.pth").extra["train"]["job"]
    assert job["checkpoint_every"] == 5
    # The folder form takes the newest checkpoint of the run.
    assert main(["train", "--resume", str(out), "--quiet"]) == 0


def test_schedule_flags_cannot_change_on_resume(scenes: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    start_run(scenes, out, 2, checkpoint_every=1)
    capsys.readouterr()
    code = main(["train", "--resume", str(out / "iter_0000001.pth"), "--batch-size", "4", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--batch-size 4: this run was started with 2" in err and "--weights" in err


def test_resuming_on_data_with_another_class_count_says_so(scenes: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    start_run(scenes, out, 1, checkpoint_every=1)
    two = json.loads((scenes / "annotations.json").read_text())
    two["categories"] = two["categories"][:2]
    two["annotations"] = [a for a in two["annotations"] if a["category_id"] in (1, 2)]
    (tmp_path / "two.json").write_text(json.dumps(two))
    capsys.readouterr()
    code = main(["train", "--resume", str(out / "last.pth"), "--train-ann", str(tmp_path / "two.json"),
                 "--train-images", str(scenes / "images"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "the run has 3 classes but this training data has 2" in err


def test_the_progress_bar_shows_the_lr_of_the_last_iteration(scenes: Path, tmp_path: Path,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    last_path = start_run(scenes, tmp_path / "run", 4, progress=True)
    err = capfd.readouterr().err
    saved = yolact.load_checkpoint(last_path).extra["train"]["solver"]
    solver = SolverConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
    rates = [learning_rate(solver, i) for i in range(4)]
    smoothed = rates[0]
    for rate in rates[1:]:
        smoothed = 0.9 * smoothed + 0.1 * rate
    assert f"{rates[-1]:.3g}" != f"{smoothed:.3g}"  # the schedule moved, so an average would show
    assert f"lr={rates[-1]:.3g}" in err.replace("\n", "\r").split("\r")[-2:][0] + err[-300:], err[-500:]
