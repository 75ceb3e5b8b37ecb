"""Property-based fuzzing of the dataset loaders (COCO JSON, YOLO-seg labels, dataset YAML).

The property, for any input built by mutating a small valid dataset: loading either succeeds, or raises one
:class:`YolactError` whose message is a single line naming the file (and, for a bad record, the record). What
loads must also load as training samples: validation is the only guard in front of pycocotools' C code, which
hangs, crashes or returns garbage masks on records it does not expect.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from yolact.config import BackboneConfig
from yolact.data.augment import EvalTransform, TrainTransform
from yolact.data.coco import AnnotationError, CocoDataset, load_coco
from yolact.data.datasets import InstanceDataset
from yolact.data.splits import DataSplit, read_dataset_yaml
from yolact.data.yolo import convert_yolo, yolo_to_coco
from yolact.errors import YolactError

S = 32  # a tiny network input: the samples only have to load
TRANSFORMS = (EvalTransform(S, BackboneConfig()), TrainTransform(S, BackboneConfig()))
# A modest number of examples: the whole file runs in well under a minute on two slow cores.
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

IMAGES = {"a.jpg": (16, 24), "b.png": (20, 20)}  # name: (height, width)
RECORD = re.compile(r"\b(images|annotations|categories)\[\d+\]")
# Messages about the whole COCO file, which has no record to name.
COCO_FILE_LEVEL = ("not valid JSON", "UTF-8", "JSON object", "missing list", "nested too deeply")


def check_message(error: YolactError, *names: str) -> str:
    """The error's message: one line naming one of ``names``."""
    message = str(error)
    assert message and len(message.splitlines()) == 1 and "\n" not in message and "\r" not in message, message
    message.encode("utf-8")  # printable: no lone surrogates
    assert any(name in message for name in names), f"{message!r} names none of {names}"
    return message


def write_images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, (height, width) in IMAGES.items():
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    return folder


def load_samples(dataset: CocoDataset, *names: str) -> None:
    """Every sample through both transforms: it loads with finite values, or fails with one line naming a file
    (one of ``names``, the annotation file or the image's file, which an absolute file_name puts anywhere)."""
    names = (*names, str(dataset.annotation_path), *(str(dataset.image_path(i)) for i in dataset.image_ids))
    for transform in TRANSFORMS:
        instances = InstanceDataset(dataset, transform)
        for index in range(len(instances)):
            try:
                image, target = instances[(index, index)]
            except YolactError as error:
                check_message(error, *names)
                continue
            assert image.shape == (3, S, S) and torch.isfinite(image).all()
            assert torch.isfinite(target.boxes_xyxy).all() and torch.isfinite(target.crowd_boxes_xyxy).all()
            assert target.masks.shape == (len(target.labels), S, S)
            assert target.masks.numel() == 0 or int(target.masks.max()) <= 1  # not garbage memory


# --- values --------------------------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(-3, 40),
    st.sampled_from([2**31, 2**32 + 1, 2**63, -(2**63) - 1, 10**30, 0.5, -0.0, 1e308, -1e308, 1e-300]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=6),
                    st.sampled_from(["", "1", "a.jpg", "b.png", "missing.jpg", "ann.json", "x\ny", "0o"]))
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["id", "size", "counts", "name", ""]) | st.text(max_size=3), children,
                      max_size=3),
    max_leaves=6,
)
COORDS = st.one_of(st.floats(-30, 60), st.integers(-5, 30), NUMBERS, SCALARS)


@st.composite
def polygon(draw: st.DrawFn) -> list:
    """Mostly a plausible polygon (any length, coordinates near the image), often with one bad coordinate."""
    points: list = draw(st.lists(st.floats(-2, 26) | st.integers(0, 24), min_size=0, max_size=10))
    if points and draw(st.booleans()):
        points[draw(st.integers(0, len(points) - 1))] = draw(COORDS)
    return points


