"""Small sample images bundled with the package (see ``yolact/assets/SOURCE.md`` for origin and licenses)."""

from __future__ import annotations

import pathlib
from importlib.resources import files

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def sample_images() -> list[pathlib.Path]:
    """Return the paths of the bundled sample images, sorted by file name.

    The images live in ``yolact/assets/`` and are installed as package data, so they are available
    without any dataset (useful for demos, docs and smoke tests).
    """
    assets = files("yolact") / "assets"
    # A regular (or editable) install keeps package data on the file system, so the Traversable
    # is a real directory; convert through str() so we hand back plain pathlib paths.
    root = pathlib.Path(str(assets))
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
