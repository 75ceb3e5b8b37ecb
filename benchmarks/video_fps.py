"""Video end to end (decode, infer, draw, encode) against the same model's throughput on frames already in
memory: how much of the I/O the threaded pipeline hides.

    python benchmarks/video_fps.py --config yolact_resnet18 --batch 1 --frames 60
    python benchmarks/video_fps.py --config yolact_resnet18 --top-k 20
    python benchmarks/video_fps.py --config yolact_resnet18 --streams 1 [--draw-in-writer]
    python benchmarks/video_fps.py --config yolact_resnet50 --weights W.pth --batch 4

The clip is made here: --frames 640x480 frames (coco128 images resized, or --images) written at 30 fps as mp4v.
Throughput is ``Predictor.predict_arrays`` on those frames in memory at the same batch; video is
``predict_video`` reading the clip and writing an annotated mp4 with per-frame JSON, as ``yolact predict clip.mp4
--output out.mp4 --json dets.json`` does. Without --weights the model has random weights with its class layer
rescaled so that every frame has detections to draw (predict_latency.py explains). A script that prints figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import yolact
from yolact.data.images import list_images, read_image
from yolact.evaluation.benchmark import calibrate_class_layer
from yolact.inference.drawing import draw_instances
from yolact.inference.video import predict_video

SHARED = Path(__file__).resolve().parents[2] / "shared"


def make_clip(path: Path, images: list[Path], frames: int, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    clip = [cv2.resize(read_image(images[i % len(images)]), size) for i in range(frames)]
    for frame in clip:
        writer.write(frame)
    writer.release()
    return clip


def writer_stage_ms(predictor: yolact.Predictor, frames: list[np.ndarray]) -> dict[str, float]:
    """Median ms per frame of the per-frame JSON records and of drawing the overlay, one at a time."""
    times: dict[str, list[float]] = {"to_coco": [], "draw_instances": []}
    for index, frame in enumerate(frames):
        prediction = predictor.predict_arrays([frame])[0]
        start = time.perf_counter()
        prediction.to_coco(index)
        middle = time.perf_counter()
        draw_instances(frame, prediction.boxes_xyxy, prediction.scores, prediction.class_ids, predictor.class_names,
                       prediction.masks, mask_bounds_xyxy=prediction.mask_bounds_xyxy)
        times["to_coco"].append(middle - start)
        times["draw_instances"].append(time.perf_counter() - middle)
    return {name: 1e3 * float(np.median(values)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="yolact_resnet18")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternated in-memory and video runs (medians)")
    parser.add_argument("--top-k", type=int, default=100, help="detections kept per frame (and drawn)")
    parser.add_argument("--streams", type=int, help="predict_video's inference streams (default: its own choice)")
    parser.add_argument("--draw-in-writer", action="store_true",
                        help="draw overlays in predict_video's writer thread (its GPU default) instead of the "
                        "inference loop")
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "coco128-seg" / "images")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = list_images(args.images)
    if args.weights is not None:
        predictor = yolact.load(args.weights, args.config, device="cpu", top_k=args.top_k)
    else:
        torch.manual_seed(0)
        config = yolact.get_config(args.config)
        model = yolact.build_yolact(config).eval()
        calibrate_class_layer(model, yolact.Predictor.from_model(model, config, device="cpu", optimize=False).prepare(
            [read_image(images[0])]))
        predictor = yolact.Predictor.from_model(model, config, device="cpu", top_k=args.top_k)
    with tempfile.TemporaryDirectory() as folder:
        clip_path = Path(folder) / "clip.mp4"
        clip = make_clip(clip_path, images, args.frames)
        predictor.predict_arrays(clip[: args.batch])  # warm-up
        memory, video = [], []
        for _ in range(args.rounds):  # alternated, so that a drift in the machine's speed hits both alike
            start = time.perf_counter()
            detections = 0
            for i in range(0, len(clip), args.batch):
                detections += sum(len(p) for p in predictor.predict_arrays(clip[i : i + args.batch]))
            memory.append(len(clip) / (time.perf_counter() - start))
            summary = predict_video(predictor, clip_path, Path(folder) / "out.mp4", Path(folder) / "dets.json",
                                    batch_size=args.batch, progress=False, streams=args.streams,
                                    draw_in_writer=args.draw_in_writer or None)
            video.append(summary.fps)
        stages = writer_stage_ms(predictor, clip[:10])
    memory_fps, video_fps = float(np.median(memory)), float(np.median(video))
    print(f"{predictor.config.name} on CPU ({args.threads} threads), {args.frames} frames 640x480, batch {args.batch}, "
          f"{detections / len(clip):.1f} detections per frame, medians of {args.rounds} alternated rounds")
    print(f"in-memory throughput {memory_fps:.2f} images/s; video end to end {video_fps:.2f} fps "
          f"({100 * (video_fps / memory_fps - 1):+.1f} %)")
    print("rounds (in-memory / video): " + ", ".join(f"{m:.2f} / {v:.2f}" for m, v in zip(memory, video, strict=True)))
    print("work per frame besides the network (medians over 10 frames): "
          + ", ".join(f"{name} {ms:.1f} ms" for name, ms in stages.items()))

if __name__ == "__main__":
    main()
