"""Ray Data batch prediction: the records of ``yolact predict --json`` on the same folder."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import COCO128

from yolact.errors import YolactError
from yolact.inference.job import PredictJob, run_prediction
from yolact.inference.options import InferenceOptions
from yolact.integrations.ray import YolactBatchPredictor, read_folder, write_coco_results

OPTIONS = InferenceOptions(score_threshold=0.0, top_k=10, device="cpu")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images = tmp_path_factory.mktemp("ray_images")
    for path in sorted((COCO128 / "images").iterdir())[:5]:
        shutil.copy(path, images / path.name)
    (images / "000000999999.jpg").write_bytes(b"not a jpeg")  # unreadable: skipped by both, reported
    return images


@pytest.fixture(scope="module")
def predicted(folder: Path, small_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    # One thread, as each Ray worker of one CPU runs: the thread count can move a score in its last bits.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("predict") / "all.json"
        run_prediction(PredictJob(folder, small_checkpoint, options=OPTIONS, json=out, progress=False))
    finally:
        torch.set_num_threads(threads)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_data_gives_the_records_of_yolact_predict(ray_session: None, folder: Path, small_checkpoint: Path,
                                                      predicted: list[dict], tmp_path: Path) -> None:
    import ray

    kwargs = {"weights": str(small_checkpoint), "options": OPTIONS}
    # A batch of one image, as yolact predict runs by default: a batch of several moves the scores in their last
    # bits (the convolutions' arithmetic depends on it), as yolact predict --batch does.
    from_folder = read_folder(folder).map_batches(YolactBatchPredictor, fn_constructor_kwargs=kwargs, batch_size=1,
                                                  concurrency=2)
    images, errors = write_coco_results(from_folder, tmp_path / "folder.json")
    assert (images, len(errors)) == (5, 1) and "000000999999.jpg" in errors[0]
    assert json.loads((tmp_path / "folder.json").read_text()) == predicted
    # Files read by Ray itself (any storage it reads), ids from the numbers in their names.
    from_bytes = ray.data.read_binary_files(str(folder), include_paths=True).map_batches(
        YolactBatchPredictor, fn_constructor_kwargs=kwargs, batch_size=1, concurrency=1)
    write_coco_results(from_bytes, tmp_path / "bytes.json")
    assert json.loads((tmp_path / "bytes.json").read_text()) == predicted
    from_folder.write_parquet(str(tmp_path / "parquet"))
    rows = ray.data.read_parquet(str(tmp_path / "parquet")).take_all()
    assert sorted(row["file_name"] for row in rows) == sorted(p.name for p in folder.iterdir())
    assert sum(len(row["records"]) for row in rows) == len(predicted)


def test_batches_of_bytes_arrays_and_paths_give_the_same_records(folder: Path, small_checkpoint: Path) -> None:
    paths = sorted(str(p) for p in folder.iterdir())
    predictor = YolactBatchPredictor(small_checkpoint, options=OPTIONS)
    from_paths = predictor({"path": np.array(paths)})
    from_bytes = predictor({"path": np.array(paths), "bytes": np.array([Path(p).read_bytes() for p in paths],
                                                                       dtype=object)})
    assert from_paths == from_bytes
    assert from_paths["image_id"][0] == int(Path(paths[0]).stem) and from_paths["error"][-1]
    assert all(r["image_id"] == i
               for rs, i in zip(from_paths["records"], from_paths["image_id"], strict=True) for r in rs)
    rgb = np.empty(2, dtype=object)  # images of different sizes, as ray.data.read_images batches them
    for row, path in enumerate(paths[:2]):
        rgb[row] = cv2.imread(path)[:, :, ::-1]
    from_arrays = predictor({"path": np.array(paths[:2]), "image": rgb,
                             "image_id": np.array([7, 8])})
    assert from_arrays["image_id"] == [7, 8]
    assert [len(r) for r in from_arrays["records"]] == [len(r) for r in from_paths["records"][:2]]


def test_bad_batches_and_folders_say_what_is_wrong(small_checkpoint: Path, tmp_path: Path) -> None:
    predictor = YolactBatchPredictor(small_checkpoint, options=OPTIONS)
    with pytest.raises(YolactError, match="no number in the file name"):
        predictor({"path": np.array([str(tmp_path / "cat.jpg")])})
    image = np.empty(1, dtype=object)
    image[0] = np.zeros((4, 4), np.uint8)
    grey = predictor({"path": np.array(["1.jpg"]), "image": image})
    assert "RGB uint8" in grey["error"][0] and grey["records"] == [[]]
    with pytest.raises(YolactError, match="no such folder"):
        read_folder(tmp_path / "missing")
    pytest.importorskip("ray")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(YolactError, match="no image files"):
        read_folder(tmp_path)
    with pytest.raises(ValueError, match="segmentation"):
        YolactBatchPredictor(small_checkpoint, segmentation="mask")
