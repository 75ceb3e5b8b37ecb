"""The viewer in a real browser: headless Chromium (Debian's chromium and chromium-driver, which scripts/setup.sh
installs) driven by Selenium, on a results file whose masks are known pixel for pixel."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from serving import running

from yolact.serve.app import create_app
from yolact.serve.gallery import open_gallery

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("YOLACT_TEST_ARTIFACTS", REPO / "test-artifacts"))
GREY = 128
HEIGHT, WIDTH = 120, 160
# (category id, score, rows, columns) of each detection's rectangular mask on image 1.
DETECTIONS = [(1, 0.9, (20, 60), (30, 80)), (3, 0.5, (70, 100), (100, 150)), (1, 0.2, (5, 15), (120, 150))]

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="needs Debian's chromium and chromium-driver (bash scripts/setup.sh "
                                "installs them where apt is available)")


def rectangle(rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def record(image_id: int, category: int, score: float, mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    ys, xs = np.nonzero(mask)
    return {"image_id": image_id, "category_id": category, "score": score,
            "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
            "segmentation": {"size": [HEIGHT, WIDTH], "counts": rle["counts"].decode("ascii")}}


@pytest.fixture()
def viewer_files(tmp_path: Path) -> dict[str, Path]:
    images = tmp_path / "images"
    images.mkdir()
    for n in (1, 2):
        cv2.imwrite(str(images / f"{n:06d}.png"), np.full((HEIGHT, WIDTH, 3), GREY, np.uint8))
    results = [record(1, c, s, rectangle(r, k)) for c, s, r, k in DETECTIONS]
    results.append(record(2, 3, 0.7, rectangle((10, 50), (10, 50))))
    (tmp_path / "dets.json").write_text(json.dumps(results))
    (tmp_path / "other.json").write_text(json.dumps(results[:1]))
    truth = {"images": [{"id": n, "file_name": f"{n:06d}.png", "height": HEIGHT, "width": WIDTH} for n in (1, 2)],
             "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
             "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [30, 20, 50, 40], "area": 2000,
                              "iscrowd": 0, "segmentation": [[30, 20, 80, 20, 80, 60, 30, 60]]}]}
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    return {"images": images, "results": tmp_path / "dets.json", "compare": tmp_path / "other.json",
            "ann": tmp_path / "gt.json"}


@pytest.fixture()
def browser() -> Iterator:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def drawn(driver) -> list[int]:
    return driver.execute_script(
        "return [...document.querySelectorAll('canvas.detections')].map(c => parseInt(c.dataset.drawn, 10));")


def set_value(driver, element_id: str, value: str) -> None:
    driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('input', {bubbles: true}));", element_id, value)


def tinted(driver, index: int = 0) -> np.ndarray:
    """[H, W] bool: where detection canvas ``index`` differs from the grey image."""
    url = driver.execute_script(
        "return document.querySelectorAll('canvas.detections')[arguments[0]].toDataURL('image/png');", index)
    pixels = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    return (np.abs(pixels.astype(int) - GREY) > 2).any(axis=2)


def severe_logs(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_viewer_draws_the_rle_masks_and_its_controls_work(viewer_files: dict[str, Path], browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    gallery = open_gallery(viewer_files["results"], viewer_files["images"], viewer_files["ann"],
                           viewer_files["compare"])
    with running(create_app(None, gallery)) as url:
        browser.get(url + "/")
        wait_for(browser, "return document.querySelectorAll('canvas.detections').length === 2")
        assert drawn(browser) == [3, 1]
        assert browser.find_elements(By.CSS_SELECTOR, "canvas.truth")  # ground truth beside, by default
        # Masks only: every tinted pixel is a mask pixel of the RLEs, and every mask pixel is tinted.
        browser.find_element(By.ID, "show-boxes").click()
        browser.find_element(By.ID, "show-labels").click()
        union = np.zeros((HEIGHT, WIDTH), dtype=bool)
        for _, _, rows, cols in DETECTIONS:
            union |= rectangle(rows, cols)
        np.testing.assert_array_equal(tinted(browser), union)
        # The score slider changes what is drawn.
        set_value(browser, "score", "0.6")
        assert drawn(browser) == [1, 1]
        np.testing.assert_array_equal(tinted(browser), rectangle(DETECTIONS[0][2], DETECTIONS[0][3]))
        set_value(browser, "score", "0.3")
        assert drawn(browser) == [2, 1]
        set_value(browser, "score", "0")
        # The class filter, by the names the annotation file gives.
        Select(browser.find_element(By.ID, "class-filter")).select_by_visible_text("car")
        assert drawn(browser) == [1, 0]
        np.testing.assert_array_equal(tinted(browser), rectangle(DETECTIONS[1][2], DETECTIONS[1][3]))
        Select(browser.find_element(By.ID, "class-filter")).select_by_visible_text("all")
        set_value(browser, "topk", "2")
        assert drawn(browser) == [2, 1]
        set_value(browser, "topk", "100")
        Select(browser.find_element(By.ID, "gt-mode")).select_by_visible_text("off")
        assert not browser.find_elements(By.CSS_SELECTOR, "canvas.truth")
        # The next image, with its own detections.
        browser.find_element(By.ID, "next").click()
        wait_for(browser, "return document.getElementById('image-select').value === '1'"
                          " && document.querySelector('canvas.detections').dataset.drawn === '1'")
        assert drawn(browser) == [1, 0]
        np.testing.assert_array_equal(tinted(browser), rectangle((10, 50), (10, 50)))
        # Back, with everything drawn, for the screenshot.
        browser.find_element(By.ID, "prev").click()
        wait_for(browser, "return document.getElementById('image-select').value === '0'")
        browser.find_element(By.ID, "show-boxes").click()
        browser.find_element(By.ID, "show-labels").click()
        Select(browser.find_element(By.ID, "gt-mode")).select_by_visible_text("beside")
        wait_for(browser, "return document.querySelectorAll('canvas.truth').length === 1")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "viewer.png"))
        assert severe_logs(browser) == []


def test_served_page_uploads_an_image_and_draws_its_detections(small_checkpoint: Path, browser,
                                                               tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from yolact.inference.options import InferenceOptions
    from yolact.inference.predictor import load
    from yolact.serve.batcher import DynamicBatcher

    predictor = load(small_checkpoint, options=InferenceOptions(score_threshold=0.0, device="cpu", top_k=5))
    image = tmp_path / "upload.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    with running(create_app(DynamicBatcher(predictor))) as url:
        browser.get(url + "/")
        wait_for(browser, "return !document.getElementById('upload-label').hidden")
        set_value(browser, "score", "0")
        set_value(browser, "topk", "5")  # the upload asks the server for this many
        browser.find_element(By.ID, "upload").send_keys(str(image))
        wait_for(browser, "const c = document.querySelector('canvas.detections'); return c && c.width === 120")
        assert drawn(browser) == [5]
        set_value(browser, "topk", "2")
        assert drawn(browser) == [2]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "serve-upload.png"))
        assert severe_logs(browser) == []
