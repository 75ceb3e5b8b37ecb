"""Batch prediction on a Ray cluster with Ray Data (the ``ray`` extra: ``pip install 'yolact[ray]'``).

Ray schedules the work, streams the images and restarts failed workers; this module only says what a worker
does with a batch::

    import ray
    from yolact.integrations.ray import YolactBatchPredictor, read_folder, write_coco_results

    images = read_folder("photos/")  # path and image_id per image, numbered as `yolact predict` numbers them
    detections = images.map_batches(
        YolactBatchPredictor, fn_constructor_kwargs={"weights": "yolact_base_54_800000.pth"},
        batch_size=8, concurrency=4, num_gpus=1,  # 4 workers with a GPU each; on CPUs: num_gpus=0
    )
    detections.write_parquet("detections/")  # or write_json: a JSON line per image
    write_coco_results(detections, "all.json")  # one COCO results list, as `yolact predict --json` writes it

The rows may also come from ``ray.data.read_binary_files(..., include_paths=True)`` (any storage Ray reads:
S3, GCS, HDFS), with the image ids then taken from the numbers in the file names, or from an ``image_id``
column of your own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from yolact.config import YolactConfig
from yolact.data.images import IMAGE_SUFFIXES, decode_image, list_images, read_image
from yolact.errors import ImageReadError, YolactError
from yolact.inference.files import image_ids_for, read_image_ids
from yolact.inference.options import InferenceOptions
from yolact.inference.predictor import load
from yolact.inference.results import SEGMENTATIONS
from yolact.outputs import JsonListWriter, check_output_file

RESULT_COLUMNS = ("path", "file_name", "image_id", "records", "error")


def _require_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise YolactError("Ray Data is not installed; pip install 'yolact[ray]'") from None
    return ray


def read_folder(folder: str | Path, image_ids: str | Path | None = None) -> Any:
    """The images directly inside ``folder`` as a Ray Dataset with a ``path`` and an ``image_id`` per row: the
    files ``yolact predict`` lists, in its order, with its ids (``image_ids``: a COCO annotation file, as
    ``--image-ids``). Workers read the files themselves, so every node must see ``folder`` (a shared disk)."""
    ray = _require_ray()
    folder = Path(folder)
    if not folder.is_dir():
        raise YolactError(f"{folder}: no such folder; give a folder of images")
    paths = list_images(folder)
    if not paths:
        raise YolactError(f"{folder}: holds no image files ({', '.join(IMAGE_SUFFIXES)}); give a folder of images")
    ids = read_image_ids(Path(image_ids), paths) if image_ids is not None else image_ids_for(paths)
    return ray.data.from_items([{"path": str(path), "image_id": image_id}
                                for path, image_id in zip(paths, ids.ids, strict=True)])


def _id_from_name(path: str) -> int:
    found = re.findall(r"\d+", Path(path).stem)
    if not found:
        raise YolactError(f"{path}: no image_id column and no number in the file name; read the images with "
                          "yolact.integrations.ray.read_folder, or add an image_id column")
    return int(found[-1])


class YolactBatchPredictor:
    """A callable class for ``Dataset.map_batches``: each Ray worker loads the model once, then turns batches of
    images into COCO records.

    ``weights``, ``config``, ``options`` and keyword overrides are :func:`yolact.load`'s (default options:
    score threshold 0.05 and top 100, as ``yolact predict``). ``segmentation``: "rle" (compressed RLE, exact)
    or "polygon".

    A batch needs a ``path`` column, and the image in one of: ``bytes`` (the encoded file, as
    ``ray.data.read_binary_files`` gives it), ``image`` (RGB uint8 arrays, as ``ray.data.read_images`` gives them;
    that decoder may differ from OpenCV's by a grey level), or neither (the worker reads ``path``). ``image_id`` is
    taken from its column, else from the last number in the file name.

    Each row out: ``path``, ``file_name``, ``image_id``, ``records`` (the image's COCO results records, as
    ``yolact predict --json`` writes them) and ``error`` (empty, or why the image could not be read: its records
    are then empty, and :func:`write_coco_results` reports it).

    The records are ``yolact predict``'s exactly with ``batch_size=1`` and a worker running as many threads. A
    batch of several images (faster on a GPU) goes through the network at once, which can move the scores in
    their last bits, as ``yolact predict --batch`` does.
    """

    def __init__(self, weights: str | Path, config: YolactConfig | str | None = None,
                 options: InferenceOptions | None = None, segmentation: str = "rle", **overrides: Any) -> None:
        if segmentation not in SEGMENTATIONS:
            raise ValueError(f"segmentation {segmentation!r}: choose one of {', '.join(SEGMENTATIONS)}")
        self.predictor = load(weights, config, options, **overrides)
        self.segmentation = segmentation

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, list[Any]]:
        paths = [str(path) for path in batch["path"]]
        ids = [int(i) for i in batch["image_id"]] if "image_id" in batch else [_id_from_name(p) for p in paths]
        images: list[np.ndarray | None] = []
        errors: list[str] = []
        for row, path in enumerate(paths):
            try:
                images.append(self._image(batch, row, path))
                errors.append("")
            except ImageReadError as exc:
                images.append(None)
                errors.append(str(exc))
        readable = [row for row, image in enumerate(images) if image is not None]
        predictions = self.predictor.predict_arrays([images[row] for row in readable],
                                                    [paths[row] for row in readable]) if readable else []
        records: list[list[dict[str, Any]]] = [[] for _ in paths]
        for row, prediction in zip(readable, predictions, strict=True):
            records[row] = prediction.to_coco(ids[row], self.segmentation)
        return {"path": paths, "file_name": [Path(p).name for p in paths], "image_id": ids, "records": records,
                "error": errors}

    @staticmethod
    def _image(batch: Mapping[str, np.ndarray], row: int, path: str) -> np.ndarray:
        if "bytes" in batch:
            return decode_image(batch["bytes"][row], path)
        if "image" in batch:
            image = np.asarray(batch["image"][row])
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ImageReadError(f"{path}: expected an RGB uint8 image [H, W, 3], got {image.dtype} "
                                     f"{list(image.shape)}; read the images with mode='RGB'")
            return np.ascontiguousarray(image[:, :, ::-1])
        return read_image(path)


def write_coco_results(detections: Any, path: str | Path) -> tuple[int, list[str]]:
    """Write the rows of ``detections`` (a Dataset of :class:`YolactBatchPredictor` rows) to ``path`` as one
    COCO results list, in path order: the file ``yolact predict --json`` writes for the same folder. Returns the
    number of images written and the errors of those that could not be read."""
    path = check_output_file(path, "write_coco_results")
    errors: list[str] = []
    images = 0
    with JsonListWriter(path) as results:
        for row in detections.sort("path").iter_rows():
            if row["error"]:
                errors.append(row["error"])
                continue
            results.extend(list(row["records"] or []))
            images += 1
    return images, errors
