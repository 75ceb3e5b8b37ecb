"""Video, folders of frames and cameras: ``predict_video`` and ``yolact predict clip.mp4``, on a clip made here."""

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import yolact
from yolact.checkpoint import save_checkpoint
from yolact.errors import YolactError
from yolact.inference.forms import ImageForms
from yolact.inference.job import PredictJob, run_prediction
from yolact.inference.options import InferenceOptions
from yolact.inference.video import display_available, predict_video

FRAMES, WIDTH, HEIGHT, FPS = 12, 128, 96, 10.0
CLASSES = ["circle", "square", "triangle"]


def small_config():
    return dataclasses.replace(yolact.get_config("yolact_resnet18"), max_size=96, num_classes=3)


@pytest.fixture(scope="module")
def predictor() -> yolact.Predictor:
    torch.manual_seed(0)
    config = small_config()
    # Random weights: score threshold 0 so that every frame has detections to draw and record.
    return yolact.Predictor.from_model(yolact.build_yolact(config), config, CLASSES, [1, 2, 3], device="cpu",
                                       score_threshold=0.0, top_k=5)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A moving disc over a gradient, FRAMES frames of WIDTH x HEIGHT at FPS."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(FRAMES):
        frame = np.tile(np.linspace(40, 200, WIDTH, dtype=np.uint8)[None, :, None], (HEIGHT, 1, 3))
        cv2.circle(frame, (20 + 7 * i, 48), 15, (30, 30, 220), -1)
        writer.write(frame)
    writer.release()
    return path


def read_back(path: Path) -> tuple[int, int, int, float]:
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.read()[0]:
        frames += 1
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, *size, fps


@pytest.mark.parametrize("batch_size", [1, 4])
def test_video_end_to_end_keeps_frames_size_and_fps(predictor: yolact.Predictor, clip: Path, tmp_path: Path,
                                                    batch_size: int) -> None:
    out, json_path = tmp_path / "out.mp4", tmp_path / "frames.json"
    summary = predict_video(predictor, clip, out, json_path, batch_size=batch_size, progress=False)
    assert summary.frames == FRAMES and summary.detections == 5 * FRAMES and summary.fps > 0
    assert read_back(out) == (FRAMES, WIDTH, HEIGHT, pytest.approx(FPS))
    records = json.loads(json_path.read_text())
    assert sorted({r["image_id"] for r in records}) == list(range(1, FRAMES + 1))


def test_drawing_in_the_writer_thread_gives_the_same_outputs(predictor: yolact.Predictor, clip: Path,
                                                             tmp_path: Path) -> None:
    """The GPU default (overlays and records made in the writer thread) and the CPU one (in the caller's) write
    the same JSON and the same frames."""
    outputs = {}
    for in_writer in (False, True):
        video, records = tmp_path / f"{in_writer}.avi", tmp_path / f"{in_writer}.json"
        predict_video(predictor, clip, video, records, progress=False, draw_in_writer=in_writer)
        capture = cv2.VideoCapture(str(video))
        frames = []
        while (read := capture.read())[0]:
            frames.append(read[1])
        outputs[in_writer] = json.loads(records.read_text()), frames
    assert outputs[False][0] == outputs[True][0] and len(outputs[False][0]) == 5 * FRAMES
    assert len(outputs[False][1]) == len(outputs[True][1]) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(outputs[False][1], outputs[True][1], strict=True))


