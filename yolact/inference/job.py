"""``yolact predict`` as one library call: a source (an image, a folder, a video, a camera) through a model, with
every output checked before the model is loaded (:func:`run_prediction`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from yolact.config import YolactConfig
from yolact.inference.files import (
    ImageIds,
    check_predict_outputs,
    image_ids_for,
    predict_files,
    read_image_ids,
    resolve_sources,
)
from yolact.inference.forms import ImageForms
from yolact.inference.options import InferenceOptions
from yolact.inference.predictor import Predictor, load
from yolact.inference.results import SEGMENTATIONS
from yolact.inference.shards import Shard, ShardWriter
from yolact.inference.video import VIDEO_SUFFIXES, FrameSource, is_video_source, predict_video


@dataclass(frozen=True)
class PredictJob:
    """One prediction run: ``source`` an image, a folder of images, a video file or a camera index; ``output`` a
    folder of overlays, or for video the annotated video (a folder gets ``<name>.mp4``; a folder of images with a
    video file name here is read as frames); ``json`` the COCO results list; ``image_ids`` a COCO annotation
    file to take the JSON's image ids from, ``segmentation`` its masks' form ("rle" or "polygon"). ``forms``: the
    per-image files (YOLO-seg, labelme, mask PNGs). ``batch``, ``streams`` and ``show`` apply to video.
    ``shard``: this process's block of the sorted images, its detections written as JSON lines to
    :meth:`shard_file`; ``resume`` continues that file, skipping the images it holds."""

    source: str | Path
    weights: Path
    config: YolactConfig | str | None = None
    options: InferenceOptions = field(default_factory=InferenceOptions)
    output: Path | None = None
    json: Path | None = None
    image_ids: Path | None = None
    segmentation: str = "rle"
    forms: ImageForms = field(default_factory=ImageForms)
    batch: int = 1
    streams: int | None = None
    show: bool = False
    progress: bool = True
    shard: Shard | None = None
    resume: bool = False

    @property
    def is_video(self) -> bool:
        return is_video_source(self.source) or self.writes_video_file or self.show

    @property
    def writes_video_file(self) -> bool:
        return self.output is not None and self.output.suffix.lower() in VIDEO_SUFFIXES

    def video_file(self) -> Path | None:
        """Where the annotated video goes (None: not written)."""
        if not self.is_video or self.output is None:
            return None
        if self.writes_video_file:
            return self.output
        name = f"camera{self.source}" if str(self.source).isdigit() else Path(self.source).stem
        return self.output / f"{name}.mp4"


    def shard_file(self) -> Path | None:
        """Where a sharded run's JSON lines go: beside ``json`` with the shard in the name, else in ``output``."""
        if self.shard is None and not self.resume:
            return None
        shard = self.shard or Shard(0, 1)
        if self.json is not None:
            return shard.file_for(self.json)
        if self.output is not None:
            return shard.file_for(self.output / "detections.jsonl")
        raise ValueError("--shard and --resume write detections.shard-I-of-N.jsonl: give --json FILE (its folder "
                         "and name) or --output DIR")


@dataclass
class PredictReport:
    """What a run did: ``lines`` to show (per image, when one image was predicted and not quiet) and the
    ``summary`` line; ``ok`` is False when no image could be read."""

    summary: str
    lines: list[str] = field(default_factory=list)
    ok: bool = True


def run_prediction(job: PredictJob) -> PredictReport:
    """Check every output, load the model as ``job.options`` say, and predict; results are saved as each image
    or frame finishes."""
    video = job.is_video
    paths = [] if video else resolve_sources(job.source)
    video_file = job.video_file()
    if job.image_ids is not None and video:
        raise ValueError("--image-ids applies to images; video frames are numbered from 1")
    if job.segmentation not in SEGMENTATIONS:
        raise ValueError(f"--segmentation {job.segmentation!r}: choose one of {', '.join(SEGMENTATIONS)}")
    forms = job.forms if job.forms.folders() else None
    if forms is not None and forms.labelme is not None and video:
        raise ValueError("--save-labelme applies to images: a labelme file points at its image file; save the "
                         "frames as images first")
    shard_file = job.shard_file()
    if shard_file is not None and video:
        raise ValueError("--shard and --resume apply to folders of images; a video runs in one process")
    if shard_file is not None and shard_file.exists() and not job.resume:
        raise ValueError(f"{shard_file}: exists; add --resume to continue it, or remove it to start again")
    check_predict_outputs(job.source, paths, job.output, shard_file or job.json, [job.weights, job.image_ids],
                          video_file, forms)
    image_ids = None
    if not video:
        image_ids = read_image_ids(job.image_ids, paths) if job.image_ids else image_ids_for(paths)
    writer = None
    if shard_file is not None:
        # Ids come from the whole listing, so that every shard numbers its images as one process would.
        shard = job.shard or Shard(0, 1)
        paths = shard.select(paths)
        image_ids = ImageIds(shard.select(image_ids.ids), image_ids.rule)  # type: ignore[union-attr]
        writer = ShardWriter(shard_file, job.resume)
    # A camera that is not there, or a video that cannot be read, is found before the model loads (which may
    # export it first).
    frames = FrameSource(str(job.source)) if video else None
    predictor = load(job.weights, job.config, job.options)
    if frames is not None:
        result = predict_video(predictor, frames, video_file, job.json, batch_size=job.batch,
                               show=job.show, progress=job.progress, streams=job.streams, forms=forms,
                               segmentation=job.segmentation)
        return PredictReport(f"{result.frames} frame(s), {result.detections} detections on {_where(predictor)} at "
                             f"{result.fps:.1f} fps" + (f"; video in {video_file}" if video_file else "")
                             + (f"; detections in {job.json}" if job.json else ""))
    try:
        summary = predict_files(predictor, paths, job.output, None if writer else job.json,
                                progress=job.progress, image_ids=image_ids, keep_predictions=len(paths) == 1,
                                forms=forms, segmentation=job.segmentation, shard_writer=writer)
    finally:
        if writer is not None:
            writer.close()
    done = len(paths) - len(summary.skipped)
    line = (f"{done} image(s), {summary.num_detections} detections on {_where(predictor)}"
            + (f"; skipped {len(summary.skipped)} unreadable image(s)" if summary.skipped else "")
            + (f"; overlays in {job.output}" if job.output else "")
            + "".join(f"; {flag[7:]} in {folder}" for flag, folder, _ in (forms.folders() if forms else []))
            + (f"; detections in {job.json} ({summary.image_id_rule})" if job.json and not writer else "")
            + (f"; {summary.resumed} already done" if summary.resumed else "")
            + (f"; detections in {shard_file} ({summary.image_id_rule})" if writer else ""))
    lines = [prediction.describe() for prediction in summary.predictions] if job.progress else []
    return PredictReport(line, lines, ok=done > 0)


def _where(predictor: Predictor) -> str:
    """``cpu``, ``cuda:0``, or ``cpu (openvino)`` for a network a runtime runs."""
    backend = predictor.network.backend
    return str(predictor.device) + ("" if backend == "pytorch" else f" ({backend})")
