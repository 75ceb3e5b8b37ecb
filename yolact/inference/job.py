"""``yolact predict`` as one library call: a source (an image, a folder, a video, a camera) through a model, with
every output checked before the model is loaded (:func:`run_prediction`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from yolact.config import YolactConfig
from yolact.inference.files import (
    check_predict_outputs,
    image_ids_for,
    predict_files,
    read_image_ids,
    resolve_sources,
)
from yolact.inference.forms import ImageForms
from yolact.inference.options import InferenceOptions
from yolact.inference.predictor import load
from yolact.inference.results import SEGMENTATIONS
from yolact.inference.video import VIDEO_SUFFIXES, is_video_source, predict_video


@dataclass(frozen=True)
class PredictJob:
    """One prediction run: ``source`` an image, a folder of images, a video file or a camera index; ``output`` a
    folder of overlays, or for video the annotated video (a folder gets ``<name>.mp4``; a folder of images with a
    video file name here is read as frames); ``json`` the COCO results list; ``image_ids`` a COCO annotation
    file to take the JSON's image ids from, ``segmentation`` its masks' form ("rle" or "polygon"). ``forms``: the
    per-image files (YOLO-seg, labelme, mask PNGs). ``batch``, ``streams`` and ``show`` apply to video."""

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
    check_predict_outputs(job.source, paths, job.output, job.json, [job.weights, job.image_ids], video_file,
                          forms)
    image_ids = None
    if not video:
        image_ids = read_image_ids(job.image_ids, paths) if job.image_ids else image_ids_for(paths)
    predictor = load(job.weights, job.config, job.options)
    if video:
        result = predict_video(predictor, str(job.source), video_file, job.json, batch_size=job.batch,
                               show=job.show, progress=job.progress, streams=job.streams, forms=forms,
                               segmentation=job.segmentation)
        return PredictReport(f"{result.frames} frame(s), {result.detections} detections on {predictor.device} at "
                             f"{result.fps:.1f} fps" + (f"; video in {video_file}" if video_file else "")
                             + (f"; detections in {job.json}" if job.json else ""))
    summary = predict_files(predictor, paths, job.output, job.json, progress=job.progress, image_ids=image_ids,
                            keep_predictions=len(paths) == 1, forms=forms, segmentation=job.segmentation)
    done = len(paths) - len(summary.skipped)
    line = (f"{done} image(s), {summary.num_detections} detections on {predictor.device}"
            + (f"; skipped {len(summary.skipped)} unreadable image(s)" if summary.skipped else "")
            + (f"; overlays in {job.output}" if job.output else "")
            + "".join(f"; {flag[7:]} in {folder}" for flag, folder, _ in (forms.folders() if forms else []))
            + (f"; detections in {job.json} ({summary.image_id_rule})" if job.json else ""))
    lines = [prediction.describe() for prediction in summary.predictions] if job.progress else []
    return PredictReport(line, lines, ok=done > 0)
