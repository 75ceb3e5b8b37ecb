"""COCO-format instance annotations, checked record by record so that bad files fail with one clear line.

The checks go as deep as pycocotools needs: it trusts its input, and on records it does not expect its C code
hangs (NaN polygon coordinates), decodes uninitialised memory or fails to decode (RLE counts that do not cover
the image), or raises whatever its Cython layer hits (wrong types). What passes :func:`validate_coco` is safe to
decode into masks of the image's size.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from yolact.errors import YolactError


class AnnotationError(YolactError):
    """An annotation file is missing, not JSON, or has a malformed record."""


IMAGE_FIELDS = ("id", "file_name", "width", "height")
ANNOTATION_FIELDS = ("image_id", "category_id", "bbox", "segmentation")
MAX_ID = 2**63 - 1  # ids fit in int64, so that code holding them in numpy arrays cannot overflow
# OpenCV's default decoding limits (CV_IO_MAX_IMAGE_WIDTH, CV_IO_MAX_IMAGE_PIXELS): a larger record cannot match a
# readable image, and the bound keeps height * width within the uint32 of pycocotools' RLE.
MAX_IMAGE_SIDE = 1 << 20
MAX_IMAGE_PIXELS = 1 << 30

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 40
_REPR.maxlist = _REPR.maxdict = 6
_REPR.maxlevel = 2
# Characters that would break a one-line message (str.splitlines splits on all of these), and NUL.
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def printable_path(text: str) -> bool:
    """``text`` can be a path printed in a one-line message: no control characters, and valid Unicode (a lone
    surrogate, which JSON's and YAML's escapes allow, cannot be printed)."""
    if _LINE_BREAKING.search(text):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def short_repr(value: Any) -> str:
    """``value`` for a one-line message: a repr with strings escaped and long or deep values cut short."""
    return _REPR.repr(value)


def _json_kind(value: Any) -> str:
    """What ``value`` is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else type(value).__name__


_JSON_NUMBERS = frozenset({int, float})


def _is_int(value: Any) -> bool:
    return type(value) is int  # as JSON gives integers; not bool, which is an int to isinstance


def _finite_numbers(values: list) -> bool:
    """All of ``values`` are finite numbers as JSON gives them: int or float, not booleans, strings, null or lists.

    Checked at C speed (a COCO file has millions of polygon coordinates): NaN and infinities survive a sum. So does
    an overflow to infinity, of values far beyond any image, which the callers reject anyway.
    """
    if not set(map(type, values)) <= _JSON_NUMBERS:
        return False
    try:
        return math.isfinite(sum(values))
    except OverflowError:  # an integer beyond float's range
        return False


def near_image_side(low: float, high: float, size: int) -> bool:
    """[low, high] lies within the image side ``size`` extended by ``size`` each way.

    pycocotools clips polygons to the image and the transforms clip boxes, so an overshoot (rounding, as in COCO's
    own files, or an object cut by the border) is harmless; beyond this the record describes some other image, and
    absurd coordinates would make pycocotools' rasteriser allocate in proportion to them.
    """
    return -size <= low and high <= 2 * size


@dataclass
class CocoDataset:
    """A COCO instances file and the folder of its images."""

    annotation_path: Path
    images_dir: Path
    coco: COCO  # pycocotools' index over the validated records

    @property
    def image_ids(self) -> list[int]:
        return sorted(self.coco.getImgIds())

    @property
    def categories(self) -> list[dict[str, Any]]:
        return [self.coco.cats[i] for i in sorted(self.coco.cats)]

    def image_path(self, image_id: int) -> Path:
        return self.images_dir / self.coco.imgs[image_id]["file_name"]

    def used_category_ids(self) -> set[int]:
        return {ann["category_id"] for ann in self.coco.dataset["annotations"]}