POLYGON = polygon() | st.lists(COORDS, max_size=9)
# Characters of pycocotools' compressed RLE ('0'..'o') and a few outside it.
RLE_CHARS = st.text(st.characters(min_codepoint=40, max_codepoint=120) | st.sampled_from("\x00é"), max_size=12)


def runs(mask: np.ndarray) -> list[int]:
    """pycocotools' uncompressed RLE counts of ``mask``: run lengths in column-major order, zeros first."""
    flat = mask.ravel(order="F")
    lengths = np.diff(np.r_[0, np.flatnonzero(np.diff(flat)) + 1, flat.size]).tolist()
    return [0, *lengths] if flat[0] else lengths


@st.composite
def rle(draw: st.DrawFn) -> dict:
    """RLEs of every kind: right or wrong size, compressed or not, counts that cover the mask or do not."""
    height, width = draw(st.sampled_from([(16, 24), (20, 20), (24, 16), (1, 1)]))
    rng = np.random.default_rng(draw(st.integers(0, 100)))
    mask = np.asfortranarray(rng.random((height, width)) < draw(st.sampled_from([0.0, 0.3, 1.0])), dtype=np.uint8)
    string = mask_utils.encode(mask)["counts"].decode("ascii")
    counts: Any = string if draw(st.booleans()) else runs(mask)
    if draw(st.booleans()):
        counts = draw(st.one_of(
            RLE_CHARS, st.lists(st.integers(-5, 400) | NUMBERS, max_size=6), VALUES,
            st.sampled_from([string[:-1], string + "0", string[1:], "0" + string, [*runs(mask), 1], runs(mask)[1:],
                             [-1, *runs(mask)[1:]]])))
    size: Any = [height, width]
    if draw(st.booleans()):
        size = draw(st.one_of(st.lists(st.integers(-1, 30) | NUMBERS, max_size=3), VALUES))
    return {"size": size, "counts": counts}


SEGMENTATIONS = st.one_of(st.lists(POLYGON, max_size=3), rle(), VALUES)
BBOXES = st.one_of(st.lists(COORDS, min_size=4, max_size=4), st.lists(COORDS, max_size=5), VALUES)
WEIRD: dict[str, dict[str, st.SearchStrategy]] = {
    "images": {"id": NUMBERS | SCALARS, "file_name": SCALARS | VALUES, "width": NUMBERS | SCALARS,
               "height": NUMBERS | SCALARS},
    "annotations": {"id": NUMBERS | SCALARS, "image_id": NUMBERS | SCALARS, "category_id": NUMBERS | SCALARS,
                    "bbox": BBOXES, "segmentation": SEGMENTATIONS, "iscrowd": NUMBERS | SCALARS,
                    "area": NUMBERS | SCALARS},
    "categories": {"id": NUMBERS | SCALARS, "name": SCALARS | VALUES},
}
# Values that may well pass validation: sizes that differ from the image file, missing image files, boxes of zero
# width or beyond the border, polygons and RLEs of another size.
PLAUSIBLE: dict[str, dict[str, st.SearchStrategy]] = {
    "images": {"id": st.integers(0, 3), "width": st.integers(1, 40), "height": st.integers(1, 40),
               "file_name": st.sampled_from(["a.jpg", "b.png", "missing.jpg", "ann.json", "sub/a.jpg", ".",
                                             "\ud800.jpg", "a\u2028.jpg"])},
    "annotations": {"id": st.integers(0, 5), "image_id": st.integers(1, 3), "category_id": st.integers(1, 3),
                    "bbox": st.lists(st.floats(-30, 60) | st.integers(0, 30), min_size=4, max_size=4),
                    "segmentation": st.lists(polygon(), min_size=1, max_size=2) | rle(), "iscrowd": st.integers(0, 1),
                    "area": st.floats(0, 500) | st.integers(0, 500)},
    "categories": {"id": st.integers(0, 3), "name": st.sampled_from(["cat", "dog", " x "])},
}


