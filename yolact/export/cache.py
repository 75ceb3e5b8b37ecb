"""The export cache behind ``--backend auto``: a checkpoint exported once per content, config and library
versions, then reused by every later run.

An entry is a folder ``<cache>/<format>/<key>/`` holding the exported file(s) and ``entry.json`` (what it was
made from, the files' sizes, how long the export took). It is built in a temporary folder beside it and renamed
into place, so a reader sees a whole entry or none; builders of one key take a lock in turn, so two processes
starting at once export once. An entry whose files do not match its record (a cut copy, a full disk) is rebuilt
with a one-line notice. The cache is ``$YOLACT_CACHE``, else ``$XDG_CACHE_HOME/yolact``, else
``~/.cache/yolact``; ``yolact cache clear`` empties it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolact.errors import YolactError

# Bumped when what an export writes changes, so that older entries are never read.
CACHE_FORMAT = 1
ENTRY_FILE = "entry.json"
MODEL_FILES = {"openvino": ("model.xml", "model.bin"), "onnx": ("model.onnx",)}


def cache_root() -> Path:
    if os.environ.get("YOLACT_CACHE"):
        return Path(os.environ["YOLACT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "yolact"


def _library_versions(fmt: str) -> dict[str, str]:
    import torch

    from yolact import __version__

    versions = {"yolact": __version__, "torch": torch.__version__}
    modules = ("onnx", "openvino") if fmt == "openvino" else ("onnx", "onnxruntime")
    for name in modules:
        try:
            module = __import__(name)
        except ImportError:
            continue
        versions[name] = str(getattr(module, "__version__", "?"))
    return versions


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content: the same weights under another name share an entry, another file under the
    same name does not."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def entry_key(weights_digest: str, config: dict[str, Any], fmt: str) -> str:
    description = {"cache_format": CACHE_FORMAT, "weights": weights_digest, "config": config, "format": fmt,
                   "versions": _library_versions(fmt)}
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CachedExport:
    """An entry ready to run: ``path`` (the .xml or .onnx), and ``seconds`` the export took when this call made
    it (None when it was already there)."""

    path: Path
    seconds: float | None


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created), held while one process checks and builds an entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: the atomic rename alone keeps entries whole
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _entry_problem(folder: Path, fmt: str) -> str | None:
    """Why the entry in ``folder`` cannot be used (None: it can)."""
    try:
        record = json.loads((folder / ENTRY_FILE).read_text())
        sizes = record["sizes"]
    except (OSError, ValueError, KeyError, TypeError):
        return "its record is missing or unreadable"
    for name in MODEL_FILES[fmt]:
        try:
            size = (folder / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != sizes.get(name):
            return f"{name} has {size} bytes, not the {sizes.get(name)} written"
    return None


def cached_export(weights: Path, config: dict[str, Any], fmt: str, build: Callable[[Path], Path],
                  root: Path | None = None, report: Callable[[str], None] | None = None) -> CachedExport:
    """The cached export of ``weights`` (``config`` as a dict) in format ``fmt`` ("openvino" or "onnx"):
    found, or made by ``build(output_path)`` and stored. ``report`` gets the one-line notices (a rebuilt entry);
    default: standard error."""
    say = report or (lambda line: print(line, file=sys.stderr))
    root = cache_root() if root is None else root
    key = entry_key(file_digest(weights), config, fmt)
    folder = root / fmt / key
    try:
        with _lock(root / fmt / f"{key}.lock"):
            if folder.is_dir():
                problem = _entry_problem(folder, fmt)
                if problem is None:
                    return CachedExport(folder / MODEL_FILES[fmt][0], None)
                say(f"cache entry {folder} is damaged ({problem}); exporting again")
                shutil.rmtree(folder, ignore_errors=True)
            return _build(weights, folder, fmt, build)
    except OSError as exc:
        from yolact.outputs import os_error_line

        raise YolactError(f"export cache {root}: {os_error_line(exc)}; or set YOLACT_CACHE to a writable folder, or "
                          "run with --no-cache") from None


def _build(weights: Path, folder: Path, fmt: str, build: Callable[[Path], Path]) -> CachedExport:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        start = time.perf_counter()
        build(staging / MODEL_FILES[fmt][0])
        seconds = time.perf_counter() - start
        sizes = {name: (staging / name).stat().st_size for name in MODEL_FILES[fmt]}
        record = {"weights": str(weights.resolve()), "format": fmt, "sizes": sizes, "export_seconds": seconds,
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": _library_versions(fmt)}
        with open(staging / ENTRY_FILE, "w") as file:
            json.dump(record, file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        os.rename(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return CachedExport(folder / MODEL_FILES[fmt][0], seconds)


def discard(path: Path) -> None:
    """Remove the entry holding ``path`` (one that a runtime could not read), so that the next call rebuilds it."""
    shutil.rmtree(path.parent, ignore_errors=True)


def list_cache(root: Path | None = None) -> list[dict[str, Any]]:
    """``yolact cache list``: every entry's folder, format, size in bytes and record (what it was made from)."""
    root = cache_root() if root is None else root
    entries = []
    for fmt in MODEL_FILES:
        for folder in sorted(p for p in (root / fmt).glob("*") if p.is_dir() and not p.name.startswith(".")) \
                if (root / fmt).is_dir() else []:
            try:
                record = json.loads((folder / ENTRY_FILE).read_text())
            except (OSError, ValueError):
                record = {}
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            entries.append({"folder": str(folder), "format": fmt, "bytes": size, "record": record})
    return entries


def clear_cache(root: Path | None = None) -> tuple[int, int]:
    """``yolact cache clear``: remove every entry; returns how many and their bytes."""
    root = cache_root() if root is None else root
    count = size = 0
    for fmt in MODEL_FILES:
        for entry in sorted((root / fmt).glob("*")) if (root / fmt).is_dir() else []:
            if entry.is_dir():
                size += sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                count += 1
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    return count, size