def _record_name(kind: str, index: int, record: Any) -> str:
    if isinstance(record, dict) and "id" in record:
        record_id = record["id"]
        # Ints as they are (the common case, and cheap: this runs for every record), anything else cut short.
        return f"{kind}[{index}] (id {record_id if type(record_id) is int else short_repr(record_id)})"
    return f"{kind}[{index}]"


def _check_id(value: Any, path: Path, where: str, field: str = "id") -> int:
    if not _is_int(value) or not 0 <= value <= MAX_ID:
        raise AnnotationError(f"{path}: {where} has {field} {short_repr(value)}; expected a whole number from 0 to "
                              "2^63-1")
    return value


def validate_coco(data: Any, path: Path) -> dict[str, Any]:
    """Check the structure pycocotools and the training pipeline rely on; fill in what COCO lets be implied
    (iscrowd, area, ids). Raises :class:`AnnotationError` naming ``path`` and the first bad record."""
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise AnnotationError(f"{path}: missing list '{key}' (a COCO instances file has images, annotations "
                                  "and categories)")
    category_ids = _check_categories(data["categories"], path)
    images = _check_images(data["images"], path)
    _check_annotations(data["annotations"], images, category_ids, path)
    return data


def _check_categories(categories: list, path: Path) -> set[int]:
    ids: set[int] = set()
    for i, category in enumerate(categories):
        where = _record_name("categories", i, category)
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            raise AnnotationError(f"{path}: {where} needs 'id' and 'name'")
        category_id = _check_id(category["id"], path, where)
        name = category["name"]
        if not isinstance(name, str) or not name.strip():
            raise AnnotationError(f"{path}: {where} has name {short_repr(name)}; expected a non-empty string")
        if category_id in ids:
            raise AnnotationError(f"{path}: {where} repeats category id {category_id}; give each category its own id")
        ids.add(category_id)
    return ids


def _open_record(kind: str, index: int, record: Any, fields: Sequence[str], path: Path) -> str:
    """The name of record ``index`` of ``kind`` for messages, once it is an object holding every field."""
    where = _record_name(kind, index, record)
    if not isinstance(record, dict):
        raise AnnotationError(f"{path}: {where} is {_json_kind(record)}; expected an object with {', '.join(fields)}")
    missing = [f for f in fields if f not in record]
    if missing:
        raise AnnotationError(f"{path}: {where} has no '{missing[0]}'")
    return where


def _check_images(records: list, path: Path) -> dict[int, dict]:
    images: dict[int, dict] = {}
    for i, image in enumerate(records):
        where = _open_record("images", i, image, IMAGE_FIELDS, path)
        image_id = _check_id(image["id"], path, where)
        name = image["file_name"]
        # No image file has control characters or lone surrogates in its name, and the name is printed in errors.
        if not isinstance(name, str) or not name or not printable_path(name):
            raise AnnotationError(f"{path}: {where} has file_name {short_repr(name)}; expected the image's file "
                                  "name (relative to the image folder)")
        for field in ("width", "height"):
            value = image[field]
            if not _is_int(value) or not 1 <= value <= MAX_IMAGE_SIDE:
                raise AnnotationError(f"{path}: {where} has {field} {short_repr(value)}; expected the image's "
                                      f"{field} in pixels, a whole number from 1 to {MAX_IMAGE_SIDE}")
        if image["width"] * image["height"] > MAX_IMAGE_PIXELS:
            raise AnnotationError(f"{path}: {where} is {image['width']}x{image['height']}, more pixels than OpenCV "
                                  "reads; fix its width and height")
        if image_id in images:
            raise AnnotationError(f"{path}: {where} repeats an image id; give each image its own id")
        images[image_id] = image
    return images