# --- COCO JSON -----------------------------------------------------------------------------------------------


def base_coco() -> dict[str, Any]:
    """Two images; polygons, a compressed crowd RLE, an uncompressed RLE, implied and explicit fields."""
    crowd = np.zeros((20, 20), dtype=np.uint8, order="F")
    crowd[0:5, :] = 1
    blob = np.zeros((16, 24), dtype=np.uint8, order="F")
    blob[4:10, 14:20] = 1
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 24, "height": 16},
                   {"id": 2, "file_name": "b.png", "width": 20, "height": 20}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 8], "area": 80.0, "iscrowd": 0,
             "segmentation": [[2, 2, 12, 2, 12, 10, 2, 10]]},
            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [4.5, 4, 8, 8],
             "segmentation": [[4.5, 4, 12, 4, 8, 12]]},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 20, 5], "iscrowd": 1,
             "segmentation": {"size": [20, 20], "counts": mask_utils.encode(crowd)["counts"].decode("ascii")}},
            {"image_id": 1, "category_id": 2, "bbox": [14, 4, 6, 6],  # no id: one is implied
             "segmentation": {"size": [16, 24], "counts": runs(blob)}},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog", "supercategory": "animal"}],
    }


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """The path (keys and indices) of every node below and including ``node``."""
    paths = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            paths += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            paths += _paths(value, (*prefix, index))
    return paths


def _mutate_anywhere(data: st.DataObject, doc: Any) -> Any:
    """Replace, delete, duplicate or wrap one node of ``doc`` (in place where it can be; returns the new doc)."""
    path = data.draw(st.sampled_from(_paths(doc)))
    action = data.draw(st.sampled_from(["replace", "delete", "duplicate", "wrap"]))
    if not path:
        return data.draw(VALUES) if action in ("replace", "delete") else [doc]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "replace":
        parent[key] = data.draw(VALUES)
    elif action == "delete":
        del parent[key]
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(json.loads(json.dumps(parent[key])))
    else:
        parent[key] = [parent[key]]
    return doc


def _mutate_field(data: st.DataObject, doc: dict) -> None:
    """Give one field of one record a value from that field's strategy (or remove it)."""
    kind = data.draw(st.sampled_from(sorted(WEIRD)))
    records = doc.get(kind) if isinstance(doc, dict) else None
    if not isinstance(records, list) or not records:
        return
    record = records[data.draw(st.integers(0, len(records) - 1))]
    if not isinstance(record, dict):
        return
    field = data.draw(st.sampled_from(sorted(WEIRD[kind])))
    how = data.draw(st.sampled_from(["plausible"] * 4 + ["weird"] * 2 + ["remove"]))
    if how == "remove":
        record.pop(field, None)
    else:
        record[field] = data.draw((PLAUSIBLE if how == "plausible" else WEIRD)[kind][field])


def _corrupt(data: st.DataObject, raw: bytes) -> bytes:
    """Byte-level damage: truncation, bytes that are not UTF-8, an empty file, absurd nesting."""
    how = data.draw(st.sampled_from(["none"] * 6 + ["truncate", "insert", "empty", "deep", "bom"]))
    if how == "truncate":
        return raw[:data.draw(st.integers(0, max(len(raw) - 1, 0)))]
    if how == "insert":
        at = data.draw(st.integers(0, len(raw)))
        return raw[:at] + data.draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xe2\x82", b"\xfe\xff"])) + raw[at:]
    if how == "empty":
        return b""
    if how == "deep":
        depth = data.draw(st.sampled_from([50, 3000]))  # past the interpreter's recursion limit
        return b"[" * depth + b"]" * depth
    if how == "bom":
        return b"\xef\xbb\xbf" + raw
    return raw


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("coco"))


