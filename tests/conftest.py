"""Shared fixtures: the project's ../shared folder and official-format checkpoints built from its key lists."""

from __future__ import annotations

import atexit
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

# The export cache of --backend auto for this session alone (subprocesses inherit it): tests never write to the
# user's ~/.cache, and each session exports afresh.
os.environ["YOLACT_CACHE"] = tempfile.mkdtemp(prefix="yolact-test-cache-")
atexit.register(shutil.rmtree, os.environ["YOLACT_CACHE"], True)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YOLACT_SHARED", REPO.parent / "shared"))
SPEC = SHARED / "spec"
COCO128 = SHARED / "data" / "coco128-seg"
# The presets of the authors' published models (the others, like yolact_resnet18, are ours).
OFFICIAL_PRESETS = ("yolact_base", "yolact_darknet53", "yolact_im400", "yolact_im700", "yolact_resnet50")


def compare_dets(expected: Path, actual: Path) -> subprocess.CompletedProcess[str]:
    """shared/spec's compare_dets.py on two results files: exit 0 within the spec's tolerances, 1 ("MISMATCH")
    beyond them."""
    return subprocess.run([sys.executable, str(SPEC / "compare_dets.py"), str(expected), str(actual)],
                          capture_output=True, text=True)


@pytest.fixture(autouse=True)
def _restore_sigchld() -> Iterator[None]:
    """torch's DataLoader leaves its SIGCHLD handler in the process after a loader with workers has run; a later
    child's exit then runs it against loaders long gone, which crashed the test process (a segfault, seen with
    OpenVINO loaded). Each test hands back the handler it found."""
    before = signal.getsignal(signal.SIGCHLD)
    yield
    signal.signal(signal.SIGCHLD, before)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SPEC.is_dir():
        pytest.fail(f"{SHARED} is missing: the tests need the project's shared/ folder beside the repository "
                    "(or YOLACT_SHARED pointing at it)")
    return SHARED


@pytest.fixture(scope="session")
def make_official_checkpoint(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory
                             ) -> Callable[..., Path]:
    """``make(config_name, seed=0, class_gain=8.0, filename=None) -> Path`` of a checkpoint written in the
    authors' format by shared/spec/make_checkpoint.py, cached per session."""
    maker = runpy.run_path(str(SPEC / "make_checkpoint.py"))
    folder = tmp_path_factory.mktemp("official")
    cache: dict[tuple, Path] = {}

    def make(config: str, seed: int = 0, class_gain: float = 8.0, filename: str | None = None) -> Path:
        key = (config, seed, class_gain, filename)
        if key not in cache:
            keys_file = SPEC / "keys" / f"{config.replace('yolact_im400', 'yolact_base')}.txt"
            state = {name: maker["make_tensor"](name, shape, seed, class_gain)
                     for name, shape in maker["read_keys"](keys_file)}
            path = folder / (filename or f"{config}_{seed}_{int(class_gain * 1000)}.pth")
            torch.save(state, path)
            cache[key] = path
        return cache[key]

    return make


# Two coco128 images for the export tests.
EXPORT_IMAGES = [COCO128 / "images" / "000000000009.jpg", COCO128 / "images" / "000000000025.jpg"]


@pytest.fixture(scope="session")
def resnet50_checkpoint(make_official_checkpoint: Callable[..., Path]) -> Path:
    """A make_checkpoint.py yolact_resnet50 checkpoint (the export tests' model)."""
    return make_official_checkpoint("yolact_resnet50")


@pytest.fixture(scope="session")
def resnet50_onnx(resnet50_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``resnet50_checkpoint`` exported as ``yolact export --format onnx`` does."""
    from yolact.export.pipeline import ExportJob, export_checkpoint

    pytest.importorskip("onnxruntime", reason="pip install 'yolact[export]'")
    path = tmp_path_factory.mktemp("onnx") / "resnet50.onnx"
    export_checkpoint(ExportJob(path, resnet50_checkpoint, format="onnx"))
    return path


# The classes of ``small_checkpoint``.
SMALL_CLASSES = ("circle", "square", "triangle")


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random yolact_resnet18 at 128 px with three classes, in our checkpoint format (the serving tests')."""
    import dataclasses

    import yolact
    from yolact.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = dataclasses.replace(yolact.get_config("yolact_resnet18"), max_size=128, num_classes=len(SMALL_CLASSES))
    model = yolact.build_yolact(config)
    path = tmp_path_factory.mktemp("serve") / "small.pth"
    return save_checkpoint(path, model.state_dict(), config, SMALL_CLASSES, [1, 2, 3])


VOC = SHARED / "data" / "labelme-voc-instseg"


def write_sbd_folder(root: Path) -> Path:
    """The three labelme-voc-instseg photos as an SBD release folder: img/*.jpg, inst/*.mat (GTinst with an
    instance map, VOC's 255 border around each instance, and the classes), train.txt (two) and val.txt (one)."""
    import json
    import shutil

    import numpy as np
    import scipy.io
    from pycocotools import mask as mask_utils

    data = json.loads((VOC / "annotations" / "instances.json").read_text())
    (root / "img").mkdir(parents=True)
    (root / "inst").mkdir()
    names = []
    for image in data["images"]:
        name = Path(image["file_name"]).stem
        names.append(name)
        shutil.copy(VOC / "images" / image["file_name"], root / "img" / image["file_name"])
        height, width = image["height"], image["width"]
        instances = np.zeros((height, width), np.uint8)
        categories = []
        for annotation in (a for a in data["annotations"] if a["image_id"] == image["id"]):
            rle = mask_utils.merge(mask_utils.frPyObjects(annotation["segmentation"], height, width))
            mask = mask_utils.decode(rle).astype(bool)
            categories.append(annotation["category_id"])
            instances[mask] = len(categories)  # a later instance covers an earlier one, as in a map
        border = np.zeros_like(instances, bool)  # VOC's void border: pixels next to another instance
        border[1:] |= instances[1:] != instances[:-1]
        border[:, 1:] |= instances[:, 1:] != instances[:, :-1]
        instances[border & (instances == 0)] = 255
        boundaries = np.empty((len(categories), 1), dtype=object)
        for i in range(len(categories)):
            boundaries[i, 0] = np.zeros((1, 1), np.uint8)
        scipy.io.savemat(root / "inst" / f"{name}.mat", {"GTinst": {
            "Segmentation": instances, "Boundaries": boundaries,
            "Categories": np.array(categories, np.uint8).reshape(-1, 1)}})
    (root / "train.txt").write_text("\n".join(names[:2]) + "\n")
    (root / "val.txt").write_text(names[2] + "\n")
    return root


@pytest.fixture(scope="session")
def sbd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SBD release folder (benchmark_RELEASE/dataset) made of the labelme-voc-instseg photos."""
    return write_sbd_folder(tmp_path_factory.mktemp("sbd") / "benchmark_RELEASE" / "dataset")
