"""Pascal SBD (the Semantic Boundaries Dataset, ``benchmark_RELEASE/dataset``) read as COCO instances, as the
authors' ``scripts/convert_sbd.py`` converts it: one compressed RLE per instance, the box from the mask's extent
(``[x_min, y_min, x_max - x_min, y_max - y_min]``, without +1), the area its pixel count, the 20 Pascal
categories with ids 1..20.

The release holds ``img/<name>.jpg``, ``inst/<name>.mat`` (a ``GTinst`` struct: ``Segmentation``, an H x W map
of instance numbers 1..N, 0 the background; ``Categories``, the N instances' classes 1..20) and the split lists
``train.txt`` and ``val.txt``. Image ids count ``train.txt`` first, then ``val.txt``, from 1, as the authors'
script numbers them, so that results files match theirs. Value 255 in an instance map (VOC's "void" border) is
no instance; an instance with no pixel is left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from yolact.data.class_lists import PASCAL_CATEGORY_IDS, PASCAL_CLASSES
from yolact.data.coco import AnnotationError
from yolact.io import write_json
from yolact.outputs import check_output_file, os_error_line

SPLITS = ("train", "val")
VOID = 255


def sbd_root(folder: str | Path) -> Path:
    """The folder holding ``img/``, ``inst/`` and the split lists: ``folder`` itself, or its ``dataset/`` (the
    release's top folder, benchmark_RELEASE, given)."""
    folder = Path(folder)
    for candidate in (folder, folder / "dataset"):
        if (candidate / "inst").is_dir() and (candidate / "img").is_dir():
            return candidate
    if not folder.is_dir():
        raise AnnotationError(f"{folder}: no such folder; give the SBD folder (benchmark_RELEASE/dataset)")
    raise AnnotationError(f"{folder}: not an SBD folder (no img/ and inst/ in it or in dataset/); give "
                          "benchmark_RELEASE/dataset")


def _split_names(root: Path, split: str) -> list[str]:
    path = root / f"{split}.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such split list; SBD has train.txt and val.txt beside img/ and inst/"
                              ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = os_error_line(exc) if isinstance(exc, OSError) else f"{path}: not a text file"
        raise AnnotationError(f"{reason}; give the SBD split list (an image name per line)") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    for number, name in enumerate(names, 1):
        if "/" in name or "\\" in name or name in (".", ".."):
            raise AnnotationError(f"{path}:{number}: {name!r} is not an image name; a line holds a name such as "
                                  "2008_000002")
    if len(set(names)) != len(names):
        repeated = next(n for n in names if names.count(n) > 1)
        raise AnnotationError(f"{path}: {repeated!r} is listed twice; list each image once")
    return names


def _read_instances(path: Path) -> tuple[np.ndarray, list[int]]:
    """The instance map and the instances' classes of one ``inst/<name>.mat``."""
    import scipy.io

    if not path.is_file():
        raise AnnotationError(f"{path}: no such file; every listed image needs its inst/<name>.mat")
    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError... for a file it cannot read
        reason = " ".join(str(exc).split())[:100] or type(exc).__name__
        raise AnnotationError(f"{path}: cannot read it as a MATLAB file ({reason}); replace it with the SBD "
                              "release's") from None
    gt = mat.get("GTinst")
    segmentation = getattr(gt, "Segmentation", None)
    categories = getattr(gt, "Categories", None)
    if gt is None or segmentation is None or categories is None:
        raise AnnotationError(f"{path}: has no GTinst struct with Segmentation and Categories; is this an SBD "
                              "inst/ file?")
    segmentation = np.asarray(segmentation)
    if segmentation.ndim != 2 or segmentation.size == 0 or not np.issubdtype(segmentation.dtype, np.number):
        raise AnnotationError(f"{path}: GTinst.Segmentation is {segmentation.dtype} {list(segmentation.shape)}; "
                              "expected an H x W map of instance numbers")
    classes = np.atleast_1d(np.asarray(categories)).ravel()
    if classes.size and (not np.issubdtype(classes.dtype, np.number) or np.any(classes != np.round(classes))):
        raise AnnotationError(f"{path}: GTinst.Categories holds {classes.dtype} values; expected class numbers 1..20")
    labels = [int(c) for c in classes]
    bad = [c for c in labels if not 1 <= c <= len(PASCAL_CLASSES)]
    if bad:
        raise AnnotationError(f"{path}: GTinst.Categories has class {bad[0]}, outside 1..{len(PASCAL_CLASSES)} "
                              "(the Pascal classes); fix the file")
    values = np.unique(segmentation)
    out_of_range = [int(v) for v in values if v != VOID and not 0 <= v <= len(labels)]
    if out_of_range:
        raise AnnotationError(f"{path}: GTinst.Segmentation has instance {out_of_range[0]} but Categories lists "
                              f"{len(labels)} instance(s); the map and the list must agree")
    return segmentation, labels


def _bbox(mask: np.ndarray) -> list[int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0]), int(rows[-1] - rows[0])]


def sbd_to_coco(folder: str | Path, split: str, progress: bool = True) -> dict[str, Any]:
    """Split ``split`` ("train" or "val") of the SBD folder as a COCO instances dict; ``file_name`` is relative
    to the folder's ``img/``."""
    if split not in SPLITS:
        raise ValueError(f"--split {split!r}: SBD's splits are {' and '.join(SPLITS)}")
    root = sbd_root(folder)
    names = _split_names(root, split)
    first_id = 1
    if split == "val" and (root / "train.txt").is_file():
        first_id += len(_split_names(root, "train"))
    images, annotations = [], []
    for offset, name in enumerate(tqdm(names, desc=f"SBD {split}", unit="img", disable=not progress)):
        image_path = root / "img" / f"{name}.jpg"
        if not image_path.is_file():
            raise AnnotationError(f"{image_path}: no such image; {split}.txt lists {name!r}, whose image must be in "
                                  "img/")
        segmentation, labels = _read_instances(root / "inst" / f"{name}.mat")
        image_id = first_id + offset
        height, width = segmentation.shape
        images.append({"id": image_id, "file_name": f"{name}.jpg", "width": int(width), "height": int(height)})
        for index, category in enumerate(labels, 1):
            mask = segmentation == index
            if not mask.any():
                continue
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "segmentation": {"size": [int(height), int(width)],
                                                 "counts": rle["counts"].decode("ascii")},
                                "area": float(mask.sum()), "bbox": _bbox(mask), "iscrowd": 0})
    categories = [{"id": i, "name": n, "supercategory": "none"}
                  for i, n in zip(PASCAL_CATEGORY_IDS, PASCAL_CLASSES, strict=True)]
    return {"info": {"description": f"Pascal SBD {split}", "year": 2012}, "images": images,
            "annotations": annotations, "categories": categories}


def convert_sbd(folder: str | Path, split: str, out_json: str | Path, progress: bool = True) -> Path:
    """``yolact convert --from sbd``: write :func:`sbd_to_coco`'s dict to ``out_json`` atomically, after checking
    that it can be written and is none of the inputs."""
    root = sbd_root(folder)
    check_output_file(out_json, "--output", [root / "img", root / "inst", *(root / f"{s}.txt" for s in SPLITS)])
    return write_json(out_json, sbd_to_coco(root, split, progress))
