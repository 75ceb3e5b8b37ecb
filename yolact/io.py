"""Writing files atomically: a temporary file in the same folder, renamed over the target when complete."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask (reading it means setting it, so under a lock and put straight back)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    A crash, a kill or an exception leaves ``path`` as it was (or absent): the data reaches the disk (fsync)
    before the rename. No temporary file is left behind by an exception. The file gets the mode ``open`` would
    give it under the user's umask (mkstemp's own is 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: Any, indent: int | None = None) -> Path:
    """``data`` as JSON (UTF-8), written atomically; compact separators unless ``indent`` is given."""
    separators = (",", ":") if indent is None else None
    text = json.dumps(data, indent=indent, separators=separators)
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))
