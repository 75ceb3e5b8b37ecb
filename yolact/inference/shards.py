"""Prediction split over processes that never talk: each takes an exact, disjoint block of the sorted image list
(:class:`Shard`), writes one JSON line per finished image (:class:`ShardWriter`), and continues where it stopped
(``--resume``); :func:`merge_results` makes one COCO results list of the shard files.

A line is ``{"image_id": int, "file_name": str, "records": [...]}``: an image with no detections has a line too,
so that a re-run knows it is done. Lines are appended whole and flushed as each image finishes; a kill can cut
only the last line, which the re-run drops and redoes."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from yolact.errors import YolactError
from yolact.io import write_json
from yolact.outputs import OutputError, check_output_file, make_dir, os_error_line

T = TypeVar("T")
_SHARD_NAME = re.compile(r"\.shard-(\d+)-of-(\d+)\.jsonl$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 0) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"--shard {self.index}/{self.count}: give I/N with 0 <= I < N (e.g. 0/8 ... 7/8)")

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if match is None:
            raise ValueError(f"--shard {text!r}: give I/N, the shard's index from 0 and the number of shards "
                             "(e.g. 3/8)")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def from_environment(cls) -> Shard | None:
        """This process's shard under torchrun (RANK of WORLD_SIZE), or None outside it or with one process."""
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        return cls(int(os.environ.get("RANK", "0") or 0), world) if world > 1 else None

    def select(self, items: Sequence[T]) -> list[T]:
        """This shard's contiguous block of ``items``: every item in exactly one shard, sizes within one."""
        start, stop = self.index * len(items) // self.count, (self.index + 1) * len(items) // self.count
        return list(items[start:stop])

    def file_for(self, results: Path) -> Path:
        """``out/detections.jsonl`` -> ``out/detections.shard-0003-of-0008.jsonl``."""
        stem = results.name.split(".")[0] or "detections"
        return results.with_name(f"{stem}.shard-{self.index:04d}-of-{self.count:04d}.jsonl")


def read_shard(path: Path, allow_cut: bool = False) -> list[dict[str, Any]]:
    """The lines of a shard file. A cut last line (a killed run's) is left out with ``allow_cut`` (resuming), and
    refused otherwise: that shard has not finished."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise YolactError(f"{path}: no such shard file; check the path") from None
    except OSError as exc:
        raise YolactError(os_error_line(exc)) from None
    chunks = data.split(b"\n")
    lines = []
    for number, line in enumerate(chunks, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            if number == len(chunks):  # no newline after it: the line a kill cut short
                if allow_cut:
                    break
                raise YolactError(f"{path}: line {number} is cut short: this shard did not finish; run it again "
                                  "with --resume") from None
            raise YolactError(f"{path}: line {number} is not JSON; give the files `yolact predict --shard` "
                              "writes") from None
        if not (isinstance(entry, dict) and isinstance(entry.get("image_id"), int)
                and isinstance(entry.get("records"), list)):
            raise YolactError(f"{path}: line {number} is not a shard line (image_id, file_name, records); give the "
                              "files `yolact predict --shard` writes")
        lines.append(entry)
    return lines


class ShardWriter:
    """Appends one line per finished image to a shard file; with ``resume``, keeps the complete lines already
    there (:attr:`done`: their file names) and cuts a partial last line."""

    def __init__(self, path: Path, resume: bool = False) -> None:
        self.path = Path(path)
        self.done: set[str] = set()
        make_dir(self.path.parent)
        keep = 0
        if resume and self.path.exists():
            data = self.path.read_bytes()
            keep = data.rfind(b"\n") + 1  # everything after the last newline is a cut line
            self.done = {str(entry.get("file_name")) for entry in read_shard(self.path, allow_cut=True)}
        try:
            self._file = open(self.path, "r+b" if keep else "wb")
            self._file.truncate(keep)
            self._file.seek(keep)
        except OSError as exc:
            raise OutputError(os_error_line(exc)) from None

    def add(self, image_id: int, file_name: str, records: list[dict[str, Any]]) -> None:
        line = json.dumps({"image_id": image_id, "file_name": file_name, "records": records}) + "\n"
        try:
            self._file.write(line.encode())
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise OutputError(os_error_line(exc)) from None

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class MergeReport:
    images: int
    records: int
    files: int


def _shard_key(path: Path) -> tuple[int, int, str]:
    match = _SHARD_NAME.search(path.name)
    return (int(match[2]), int(match[1]), path.name) if match else (0, 0, path.name)


def merge_results(shards: Sequence[Path], output: Path) -> MergeReport:
    """One COCO results list (``output``, written atomically) of shard files, in shard order: the records one
    process would have written. An image in two shards, or a set of ``-of-N`` files with one missing, is refused."""
    if not shards:
        raise YolactError("merge-results: give the shard files (e.g. out/detections.shard-*.jsonl)")
    check_output_file(output, "--output", shards)
    ordered = sorted((Path(p) for p in shards), key=_shard_key)
    counts = {m[2] for p in ordered if (m := _SHARD_NAME.search(p.name))}
    indices = [int(m[1]) for p in ordered if (m := _SHARD_NAME.search(p.name))]
    if len(counts) == 1 and len(set(indices)) == len(indices):
        missing = sorted(set(range(int(next(iter(counts))))) - set(indices))
        if missing:
            raise YolactError(f"merge-results: shard {missing[0]} of {int(next(iter(counts)))} is missing; give "
                              "every shard file")
    seen: dict[int, Path] = {}
    records: list[dict[str, Any]] = []
    for path in ordered:
        for entry in read_shard(path):
            image_id = entry["image_id"]
            if image_id in seen:
                raise YolactError(f"merge-results: image {image_id} is in {seen[image_id]} and in {path}; give "
                                  "each shard once")
            seen[image_id] = path
            records.extend(entry["records"])
    write_json(output, records)
    return MergeReport(len(seen), len(records), len(ordered))