def _check_annotations(annotations: list, images: dict[int, dict], category_ids: set[int], path: Path) -> None:
    ids: set[int] = set()
    unnumbered = []
    for i, ann in enumerate(annotations):
        where = _open_record("annotations", i, ann, ANNOTATION_FIELDS, path)
        if "id" in ann:
            ann_id = _check_id(ann["id"], path, where)
            if ann_id in ids:
                raise AnnotationError(f"{path}: {where} repeats annotation id {ann_id}; give each annotation its own "
                                      "id (or leave 'id' out to have one assigned)")
            ids.add(ann_id)
        else:
            unnumbered.append(ann)
        # _is_int first: a float 1.0 or a boolean would find image 1 in the dict.
        if not _is_int(ann["image_id"]) or ann["image_id"] not in images:
            raise AnnotationError(f"{path}: {where} refers to image id {short_repr(ann['image_id'])}, which is not "
                                  "in 'images'")
        if not _is_int(ann["category_id"]) or ann["category_id"] not in category_ids:
            raise AnnotationError(f"{path}: {where} has category id {short_repr(ann['category_id'])}, which is not "
                                  "in 'categories'; add it there or fix the record")
        image = images[ann["image_id"]]
        iscrowd = ann.setdefault("iscrowd", 0)
        if not (_is_int(iscrowd) and iscrowd in (0, 1)):
            raise AnnotationError(f"{path}: {where} has iscrowd {short_repr(iscrowd)}; expected 0 or 1")
        problem = _bbox_problem(ann["bbox"], image)
        if problem:
            raise AnnotationError(f"{path}: {where} has {problem}")
        problem = _segmentation_problem(ann["segmentation"], image)
        if problem:
            raise AnnotationError(f"{path}: {where} has a malformed segmentation{problem}")
        if "area" in ann:
            if not (_finite_numbers([ann["area"]]) and ann["area"] >= 0):
                raise AnnotationError(f"{path}: {where} has area {short_repr(ann['area'])}; expected a non-negative "
                                      "number (or leave it out to have it computed)")
        else:
            rle = _to_rle(ann["segmentation"], image["height"], image["width"])
            ann["area"] = float(mask_utils.area(rle))
    next_id = 1 + max(ids, default=0)
    for ann in unnumbered:
        ann["id"] = next_id
        next_id += 1


