"""What ``yolact view`` browses: the images of one folder, addressed by index only, with the records of one or two
COCO results files and, optionally, a COCO annotation file's ground truth. Read once, before the server starts."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yolact.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES
from yolact.data.images import list_images
from yolact.errors import YolactError
from yolact.inference.files import image_ids_for


@dataclass(frozen=True)
class GalleryImage:
    path: Path
    image_id: int


@dataclass
class Gallery:
    """``images`` by index; per results file (``result_names``), the records of each image id; ``ground_truth``
    the annotations of each image id (None: no annotation file); ``categories`` id -> name."""

    images: list[GalleryImage]
    result_names: list[str]
    results: list[dict[int, list[dict[str, Any]]]]
    categories: dict[int, str]
    ground_truth: dict[int, list[dict[str, Any]]] | None = None
    unmatched: int = 0  # records whose image id is not among the images
    notes: list[str] = field(default_factory=list)

    def manifest(self) -> dict[str, Any]:
        return {
            "mode": "view",
            "images": [{"index": i, "file_name": image.path.name, "image_id": image.image_id}
                       for i, image in enumerate(self.images)],
            "results": self.result_names,
            "ground_truth": self.ground_truth is not None,
            "categories": {str(k): v for k, v in self.categories.items()},
        }

    def image(self, index: int) -> GalleryImage | None:
        return self.images[index] if 0 <= index < len(self.images) else None


def _read_json(path: Path, flag: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise YolactError(f"{flag} {path}: no such file; check the path") from None
    except IsADirectoryError:
        raise YolactError(f"{flag} {path}: a folder; give a JSON file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise YolactError(f"{flag} {path}: not a JSON file ({str(exc).splitlines()[0]})") from None


def _records(path: Path, flag: str) -> list[dict[str, Any]]:
    data = _read_json(path, flag)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, list):
        raise YolactError(f"{flag} {path}: not a COCO results list; give the file `yolact predict --json` wrote")
    for n, record in enumerate(data):
        if not (isinstance(record, dict) and isinstance(record.get("image_id"), int)
                and isinstance(record.get("category_id"), int) and isinstance(record.get("bbox"), list)
                and len(record["bbox"]) == 4):
            raise YolactError(f"{flag} {path}: record {n} lacks an integer image_id, category_id or a 4-number bbox; "
                              "give a COCO results list")
    return data


def _by_image(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[record["image_id"]].append(record)
    for group in grouped.values():
        group.sort(key=lambda r: -float(r.get("score", 1.0)))
    return dict(grouped)


def open_gallery(results: Path, images: Path, annotations: Path | None = None, compare: Path | None = None
                 ) -> Gallery:
    """The gallery ``yolact view`` serves; every file is checked here, with one line naming what is wrong."""
    images = Path(images)
    if not images.is_dir():
        raise YolactError(f"--images {images}: no such folder; give the folder of the images the results are for")
    root = images.resolve()
    result_files = [(results, "RESULTS")] + ([(compare, "--compare")] if compare is not None else [])
    grouped = [_by_image(_records(path, flag)) for path, flag in result_files]
    categories: dict[int, str] = dict(zip(COCO_CATEGORY_IDS, COCO_CLASSES, strict=True))
    ground_truth = None
    if annotations is not None:
        data = _read_json(annotations, "--ann")
        if not (isinstance(data, dict) and isinstance(data.get("images"), list)):
            raise YolactError(f"--ann {annotations}: has no 'images' list; give a COCO annotation file")
        categories = {c["id"]: str(c.get("name", c["id"])) for c in data.get("categories", [])
                      if isinstance(c, dict) and isinstance(c.get("id"), int)}
        listed = []
        for record in data["images"]:
            if not (isinstance(record, dict) and isinstance(record.get("id"), int)
                    and isinstance(record.get("file_name"), str)):
                raise YolactError(f"--ann {annotations}: an image record lacks an integer id or a file_name")
            path = (root / record["file_name"]).resolve()
            # Only files inside the folder are served, whatever a file name in the annotation file says.
            if path.is_relative_to(root) and path.is_file():
                listed.append(GalleryImage(path, record["id"]))
        ground_truth = _by_image([a for a in data.get("annotations", []) if isinstance(a, dict)
                                  and isinstance(a.get("image_id"), int) and isinstance(a.get("bbox"), list)
                                  and isinstance(a.get("category_id"), int)])
    else:
        paths = list_images(root)
        listed = [GalleryImage(p, i) for p, i in zip(paths, image_ids_for(paths).ids, strict=True)]
    if not listed:
        raise YolactError(f"--images {images}: no image files found there"
                          + (" that the annotation file lists" if annotations else ""))
    known = {image.image_id for image in listed}
    unmatched = sum(len(records) for group in grouped for image_id, records in group.items() if image_id not in known)
    names = [Path(path).name for path, _ in result_files]
    return Gallery(listed, names, grouped, categories, ground_truth, unmatched)