def test_base_coco_loads(coco_dir: Path) -> None:
    path = coco_dir / "ann.json"
    path.write_text(json.dumps(base_coco()))
    dataset = load_coco(path, coco_dir)
    assert dataset.image_ids == [1, 2] and len(dataset.coco.anns) == 4
    instances = InstanceDataset(dataset, TRANSFORMS[0])
    _, target = instances[1]
    assert len(target.labels) == 1 and len(target.crowd_boxes_xyxy) == 1


def check_coco(coco_dir: Path, raw: bytes) -> None:
    """The property for one annotation file's bytes: a one-line error naming the file and record, or samples."""
    path = coco_dir / "ann.json"
    path.write_bytes(raw)
    try:
        dataset = load_coco(path, coco_dir)
    except YolactError as error:
        message = check_message(error, "ann.json")
        assert RECORD.search(message) or any(p in message for p in COCO_FILE_LEVEL), message
        return
    load_samples(dataset, str(coco_dir))


@FUZZ
@given(data=st.data())
def test_coco_bad_records_fail_with_one_line(coco_dir: Path, data: st.DataObject) -> None:
    doc = base_coco()
    for _ in range(data.draw(st.integers(1, 2))):
        _mutate_field(data, doc)
    check_coco(coco_dir, json.dumps(doc).encode("utf-8"))  # NaN and Infinity as Python's json writes them


@FUZZ
@given(data=st.data())
def test_coco_bad_structure_or_bytes_fail_with_one_line(coco_dir: Path, data: st.DataObject) -> None:
    doc: Any = base_coco()
    for _ in range(data.draw(st.integers(0, 3))):
        doc = _mutate_anywhere(data, doc)
    check_coco(coco_dir, _corrupt(data, json.dumps(doc).encode("utf-8")))


def _set(kind: str, index: int, field: str, value: Any) -> Any:
    return lambda doc: doc[kind][index].__setitem__(field, value)


def _set_rle(index: int, key: str, value: Any) -> Any:
    return lambda doc: doc["annotations"][index]["segmentation"].__setitem__(key, value)


# What the fuzzing found before the loaders checked it: hangs and crashes in pycocotools, other exceptions, garbage
# masks or NaN targets, messages without the record. Each must now be one line naming the file and the record.
@pytest.mark.parametrize(("mutate", "message"), [
    (_set("annotations", 1, "segmentation", [[4.5, 4, math.nan, 4, 8, 12]]), r"annotations\[1\] .*not a finite"),
    (_set("annotations", 1, "segmentation", [[4.5, 4, math.inf, 4, 8, 12]]), r"annotations\[1\] .*not a finite"),
    (_set("annotations", 1, "segmentation", [[4.5, 4, "1", 4, 8, 12]]), r"annotations\[1\] .*not a finite"),
    (_set("annotations", 1, "segmentation", [[4.5, 4, [1], 4, 8, 12]]), r"annotations\[1\] .*not a finite"),
    (_set("annotations", 1, "segmentation", [[4.5, 4, 1e9, 4, 8, 12]]), r"annotations\[1\] .*far outside"),
    (_set_rle(3, "counts", [0, 5]), r"annotations\[3\] .*cover 5 pixels, not the image's 16x24 = 384"),
    (_set_rle(3, "counts", [0, -5, 389]), r"annotations\[3\] .*run lengths"),
    (_set_rle(3, "counts", None), r"annotations\[3\] .*RLE counts is null"),
    (_set_rle(2, "counts", "zz"), r"annotations\[2\] \(id 3\) .*not a compressed RLE string"),
    (_set_rle(2, "size", [16, 24]), r"annotations\[2\] \(id 3\) .*RLE size \[16, 24\] is not the image's"),
    (_set("annotations", 0, "bbox", [2, 2, math.nan, 8]), r"annotations\[0\] \(id 1\) has a malformed bbox"),
    (_set("annotations", 0, "bbox", [2, 2, -10, 8]), r"annotations\[0\] \(id 1\) .*negative width"),
    (_set("annotations", 0, "id", [1]), r"annotations\[0\] \(id \[1\]\) has id \[1\]"),
    (_set("annotations", 1, "id", "2"), r"annotations\[1\] \(id '2'\) has id '2'"),
    (_set("annotations", 1, "id", 1), r"annotations\[1\] \(id 1\) repeats annotation id 1"),
    (_set("annotations", 0, "iscrowd", "yes"), r"annotations\[0\] \(id 1\) has iscrowd 'yes'"),
    (_set("images", 0, "file_name", 1.5), r"images\[0\] \(id 1\) has file_name 1.5"),
    (_set("images", 0, "file_name", "a\nb.jpg"), r"images\[0\] \(id 1\) has file_name 'a\\nb.jpg'"),
    (_set("images", 0, "width", 2**40), r"images\[0\] \(id 1\) has width"),
    (_set("categories", 1, "id", 1), r"categories\[1\] \(id 1\) repeats category id 1"),
    (_set("categories", 1, "name", None), r"categories\[1\] \(id 2\) has name None"),
])
def test_found_coco_crashes_fail_with_one_line(coco_dir: Path, mutate: Any, message: str) -> None:
    doc = base_coco()
    mutate(doc)
    path = coco_dir / "ann.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(YolactError, match=message) as info:
        load_coco(path, coco_dir)
    check_message(info.value, "ann.json")


