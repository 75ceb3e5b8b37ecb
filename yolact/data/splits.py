"""Where training data lives: a split (COCO JSON, YOLO-seg labels or a Pascal SBD split list, and its images)
and the dataset YAML, or the SBD folder, that names the splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from yolact.data.coco import (
    AnnotationError,
    CocoDataset,
    coco_from_dict,
    load_coco,
    printable_path,
    read_utf8,
    short_repr,
    validate_coco,
)
from yolact.data.sbd import SPLITS as SBD_SPLITS
from yolact.data.sbd import sbd_root, sbd_to_coco
from yolact.data.yolo import yolo_to_coco
from yolact.errors import YolactError

_SPLIT_FORM = "'{name}: {{images: DIR, annotations: FILE.json}}' (COCO) or '{name}: {{images: DIR, labels: DIR}}'"


@dataclass
class DataSplit:
    """One split: a COCO annotation file, a YOLO-seg labels folder, or an SBD split list, and its images."""

    images: Path
    annotations: Path | None = None  # COCO JSON
    labels: Path | None = None  # YOLO-seg .txt folder
    sbd: Path | None = None  # Pascal SBD: its train.txt or val.txt, beside img/ (the images) and inst/

    def load(self, class_names: list[str] | None = None) -> CocoDataset:
        if self.annotations is not None:
            return load_coco(self.annotations, self.images)
        if self.sbd is not None:
            data = validate_coco(sbd_to_coco(self.sbd.parent, self.sbd.stem), self.sbd)
            return CocoDataset(self.sbd, self.images, coco_from_dict(data))
        if self.labels is None:
            raise YolactError(f"{self.images}: give its COCO annotation file or its YOLO labels folder")
        data = validate_coco(yolo_to_coco(self.images, self.labels, class_names), self.labels)
        return CocoDataset(self.labels, self.images, coco_from_dict(data))


def _one_line(text: str, limit: int = 120) -> str:
    """PyYAML's (multi-line) message as one printable line: whitespace runs, line breaks included, become one
    space; what UTF-8 cannot encode (a lone surrogate) is escaped."""
    text = " ".join(text.split()).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _load_yaml(path: Path) -> Any:
    text = read_utf8(path, "this dataset YAML")
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = _one_line(" ".join(p for p in (exc.context, exc.problem) if p) or type(exc).__name__)
        raise AnnotationError(f"{where}: cannot read this dataset YAML ({problem}); fix the YAML there") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (PyYAML gives its code point)
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else short_repr(exc.character)
        raise AnnotationError(f"{path}: cannot read this dataset YAML (character {char} at position {exc.position} "
                              "is not allowed in YAML); remove it") from None
    except yaml.YAMLError as exc:
        raise AnnotationError(f"{path}: cannot read this dataset YAML ({_one_line(str(exc))})") from None
    except (ValueError, TypeError) as exc:  # PyYAML's constructors: a date such as 2001-02-30, '!!float abc'
        raise AnnotationError(f"{path}: cannot read this dataset YAML ({_one_line(str(exc))}); quote the value if "
                              "it is meant as text") from None
    except RecursionError:  # PyYAML's parser is recursive
        raise AnnotationError(f"{path}: cannot read this dataset YAML (nested too deeply); is this a dataset "
                              "YAML?") from None


def sbd_split(folder: Path, split: str) -> DataSplit:
    """Split ``split`` of the SBD folder ``folder`` (benchmark_RELEASE/dataset, or the release folder above it)."""
    root = sbd_root(folder)
    if split not in SBD_SPLITS:
        raise AnnotationError(f"{folder}: SBD's splits are {' and '.join(SBD_SPLITS)}, not {short_repr(split)}")
    return DataSplit(root / "img", sbd=root / f"{split}.txt")


def _split(path: Path, name: str, entry: Any) -> DataSplit:
    if isinstance(entry, dict) and "sbd" in entry:  # '{name}: {sbd: DIR, split: train}'
        folder, split = entry.get("sbd"), entry.get("split", name)
        if not isinstance(folder, str) or not printable_path(folder):
            raise AnnotationError(f"{path}: '{name}.sbd' is {short_repr(folder)}; expected the SBD folder, relative "
                                  "to the YAML's folder")
        return sbd_split(path.parent / folder, split)
    if not isinstance(entry, dict) or "images" not in entry:
        raise AnnotationError(f"{path}: '{name}' needs 'images' and 'annotations' (COCO) or 'labels' (YOLO); "
                              f"expected {_SPLIT_FORM.format(name=name)}")
    paths: dict[str, Path] = {}
    for key in ("images", "annotations", "labels"):
        value = entry.get(key)
        if value is None or value == "":
            continue
        # No real path has control characters or lone surrogates, and the path is printed in the loaders' errors.
        if not isinstance(value, str) or not printable_path(value):
            raise AnnotationError(f"{path}: '{name}.{key}' is {short_repr(value)}; expected a path, relative to the "
                                  "YAML's folder (quote it if YAML reads it as something else)")
        paths[key] = path.parent / value
    if "images" not in paths:
        raise AnnotationError(f"{path}: '{name}' has no 'images' folder; expected {_SPLIT_FORM.format(name=name)}")
    if ("annotations" in paths) == ("labels" in paths):
        raise AnnotationError(f"{path}: '{name}' needs exactly one of 'annotations' (COCO) or 'labels' (YOLO); "
                              f"expected {_SPLIT_FORM.format(name=name)}")
    return DataSplit(paths["images"], paths.get("annotations"), paths.get("labels"))


def _names(path: Path, names: Any) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, dict):  # Ultralytics' form: {0: person, 1: bicycle, ...}
        keys = list(names)
        ints = all(isinstance(k, int) and not isinstance(k, bool) for k in keys)
        if not ints or sorted(keys) != list(range(len(keys))):
            raise AnnotationError(f"{path}: 'names' as a mapping needs the class ids 0, 1, ..., N-1 as keys "
                                  f"(as 'names: {{0: person, 1: bicycle}}'), got keys {short_repr(keys)}")
        names = [names[k] for k in range(len(keys))]
    if not isinstance(names, list) or not names:
        raise AnnotationError(f"{path}: 'names' is {short_repr(names)}; expected a list of class names (or a "
                              "mapping 0: name, 1: name, ...)")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise AnnotationError(f"{path}: names[{i}] is {short_repr(name)}; class names are non-empty strings "
                                  "(quote those YAML reads as numbers, booleans or null, such as '1', 'yes', 'null')")
    return names


def read_dataset_yaml(path: Path) -> tuple[DataSplit, DataSplit | None, list[str] | None]:
    """A dataset YAML: ``train: {annotations|labels, images}`` or ``train: {sbd: DIR, split: train}``, optional
    ``val`` likewise, optional ``names`` (a list, or a mapping 0..N-1 -> name); relative paths are taken from the
    YAML's folder. An SBD folder instead of a YAML gives its train and val splits. Raises
    :class:`AnnotationError` naming the YAML and the entry."""
    path = Path(path)
    if path.is_dir():
        root = sbd_root(path)
        return sbd_split(root, "train"), sbd_split(root, "val") if (root / "val.txt").is_file() else None, None
    spec = _load_yaml(path)
    if not isinstance(spec, dict) or not isinstance(spec.get("train"), dict):
        raise AnnotationError(f"{path}: expected 'train: {{annotations: ..., images: ...}}' (and optionally 'val')")
    train = _split(path, "train", spec["train"])
    val = None if spec.get("val") is None else _split(path, "val", spec["val"])
    return train, val, _names(path, spec.get("names"))
