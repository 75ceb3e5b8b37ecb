"""The per-image result files of ``yolact predict``: YOLO-seg labels, labelme files and mask PNGs, one per image
in the folder of each form, written atomically as each image finishes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from yolact.inference.results import Prediction
from yolact.io import atomic_write
from yolact.outputs import OutputError, check_files_apart, check_output_dir, make_dir, os_error_line


@dataclass(frozen=True)
class ImageForms:
    """Which per-image forms to write, and where: ``txt`` (``--save-txt``: YOLO-seg lines, ``<stem>.txt``; an
    image without detections gets an empty file, YOLO's background), ``labelme`` (``--save-labelme``:
    ``<stem>.json`` beside nothing but pointing at the image), ``masks`` (``--save-masks``: ``<stem>.png``, the
    16-bit instance map) and ``semantic`` (``--save-masks-semantic``: ``<stem>.png``, the 16-bit class map, class
    index + 1). ``tolerance`` simplifies the polygons (pixels; 0: exact)."""

    txt: Path | None = None
    labelme: Path | None = None
    masks: Path | None = None
    semantic: Path | None = None
    tolerance: float = 0.0

    def folders(self) -> list[tuple[str, Path, str]]:
        """(flag, folder, file suffix) of each form asked for."""
        forms = (("--save-txt", self.txt, ".txt"), ("--save-labelme", self.labelme, ".json"),
                 ("--save-masks", self.masks, ".png"), ("--save-masks-semantic", self.semantic, ".png"))
        return [(flag, folder, suffix) for flag, folder, suffix in forms if folder is not None]

    def check(self, inputs: Sequence[Path], names: Sequence[str], taken: Sequence[Path | None] = (),
              files: Sequence[tuple[str, Path | None]] = ()) -> None:
        """Before any work: each folder can be written, holds no input, is not another output's folder (``taken``)
        and none of the other output ``files`` (flag, path) is among its files, and no two of the images ``names``
        (file names) would write the same file."""
        seen: dict[str, str] = {}
        for name in names:
            stem = Path(name).stem
            if stem in seen:
                raise OutputError(f"{seen[stem]} and {name} would write the same per-image files ({stem}.txt, ...); "
                                  "give the images different names")
            seen[stem] = name
        stems = list(seen)
        used = {Path(p).resolve(): "another output" for p in taken if p is not None}
        for flag, folder, suffix in self.folders():
            check_output_dir(folder, flag, inputs, planned_names=[f"{stem}{suffix}" for stem in stems])
            resolved = folder.resolve()
            if resolved in used:
                raise OutputError(f"{flag} {folder}: is also {used[resolved]}'s folder; give each form its own folder")
            used[resolved] = flag
        check_files_apart(files, [(flag, folder, [f"{stem}{suffix}" for stem in stems])
                                  for flag, folder, suffix in self.folders()])

    def write(self, prediction: Prediction, stem: str, image_path: Path | None = None) -> None:
        """Every form of one image; ``image_path`` is what labelme files point at."""
        for flag, folder, suffix in self.folders():
            make_dir(folder)
            out = folder / f"{stem}{suffix}"
            if flag == "--save-txt":
                lines = prediction.to_yolo(self.tolerance)
                data = "".join(line + "\n" for line in lines).encode()
            elif flag == "--save-labelme":
                record = prediction.to_labelme(image_path, relative_to=folder, tolerance=self.tolerance)
                data = json.dumps(record, indent=2).encode()
            else:
                data = _png16(prediction.instance_map() if flag == "--save-masks" else prediction.semantic_map(), out)
            try:
                atomic_write(out, lambda f, d=data: f.write(d))
            except OSError as exc:
                raise OutputError(os_error_line(exc)) from None


def _png16(values: np.ndarray, out: Path) -> bytes:
    ok, encoded = cv2.imencode(".png", values.astype(np.uint16))
    if not ok:
        raise OutputError(f"{out}: OpenCV cannot encode this 16-bit PNG")
    return encoded.tobytes()
