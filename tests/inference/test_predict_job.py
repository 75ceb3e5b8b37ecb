"""PredictJob and its forms: where a prediction run's files go, decided before anything is loaded."""

from pathlib import Path

import pytest

from yolact.inference.forms import ImageForms
from yolact.inference.job import PredictJob
from yolact.outputs import OutputError

WEIGHTS = Path("w.pth")


def test_images_write_no_video() -> None:
    job = PredictJob(Path("photos"), WEIGHTS, output=Path("out"))
    assert not job.is_video and job.video_file() is None


def test_a_video_into_a_folder_is_named_after_its_source() -> None:
    assert PredictJob(Path("clips/street.avi"), WEIGHTS, output=Path("out")).video_file() == Path("out/street.mp4")
    assert PredictJob("0", WEIGHTS, output=Path("out")).video_file() == Path("out/camera0.mp4")


def test_a_video_file_name_is_used_as_it_is_and_makes_frames_a_video() -> None:
    job = PredictJob(Path("frames"), WEIGHTS, output=Path("frames.AVI"))
    assert job.is_video and job.video_file() == Path("frames.AVI")


def test_show_alone_writes_nothing() -> None:
    job = PredictJob("0", WEIGHTS, show=True)
    assert job.is_video and job.video_file() is None


def test_two_images_that_would_write_the_same_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"a\.jpg and a\.png would write the same per-image files"):
        ImageForms(txt=tmp_path / "txt").check([], ["a.jpg", "a.png"])