def test_deep_json_fails_with_one_line(coco_dir: Path) -> None:
    path = coco_dir / "ann.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(YolactError, match="nested too deeply"):
        load_coco(path, coco_dir)


# --- YOLO-seg labels -----------------------------------------------------------------------------------------

CLASS_TOKENS = st.one_of(
    st.integers(0, 4).map(str),
    st.sampled_from(["-1", "1.0", "1e3", "+1", "0x1", "007", "99999", "99999999999999999999999", "9" * 5000,
                     "x", "\u0663", "\u00b2", "nan"]),
    st.text(max_size=3),
)
COORD_TOKENS = st.one_of(
    st.floats(0, 1).map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "1.0005", "-0.0005", "1.5", "-0.1", "abc", "0,5", "1_0",
                     "\u0663", "0.5"]),
    st.text(max_size=3),
)
VALID_COORD = st.floats(0, 1).map(lambda v: f"{v:.4f}")


def _line(class_token: str, coords: list[str]) -> str:
    return " ".join([class_token, *coords])


LABEL_LINE = st.one_of(
    st.builds(_line, CLASS_TOKENS, st.lists(VALID_COORD, min_size=6, max_size=8)),  # only the class may be bad
    st.builds(_line, st.integers(0, 4).map(str), st.lists(VALID_COORD | COORD_TOKENS, max_size=9)),
    st.builds(_line, st.integers(0, 4).map(str), st.lists(VALID_COORD | COORD_TOKENS, min_size=4, max_size=4)),
    st.builds(_line, CLASS_TOKENS, st.lists(COORD_TOKENS, max_size=9)),
)
EDGE_COORD = st.sampled_from(["0", "1", "1.0005", "-0.0005", "0.5", "1e-9"])
VALID_LINE = st.one_of(
    st.builds(_line, st.integers(0, 2).map(str), st.lists(st.tuples(*[VALID_COORD | EDGE_COORD] * 2), min_size=3,
                                                          max_size=5).map(lambda points: [*sum(points, ())])),
    st.builds(lambda c, cx, cy, w, h: _line(c, [f"{v:.4f}" for v in (cx, cy, w, h)]), st.integers(0, 2).map(str),
              st.floats(0.3, 0.7), st.floats(0.3, 0.7), st.floats(0, 0.6), st.floats(0, 0.6)),  # boxes, some empty
    st.sampled_from(["", " ", "\t", "0 0.5 0.5 0.5 0.5 0.5 0.5", "1 0.5 0.5 0 0"]),  # blank; zero area
)
LABEL_TEXT = st.lists(st.one_of(VALID_LINE, VALID_LINE, VALID_LINE, VALID_LINE, LABEL_LINE), max_size=4).map(
    lambda lines: "\r\n".join(lines) if len(lines) == 3 else "\n".join(lines))


