"""Pascal SBD read as COCO instances: masks equal to the instance maps, the authors' boxes and ids, one-line
errors for bad files."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from pycocotools import mask as mask_utils

from yolact.data.class_lists import PASCAL_CLASSES
from yolact.data.coco import AnnotationError
from yolact.data.sbd import convert_sbd, sbd_to_coco
from yolact.data.splits import read_dataset_yaml
from yolact.outputs import OutputError


def _instance_map(folder: Path, name: str) -> tuple[np.ndarray, list[int]]:
    gt = scipy.io.loadmat(folder / "inst" / f"{name}.mat")["GTinst"][0][0]
    return gt["Segmentation"], [int(c) for c in gt["Categories"].ravel()]


@pytest.mark.parametrize("split", ["train", "val"])
def test_masks_equal_the_instance_maps(sbd_folder: Path, split: str) -> None:
    data = sbd_to_coco(sbd_folder.parent, split, progress=False)  # the release's top folder works too
    names = (sbd_folder / f"{split}.txt").read_text().split()
    assert [image["file_name"] for image in data["images"]] == [f"{n}.jpg" for n in names]
    # The authors' numbering: train.txt first, then val.txt.
    assert [image["id"] for image in data["images"]] == ([1, 2] if split == "train" else [3])
    assert [c["name"] for c in data["categories"]] == list(PASCAL_CLASSES)
    assert [c["id"] for c in data["categories"]] == list(range(1, 21))
    for image, name in zip(data["images"], names, strict=True):
        instances, categories = _instance_map(sbd_folder, name)
        assert (image["height"], image["width"]) == instances.shape
        records = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        assert [r["category_id"] for r in records] == categories
        for number, record in enumerate(records, 1):
            mask = mask_utils.decode(record["segmentation"]).astype(bool)
            np.testing.assert_array_equal(mask, instances == number)
            ys, xs = np.nonzero(mask)
            assert record["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
            assert record["area"] == mask.sum() and record["iscrowd"] == 0


def test_convert_writes_the_json_and_refuses_an_input(sbd_folder: Path, tmp_path: Path) -> None:
    out = convert_sbd(sbd_folder, "val", tmp_path / "val.json", progress=False)
    assert json.loads(out.read_text()) == sbd_to_coco(sbd_folder, "val", progress=False)
    with pytest.raises(OutputError, match="input"):
        convert_sbd(sbd_folder, "val", sbd_folder / "val.txt", progress=False)


def test_dataset_yaml_and_the_folder_name_sbd_splits(sbd_folder: Path, tmp_path: Path) -> None:
    yaml = tmp_path / "sbd.yaml"
    yaml.write_text(f"train: {{sbd: {sbd_folder}, split: train}}\nval: {{sbd: {sbd_folder}}}\n")
    for train, val, names in (read_dataset_yaml(yaml), read_dataset_yaml(sbd_folder)):
        assert names is None and train.images == sbd_folder / "img" and val is not None
        train_data, val_data = train.load(), val.load()
        assert len(train_data.image_ids) == 2 and val_data.image_ids == [3]
        assert [c["name"] for c in val_data.categories] == list(PASCAL_CLASSES)


def _copy(sbd_folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sbd_folder, tmp_path / "dataset"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("corrupt", "cannot read it as a MATLAB file"),
        ("no_struct", "has no GTinst struct"),
        ("instance_out_of_range", "has instance 9 but Categories lists 3"),
        ("class_out_of_range", "class 21, outside 1..20"),
        ("missing_image", "no such image"),
        ("missing_mat", "no such file"),
        ("no_split", "no such split list"),
        ("bad_name", "is not an image name"),
    ],
)
def test_bad_files_are_one_line_errors(sbd_folder: Path, tmp_path: Path, damage: str, message: str) -> None:
    folder = _copy(sbd_folder, tmp_path)
    name = (folder / "train.txt").read_text().split()[0]
    mat = folder / "inst" / f"{name}.mat"
    instances, categories = _instance_map(folder, name)
    if damage == "corrupt":
        mat.write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    elif damage == "no_struct":
        scipy.io.savemat(mat, {"GTcls": {"Segmentation": instances}})
    elif damage == "instance_out_of_range":
        instances[0, 0] = 9
        scipy.io.savemat(mat, {"GTinst": {"Segmentation": instances, "Categories": np.array(categories)[:, None]}})
    elif damage == "class_out_of_range":
        scipy.io.savemat(mat, {"GTinst": {"Segmentation": instances, "Categories": np.array([[21]] * 3)}})
    elif damage == "missing_image":
        (folder / "img" / f"{name}.jpg").unlink()
    elif damage == "missing_mat":
        mat.unlink()
    elif damage == "no_split":
        (folder / "train.txt").unlink()
    elif damage == "bad_name":
        (folder / "train.txt").write_text("../../etc/passwd\n")
    with pytest.raises(AnnotationError, match=message) as info:
        sbd_to_coco(folder, "train", progress=False)
    assert "\n" not in str(info.value)


def test_not_an_sbd_folder(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="not an SBD folder"):
        sbd_to_coco(tmp_path, "train")
    with pytest.raises(AnnotationError, match="no such folder"):
        sbd_to_coco(tmp_path / "missing", "train")