def _bbox_problem(bbox: Any, image: dict) -> str | None:
    """What is wrong with ``bbox`` ("a malformed bbox ...; expected ..."), or None."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and _finite_numbers(bbox)):
        return f"a malformed bbox {short_repr(bbox)}; expected [x, y, width, height], four finite numbers"
    x, y, w, h = bbox
    # A zero width or height is kept: COCO has such boxes, and training drops boxes under 4 px anyway.
    if w < 0 or h < 0:
        return f"a malformed bbox {short_repr(bbox)} with a negative width or height; expected [x, y, width, height]"
    if not (near_image_side(x, x + w, image["width"]) and near_image_side(y, y + h, image["height"])):
        return (f"a bbox {short_repr(bbox)} far outside its {image['width']}x{image['height']} image; fix the box "
                "or the image's width and height")
    return None


def _segmentation_problem(segmentation: Any, image: dict) -> str | None:
    """What is wrong with ``segmentation`` (text to follow "has a malformed segmentation"), or None."""
    height, width = image["height"], image["width"]
    if isinstance(segmentation, list) and segmentation:
        for k, polygon in enumerate(segmentation):
            if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
                return (f": polygon {k} is {short_repr(polygon)}; a polygon is a list [x1, y1, x2, y2, ...] of at "
                        "least 3 points")
            if not _finite_numbers(polygon):
                return (f": polygon {k} has a coordinate that is not a finite number: {short_repr(polygon)}; fix "
                        "or remove the polygon")
            xs, ys = polygon[0::2], polygon[1::2]
            if not (near_image_side(min(xs), max(xs), width) and near_image_side(min(ys), max(ys), height)):
                return (f": polygon {k} lies far outside its {width}x{height} image; fix the polygon or the "
                        "image's width and height")
        return None
    if isinstance(segmentation, dict) and "size" in segmentation and "counts" in segmentation:
        return _rle_problem(segmentation, height, width)
    return ("; expected polygons [[x1, y1, x2, y2, ...], ...] or an RLE {'size': [h, w], 'counts': ...}, got "
            f"{short_repr(segmentation)}")


def _rle_problem(rle: dict, height: int, width: int) -> str | None:
    # pycocotools decodes an RLE at its own size, whatever the image's: a mask of another size cannot be stacked.
    size = rle["size"]
    if size != [height, width] or not all(_is_int(v) for v in size):
        return (f": its RLE size {short_repr(size)} is not the image's [height, width] [{height}, {width}]; encode "
                "the mask at the image's size")
    counts = rle["counts"]
    if isinstance(counts, bytes):  # pycocotools' own encode() output, from Python callers
        counts = counts.decode("latin-1")
    if isinstance(counts, list):
        if not (set(map(type, counts)) <= {int} and min(counts, default=0) >= 0 and max(counts, default=0) < 2**32):
            return f": its RLE counts {short_repr(counts)} must be run lengths, whole numbers from 0"
        runs = counts
    elif isinstance(counts, str):
        runs = _rle_string_runs(counts)
        if runs is None:
            return (f": its RLE counts {short_repr(counts)} is not a compressed RLE string as pycocotools' encode "
                    "writes it; re-encode the mask")
    else:
        return (f": its RLE counts is {_json_kind(counts)}; expected a list of run lengths or a compressed RLE "
                "string")
    # Runs that do not cover the image exactly: pycocotools leaves the rest uninitialised, or refuses to decode.
    total = sum(runs)
    if total != height * width:
        return (f": its RLE counts cover {total} pixels, not the image's {height}x{width} = {height * width}; "
                "encode the mask at the image's size")
    return None


def _rle_string_runs(counts: str) -> list[int] | None:
    """The run lengths in pycocotools' compressed RLE string (a port of its C rleFrString), or None where that C
    code would read past the string or overflow: a character outside '0'..'o', a value cut short, a value
    beyond 30 bits, or a negative run."""
    runs: list[int] = []
    value = shift = 0
    for char in counts:
        c = ord(char) - 48
        if not 0 <= c < 64:
            return None
        value |= (c & 0x1F) << shift
        shift += 5
        if c & 0x20:  # more characters to come for this value
            if shift >= 35:  # an 8th character: past the C code's 32-bit shift
                return None
            continue
        if shift == 35 and c != 0:  # a 7th character other than '0' overflows the C code's int
            return None
        if c & 0x10:
            value |= -1 << shift
        if len(runs) > 2:  # from the 4th run on, values are differences to the run two before
            value += runs[-2]
        if not 0 <= value < 2**32:
            return None
        runs.append(value)
        value = shift = 0
    return None if shift else runs


def _to_rle(segmentation: Any, height: int, width: int) -> dict:
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def coco_from_dict(data: dict[str, Any]) -> COCO:
    """A pycocotools COCO index over ``data``, without its console chatter."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def read_utf8(path: Path, what: str) -> str:
    """A text file's content; an unreadable file or bytes that are not UTF-8 are one line naming the file (and the
    line of the first bad byte). A byte-order mark, as some Windows editors write, is no error."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise AnnotationError(f"{path}:{line}: {what} is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as "
                              "UTF-8") from None


def load_coco(annotation_path: str | Path, images_dir: str | Path) -> CocoDataset:
    """Read and check a COCO instances file; raise :class:`AnnotationError` naming the file and the record."""
    path = Path(annotation_path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such annotation file; check --ann")
    if not Path(images_dir).is_dir():
        raise AnnotationError(f"{images_dir}: no such image folder; check --images")
    text = read_utf8(path, "the annotation file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise AnnotationError(f"{path}: JSON nested too deeply to read; is this a COCO instances file?") from None
    except ValueError:  # the only other one: an integer of more digits than Python converts
        raise AnnotationError(f"{path}: not valid JSON here (an integer too long to read); fix the number") from None
    return CocoDataset(path, Path(images_dir), coco_from_dict(validate_coco(data, path)))