@pytest.fixture(scope="module")
def yolo_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("yolo")
    labels = root / "labels"
    labels.mkdir()
    return write_images(root / "images"), labels


@FUZZ
@given(data=st.data(), texts=st.lists(LABEL_TEXT, min_size=3, max_size=3),
       class_names=st.none() | st.just(["x", "y", "z"]))
def test_yolo_fails_with_one_line(yolo_dirs: tuple[Path, Path], data: st.DataObject, texts: list[str],
                                  class_names: list[str] | None) -> None:
    images, labels = yolo_dirs
    for stem, text in zip(("a", "b", "orphan"), texts, strict=True):
        (labels / f"{stem}.txt").write_bytes(_corrupt(data, text.encode("utf-8")) if stem == "a" else text.encode())
    try:
        coco = yolo_to_coco(images, labels, class_names)
    except YolactError as error:
        message = check_message(error, str(labels))
        assert re.search(r"[ab]\.txt:\d+: ", message), message  # file:line
        return
    assert [i["file_name"] for i in coco["images"]] == sorted(IMAGES)
    load_samples(DataSplit(images, labels=labels).load(class_names), str(images), str(labels))
    out = convert_yolo(images, labels, labels.parent / "out.json", class_names)
    assert len(load_coco(out, images).coco.anns) == len(coco["annotations"])


@pytest.mark.parametrize(("text", "names", "message"), [
    (b"0 0.1 0.1 0.5 0.1 0.5 0.5\n1 0.5 \xff\n", None, r"a\.txt:2: this label file is not UTF-8 text"),
    (b"9" * 5000 + b" 0.1 0.1 0.5 0.1 0.5 0.5\n", ["x"], r"a\.txt:1: class 9999999999\.\.\. \(5000 digits\)"),
    # Without class names this made class0 .. class99999999999: a hang, then out of memory.
    (b"0 0.1 0.1 0.5 0.1 0.5 0.5\n99999999999 0.1 0.1 0.5 0.1 0.5 0.5\n", None, r"a\.txt:2: class 99999999999 is not"),
    (b"0 nan 0.1 0.5 0.1 0.5 0.5\n", None, r"a\.txt:1: coordinates must be finite"),
    (b"0 0.5 0.5 -0.2 0.2\n", None, r"a\.txt:1: a box .* width and height of at least 0"),
    (b"\xc2\xb2 0.1 0.1 0.5 0.1 0.5 0.5\n", None, r"a\.txt:1: the class must be a non-negative integer"),
])
def test_found_yolo_crashes_fail_with_one_line(yolo_dirs: tuple[Path, Path], text: bytes, names: list[str] | None,
                                               message: str) -> None:
    images, labels = yolo_dirs
    for other in labels.iterdir():
        other.unlink()
    (labels / "a.txt").write_bytes(text)
    with pytest.raises(YolactError, match=message) as info:
        yolo_to_coco(images, labels, names)
    check_message(info.value, str(labels / "a.txt"))


@pytest.mark.parametrize("stems", [("\u00b2", "1"), ("\u0663", "4"), ("99999999999999999999999", "1"), ("7", "007")])
def test_yolo_image_ids_from_any_file_names(tmp_path: Path, stems: tuple[str, str]) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for stem in stems:
        assert cv2.imwrite(str(images / f"{stem}.png"), np.zeros((8, 8, 3), dtype=np.uint8))
    coco = yolo_to_coco(images, labels)
    ids = [i["id"] for i in coco["images"]]
    assert len(set(ids)) == 2 and all(0 <= i < 2**63 for i in ids)


# --- dataset YAML --------------------------------------------------------------------------------------------