def test_streams_give_the_same_records_in_order_and_restore_the_thread_count(predictor: yolact.Predictor,
                                                                             clip: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    runs = {}
    for streams in (1, 2, 3):
        path = tmp_path / f"s{streams}.json"
        summary = predict_video(predictor, clip, None, path, batch_size=2, progress=False, streams=streams)
        assert summary.frames == FRAMES
        runs[streams] = json.loads(path.read_text())
        assert torch.get_num_threads() == threads
    # A stream with fewer threads sums in another order: the same detections, scores equal to rounding.
    assert len(runs[1]) == len(runs[2]) == len(runs[3]) == 5 * FRAMES
    for one, *others in zip(runs[1], runs[2], runs[3], strict=True):
        for other in others:
            assert (other["image_id"], other["category_id"]) == (one["image_id"], one["category_id"])
            assert abs(other["score"] - one["score"]) < 1e-4
    assert [r["image_id"] for r in runs[2]] == sorted(r["image_id"] for r in runs[2])
    with pytest.raises(YolactError, match="streams must be at least 1"):
        predict_video(predictor, clip, None, None, progress=False, streams=0)
    # The same network as an exported one runs: no PyTorch model behind it.
    exported = yolact.Predictor(dataclasses.replace(predictor.network, model=None, module=None), predictor.options)
    with pytest.raises(YolactError, match="streams > 1 needs an eager PyTorch network"):
        predict_video(exported, clip, None, None, progress=False, streams=2)
    assert predict_video(exported, clip, None, None, progress=False).frames == FRAMES  # one stream by default


def test_batching_frames_gives_the_same_detections(predictor: yolact.Predictor, clip: Path, tmp_path: Path) -> None:
    runs = {}
    for batch_size in (1, 3):
        path = tmp_path / f"b{batch_size}.json"
        predict_video(predictor, clip, None, path, batch_size=batch_size, progress=False)
        runs[batch_size] = json.loads(path.read_text())
    assert len(runs[1]) == len(runs[3]) == 5 * FRAMES
    for a, b in zip(runs[1], runs[3], strict=True):
        assert a["image_id"] == b["image_id"] and a["category_id"] == b["category_id"]
        assert abs(a["score"] - b["score"]) < 1e-4


def test_prediction_job_on_a_video_and_a_folder_of_frames(predictor: yolact.Predictor, clip: Path,
                                                          tmp_path: Path) -> None:
    weights = tmp_path / "small.pth"
    save_checkpoint(weights, predictor.model.state_dict(), predictor.config, CLASSES, [1, 2, 3])
    options = InferenceOptions(score_threshold=0.0, device="cpu")
    report = run_prediction(PredictJob(clip, weights, options=options, output=tmp_path / "o", progress=False))
    assert read_back(tmp_path / "o" / "clip.mp4")[0] == FRAMES
    assert f"{FRAMES} frame(s)" in report.summary
    frames = tmp_path / "frames"
    frames.mkdir()
    capture = cv2.VideoCapture(str(clip))
    for i in range(5):
        cv2.imwrite(str(frames / f"{i:03d}.png"), capture.read()[1])
    run_prediction(PredictJob(frames, weights, options=options, output=tmp_path / "f.avi", streams=1,
                              progress=False))
    assert read_back(tmp_path / "f.avi")[:3] == (5, WIDTH, HEIGHT)


def test_missing_camera_and_no_display_are_one_line_errors(predictor: yolact.Predictor, clip: Path,
                                                           monkeypatch) -> None:
    with pytest.raises(YolactError, match="camera 97 cannot be opened: no such camera"):
        predict_video(predictor, "97", progress=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display_available() is not None
    with pytest.raises(YolactError, match="--show: "):
        predict_video(predictor, clip, show=True, progress=False)
    with pytest.raises(YolactError, match="no such video file, folder or camera index"):
        predict_video(predictor, clip.with_name("nope.mp4"), progress=False)


def test_per_frame_forms_are_numbered_files(predictor: yolact.Predictor, clip: Path, tmp_path: Path) -> None:
    forms = ImageForms(txt=tmp_path / "txt", masks=tmp_path / "masks")
    predict_video(predictor, clip, None, tmp_path / "d.json", progress=False, forms=forms, segmentation="polygon")
    names = [f"frame_{i:06d}" for i in range(1, FRAMES + 1)]
    assert sorted(p.stem for p in (tmp_path / "txt").iterdir()) == names
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [f"{n}.png" for n in names]
    records = json.loads((tmp_path / "d.json").read_text())
    assert records and all(isinstance(r["segmentation"], list) for r in records)
    with pytest.raises(YolactError, match="--save-labelme applies to images"):
        predict_video(predictor, clip, None, None, progress=False, forms=ImageForms(labelme=tmp_path / "lm"))


def test_a_video_with_the_pascal_preset(make_official_checkpoint, shared_dir: Path, tmp_path: Path) -> None:
    photo = cv2.imread(str(shared_dir / "data" / "labelme-voc-instseg" / "images" / "2011_000003.jpg"))
    source = tmp_path / "voc.mp4"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, photo.shape[1::-1])
    for shift in range(3):
        writer.write(np.roll(photo, 4 * shift, axis=1))
    writer.release()
    weights = make_official_checkpoint("yolact_resnet50_pascal", filename="yolact_resnet50_pascal_23_120000.pth")
    out = tmp_path / "out"
    report = run_prediction(PredictJob(source, weights, options=InferenceOptions(device="cpu", top_k=10), output=out,
                                       json=tmp_path / "frames.json", progress=False))
    assert report.ok and read_back(out / "voc.mp4")[:3] == (3, *photo.shape[1::-1])
    records = json.loads((tmp_path / "frames.json").read_text())
    assert len({r["image_id"] for r in records}) == 3  # a frame each
    assert {r["category_id"] for r in records} <= set(range(1, 21))
