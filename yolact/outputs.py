"""Output paths checked before any work starts, and results files that stay valid while they grow.

Every command that writes checks its outputs first (:func:`check_output_file`, :func:`check_output_dir`): the
place can be created and written, a file is not a folder or the reverse, and no output lands on an input. Work
then reaches the disk as it finishes (:class:`JsonListWriter`), so an interrupt or a full disk loses only the item
in flight, and a failed write is an error that says what was saved.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from yolact.errors import YolactError

# What commands read from the folders they are given (images, YOLO-seg label files): an existing file of these kinds
# inside an input folder is taken to be an input.
READ_FROM_FOLDERS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".txt")


class OutputError(YolactError):
    """An output path cannot be written, or would overwrite an input."""


class WorkInterrupted(KeyboardInterrupt):
    """Ctrl+C during a run that saves as it goes; its message says what was saved, and where."""


def os_error_line(exc: OSError) -> str:
    """One line for an OSError: the path it names (when it names one), why, and what to do about it."""
    fixes = {
        errno.EACCES: "choose a folder you can write to",
        errno.EPERM: "choose a folder you can write to",
        errno.EROFS: "the file system is read-only; choose another place",
        errno.ENOSPC: "the disk is full; free some space or choose another disk",
        errno.EDQUOT: "the disk quota is used up; free some space or choose another disk",
        errno.EFBIG: "the file is larger than this system allows; choose another place or write less",
        errno.EISDIR: "it is a folder; give a file name",
        errno.ENOTDIR: "a part of the path is a file, not a folder; fix the path",
        errno.ENOENT: "no such file or folder; check the path",
        errno.ENAMETOOLONG: "the name is too long; use a shorter path",
    }
    where = exc.filename if exc.filename is not None else None
    why = exc.strerror or str(exc)
    fix = fixes.get(exc.errno or 0)
    head = f"{where}: {why}" if where is not None else why
    return f"{head}; {fix}" if fix else head


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_within(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _writable_ancestor(path: Path, flag: str) -> None:
    """The nearest existing ancestor of ``path`` is a folder this process may create entries in."""
    ancestor = path.parent
    while not ancestor.exists():
        if ancestor.is_symlink():  # a dangling symlink on the way
            raise OutputError(f"{flag} {path}: {ancestor} is a broken symbolic link; fix or remove it")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"{flag} {path}: {ancestor} is a file, not a folder; choose another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path}: {ancestor} is not writable; choose a folder you can write to")
    # os.access answers for permissions only; a read-only mount or a full quota shows when a file is made.
    try:
        probe = tempfile.TemporaryFile(dir=ancestor, prefix=".yolact-probe-")
    except OSError as exc:
        raise OutputError(f"{flag} {path}: {os_error_line(exc)}") from None
    probe.close()


def check_output_file(path: str | Path, flag: str, inputs: Iterable[str | Path] = ()) -> Path:
    """Check, before any work, that ``path`` can be written as a file and is none of ``inputs`` (files or
    folders; symbolic links are followed). Raises :class:`OutputError` naming ``flag``, the path and the fix."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path}: is a folder; give a file name (e.g. {path / 'results.json'})")
    if path.exists():  # a path that does not exist yet cannot be an existing input
        for folder in (Path(item) for item in inputs):
            if folder.is_dir() and _is_within(path, folder) and path.suffix.lower() in READ_FROM_FOLDERS:
                raise OutputError(f"{flag} {path}: is a file of the input folder {folder}; choose a new file name")
        target = os.stat(path)
        for item in inputs:
            try:
                info = os.stat(item)
            except OSError:
                continue
            if (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino):
                raise OutputError(f"{flag} {path}: is an input of this command ({item}); choose another file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{flag} {path}: exists and is not writable; choose another file name")
    _writable_ancestor(path, flag)
    return path


def check_output_dir(path: str | Path, flag: str, inputs: Iterable[str | Path] = (),
                     planned_names: Sequence[str] = ()) -> Path:
    """Check, before any work, that ``path`` can be a folder of outputs: not a file, creatable and writable, not
    an input folder nor inside one, and none of ``planned_names`` in it an input file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path}: is a file, not a folder; give a folder name")
    names = set(planned_names)
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            if _is_within(path, item):
                raise OutputError(f"{flag} {path}: is the input folder {item} or inside it, where outputs could "
                                  "overwrite the inputs; choose a folder outside it")
        elif item.name in names and (path / item.name).exists() and _same_file(path / item.name, item):
            raise OutputError(f"{flag} {path}: would overwrite the input {item}; choose another folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(f"{flag} {path}: the folder is not writable; choose a folder you can write to")
        try:
            tempfile.TemporaryFile(dir=path, prefix=".yolact-probe-").close()
        except OSError as exc:
            raise OutputError(f"{flag} {path}: {os_error_line(exc)}") from None
    else:
        _writable_ancestor(path / "_", flag)
    return path


def check_files_apart(files: Sequence[tuple[str, str | Path | None]],
                      folders: Sequence[tuple[str, str | Path, Sequence[str]]]) -> None:
    """No output file (flag, path) is one that an output folder (flag, folder, the names it will write) writes:
    two outputs on one file would leave only the last one written."""
    for flag, path in files:
        if path is None:
            continue
        resolved = Path(path).resolve()
        for folder_flag, folder, names in folders:
            if resolved.parent == Path(folder).resolve() and resolved.name in names:
                raise OutputError(f"{flag} {path}: {folder_flag} writes that file too; give {flag} another name or "
                                  "folder")


def make_dir(path: Path) -> Path:
    """``mkdir -p`` whose failure is one line."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(os_error_line(exc)) from None
    return path


class JsonListWriter:
    """A JSON list written item by item, a valid JSON document after every :meth:`extend`.

    Each batch of records goes to the disk in one positioned write that replaces the closing bracket with the
    records and a new closing bracket, so at any moment (Ctrl+C, a kill, a full disk) the file holds every batch
    written before. A failed write is rolled back to the last complete list and raised as :class:`OutputError`.
    The file gets the user's umask, as ``open`` gives.
    """

    def __init__(self, path: str | Path, unit: str = "image") -> None:
        self.path = Path(path)
        self.unit = unit
        self.batches = 0  # calls of extend that reached the disk
        self.records = 0
        make_dir(self.path.parent)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError as exc:
            raise OutputError(os_error_line(exc)) from None
        self._end = 0  # offset of the closing bracket
        self._write(b"[]", 0)
        self._end = 1

    def _write(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written

    def extend(self, records: Sequence[dict[str, Any]]) -> None:
        """Append ``records`` (one image's, one frame's) to the list on disk."""
        self.batches += 1
        if not records:
            return
        body = ",\n".join(json.dumps(r) for r in records).encode()
        chunk = (b",\n" if self.records else b"\n") + body + b"\n]"
        try:
            self._write(chunk, self._end)
        except OSError as exc:
            self.batches -= 1
            self._rollback()
            raise OutputError(f"{os_error_line(exc)} (writing {self.path}; it holds the detections of the "
                              f"{self.saved_description()} before the failure)") from None
        self._end += len(chunk) - 1
        self.records += len(records)

    def _rollback(self) -> None:
        try:
            os.ftruncate(self._fd, self._end)
            self._write(b"]", self._end)
        except OSError:
            pass  # the disk refuses even that: the message already says the file is incomplete

    def saved_description(self) -> str:
        return f"{self.batches} {self.unit}{'s' if self.batches != 1 else ''}"

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonListWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