PATHS = st.one_of(st.sampled_from(["images", "ann.json", "labels", "missing", "", ".", "ann.json\nx", "a\x00b",
                                   "images/a.jpg", "/", "\ud800"]), VALUES)
SPLITS = st.one_of(
    st.just({"images": "images", "annotations": "ann.json"}),
    st.just({"images": "images", "labels": "labels"}),
    st.just({"images": ".", "labels": "labels"}),
    st.just({"images": "images", "annotations": "images/a.jpg"}),
    st.fixed_dictionaries({"images": PATHS}, optional={"annotations": PATHS, "labels": PATHS, "other": VALUES}),
    st.fixed_dictionaries({}, optional={"images": PATHS, "annotations": PATHS, "labels": PATHS, "other": VALUES}),
    VALUES,
)
NAMES = st.one_of(
    st.none(),
    st.just(["x", "y", "z"]),
    st.just({0: "x", 1: "y", 2: "z"}),
    st.lists(SCALARS, max_size=4),
    st.dictionaries(st.integers(-1, 4) | st.booleans() | st.text(max_size=2), SCALARS, max_size=4),
    VALUES,
)
YAML_SNIPPETS = st.sampled_from([
    "train: [", "train: {images: images, annotations: ann.json", "&a [*a, *a]", "!!python/object/apply:os.system [ls]",
    "train: 2001-02-30", "{[1]: 2}", "train: !!binary zzz", "train:\n\timages: x", "? [a]\n: b", "%YAML 9.9\n---\n",
    "train: !!float abc", "train: {images: images, annotations: ann.json}\nnames: {0: a, 0: b}", "- a\n- b",
    "train: {images: images, labels: labels}\nnames: [yes, no, ~]", "\x00", "--- |\n  x\n...\n--- y",
])


@pytest.fixture(scope="module")
def yaml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("yaml")
    write_images(root / "images")
    (root / "ann.json").write_text(json.dumps(base_coco()))
    (root / "labels").mkdir()
    (root / "labels" / "a.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.5\n2 0.5 0.5 0.2 0.4\n")
    return root


def _dump(spec: Any, allow_unicode: bool) -> bytes:
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=allow_unicode).encode("utf-8")


def check_dataset_yaml(yaml_dir: Path, raw: bytes) -> None:
    """The property for one dataset YAML's bytes: a one-line error naming the YAML, or splits that load (or fail
    with one line naming their file)."""
    path = yaml_dir / "data.yaml"
    path.write_bytes(raw)
    try:
        train, val, names = read_dataset_yaml(path)
    except YolactError as error:
        check_message(error, "data.yaml")
        return
    assert names is None or (isinstance(names, list) and all(isinstance(n, str) for n in names))
    for split in (train, val):
        if split is None:
            continue
        files = [str(p) for p in (split.images, split.annotations, split.labels) if p is not None]
        try:
            dataset = split.load(names)
        except YolactError as error:
            check_message(error, *files)
            continue
        load_samples(dataset, *files)


@FUZZ
@given(spec=st.fixed_dictionaries({"train": SPLITS}, optional={"val": SPLITS, "names": NAMES, "nc": VALUES}),
       allow_unicode=st.booleans())
def test_dataset_yaml_bad_entries_fail_with_one_line(yaml_dir: Path, spec: dict, allow_unicode: bool) -> None:
    check_dataset_yaml(yaml_dir, _dump(spec, allow_unicode))


@FUZZ
@given(data=st.data())
def test_dataset_yaml_bad_text_fails_with_one_line(yaml_dir: Path, data: st.DataObject) -> None:
    how = data.draw(st.sampled_from(["value", "snippet", "text", "corrupt"]))
    if how == "snippet":
        raw = data.draw(YAML_SNIPPETS).encode("utf-8")
    elif how == "text":
        raw = data.draw(st.text(max_size=30)).encode("utf-8")
    elif how == "value":
        raw = _dump(data.draw(VALUES), data.draw(st.booleans()))
    else:
        spec = {"train": {"images": "images", "annotations": "ann.json"},
                "val": {"images": "images", "labels": "labels"}, "names": ["x", "y", "z"]}
        raw = _corrupt(data, _dump(spec, data.draw(st.booleans())))
    check_dataset_yaml(yaml_dir, raw)


@pytest.mark.parametrize(("text", "message"), [
    (b"train: {images: images, annotations: ann.json}\nnames: [\xff]\n", r"data\.yaml:2: .*not UTF-8"),
    (b"[" * 5000, r"data\.yaml: .*nested too deeply"),
    (b"train: 2001-02-30\n", r"data\.yaml: .*day is out of range for month\); quote the value"),
    (b"train: {images: [images], annotations: ann.json}\n", r"data\.yaml: 'train\.images' is \['images'\]"),
    (b"train: {images: , annotations: ann.json}\n", r"data\.yaml: 'train' has no 'images' folder"),
    (b"train: {images: images}\n", r"data\.yaml: 'train' needs exactly one of"),
    (b"train: {images: images, labels: labels}\nnames: {0: a, x: b}\n", r"data\.yaml: 'names' as a mapping"),
    (b"train: {images: images, labels: labels}\nnames: [a, yes]\n", r"data\.yaml: names\[1\] is True"),
])
def test_found_yaml_crashes_fail_with_one_line(yaml_dir: Path, text: bytes, message: str) -> None:
    path = yaml_dir / "data.yaml"
    path.write_bytes(text)
    with pytest.raises(YolactError, match=message) as info:
        read_dataset_yaml(path)
    check_message(info.value, "data.yaml")


def test_valid_dataset_yaml_loads(yaml_dir: Path) -> None:
    path = yaml_dir / "ok.yaml"
    path.write_text("train: {images: images, annotations: ann.json}\nval: {images: images, labels: labels}\n"
                    "names: {0: x, 1: y, 2: z}\n")
    train, val, names = read_dataset_yaml(path)
    assert names == ["x", "y", "z"] and train.annotations == yaml_dir / "ann.json" and val is not None
    assert len(train.load(names).coco.anns) == 4 and len(val.load(names).coco.anns) == 2


# --------------------------------------------------------------------------------------------------- labelme files
LABELME_SHAPE = st.fixed_dictionaries(
    {"label": st.one_of(st.sampled_from(["cat", "dog", "__ignore__"]), SCALARS),
     "points": st.one_of(st.lists(st.lists(COORDS, min_size=0, max_size=3), max_size=6), VALUES),
     "shape_type": st.one_of(st.sampled_from(["polygon", "rectangle", "circle", "line", None]), SCALARS)},
    optional={"group_id": st.one_of(st.integers(-2, 3), SCALARS, VALUES)},
)


@FUZZ
@given(shapes=st.one_of(st.lists(LABELME_SHAPE, max_size=4), VALUES),
       height=st.one_of(st.integers(-1, 50), SCALARS), width=st.one_of(st.integers(1, 50), SCALARS),
       image_path=st.one_of(st.just("a.jpg"), SCALARS))
def test_labelme_files_of_any_content_fail_with_one_line(tmp_path_factory: pytest.TempPathFactory, shapes: Any,
                                                        height: Any, width: Any, image_path: Any) -> None:
    from yolact.data.labelme import labelme_to_coco

    folder = tmp_path_factory.mktemp("labelme")
    record = {"shapes": shapes, "imageHeight": height, "imageWidth": width, "imagePath": image_path}
    (folder / "a.json").write_text(json.dumps(record))
    try:
        coco = labelme_to_coco(folder)
    except AnnotationError as error:
        assert "\n" not in str(error) and "a.json" in str(error), str(error)
        return
    assert all(a["area"] >= 0 for a in coco["annotations"])
