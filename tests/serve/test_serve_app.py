"""``yolact serve``'s application on a real 127.0.0.1 socket: parity, batching, bad input, disconnects, drain."""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from conftest import SMALL_CLASSES
from serving import running

from yolact.inference.job import PredictJob, run_prediction
from yolact.inference.options import InferenceOptions
from yolact.inference.predictor import load
from yolact.serve.app import create_app
from yolact.serve.batcher import DynamicBatcher
from yolact.serve.options import ServeOptions

REPO = Path(__file__).resolve().parents[2]
COCO_IMAGE = Path(os.environ.get("YOLACT_SHARED", REPO.parent / "shared")) / "data/coco128-seg/images/000000000009.jpg"
TIMEOUT = httpx.Timeout(120.0)


def small_app(checkpoint: Path, max_batch: int = 8, max_wait_ms: float = 10.0, **limits: int):
    predictor = load(checkpoint, options=InferenceOptions(score_threshold=0.0, device="cpu"))
    batcher = DynamicBatcher(predictor, max_batch, max_wait_ms / 1000)
    return create_app(batcher, None, ServeOptions(**limits)), batcher


def png_bytes(height: int = 64, width: int = 80) -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


def compare(shared_dir: Path, expected: Path, records: list, tmp_path: Path, name: str) -> None:
    actual = tmp_path / f"{name}.json"
    actual.write_text(json.dumps(records))
    result = subprocess.run([sys.executable, str(shared_dir / "spec" / "compare_dets.py"), str(expected),
                             str(actual)], capture_output=True, text=True)
    assert result.returncode == 0, f"{name}: {result.stdout}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["yolact_resnet50_seed0", "yolact_plus_resnet50_seed0"])
def test_predict_gives_the_vectors_detections_alone_and_batched(name: str, shared_dir: Path,
                                                                 make_official_checkpoint, tmp_path: Path) -> None:
    vector = shared_dir / "spec" / "vectors" / name
    case = dict(line.split("=", 1) for line in (vector / "case.txt").read_text().split())
    checkpoint = make_official_checkpoint(case["config"], int(case["seed"]), float(case["class_gain"]))
    predictor = load(checkpoint, case["config"], device="cpu")
    # A long wait, so that the eight concurrent requests are surely run as one batch.
    batcher = DynamicBatcher(predictor, max_batch=8, max_wait_s=2.0)
    image = (vector / "image.png").read_bytes()
    params = {"score_threshold": 0, "top_k": 100, "format": "coco"}
    with running(create_app(batcher)) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        alone = client.post("/v1/predict", params=params, content=image, headers={"Content-Type": "image/png"})
        assert alone.status_code == 200, alone.text
        compare(shared_dir, vector / "expected.json", alone.json(), tmp_path, "alone")
        before = batcher.stats.batches
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: httpx.post(f"{url}/v1/predict", params=params, timeout=TIMEOUT,
                                                         files={"image": ("image.png", image, "image/png")}),
                                    range(8)))
        assert batcher.stats.batches - before < 8 and batcher.stats.largest_batch > 1
        for n, answer in enumerate(answers):
            assert answer.status_code == 200, answer.text
            compare(shared_dir, vector / "expected.json", answer.json(), tmp_path, f"batched{n}")
        # The JSON form holds the same detections.
        plain = client.post("/v1/predict", params={"score_threshold": 0, "top_k": 100}, content=image).json()
    assert plain["image"] == {"width": 640, "height": 480} and plain["model"]["config"] == case["config"]
    assert [d["score"] for d in plain["detections"]] == [r["score"] for r in alone.json()]
    assert [d["bbox_xyxy"][:2] for d in plain["detections"]] == [r["bbox"][:2] for r in alone.json()]


def test_coco_format_is_exactly_what_predict_json_writes(small_checkpoint: Path, tmp_path: Path) -> None:
    options = InferenceOptions(score_threshold=0.0, device="cpu", top_k=20)
    run_prediction(PredictJob(COCO_IMAGE, small_checkpoint, options=options, json=tmp_path / "dets.json",
                              progress=False))
    expected = json.loads((tmp_path / "dets.json").read_text())
    app, _ = small_app(small_checkpoint)
    with running(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        upload = client.post("/v1/predict", params={"format": "coco", "top_k": 20},
                             files={"image": (COCO_IMAGE.name, COCO_IMAGE.read_bytes(), "image/jpeg")})
        polygons = client.post("/v1/predict", params={"format": "coco", "top_k": 20, "segmentation": "polygon",
                                                      "image_id": 5}, content=COCO_IMAGE.read_bytes())
        boxes_only = client.post("/v1/predict", params={"top_k": 3, "segmentation": "none",
                                                        "classes": "square"}, content=COCO_IMAGE.read_bytes())
    assert len(expected) == 20 and upload.json() == expected  # image id 9, from the file name, as predict numbers it
    assert [r["image_id"] for r in polygons.json()] == [5] * 20
    assert all(isinstance(r["segmentation"], list) for r in polygons.json())
    detections = boxes_only.json()["detections"]
    assert 0 < len(detections) <= 3 and {d["class_name"] for d in detections} == {"square"}
    assert all("segmentation" not in d for d in detections)


def test_health_info_docs_and_overlay(small_checkpoint: Path) -> None:
    app, _ = small_app(small_checkpoint)
    with running(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert client.get("/v1/health").json() == {"status": "ok", "model": True}
        info = client.get("/v1/info").json()
        assert info["classes"] == list(SMALL_CLASSES) and info["backend"] == "openvino" and info["device"] == "cpu"
        assert info["config"] == "yolact_resnet18" and info["batching"]["max_batch"] == 8
        assert "/v1/predict" in client.get("/openapi.json").json()["paths"]
        assert client.get("/docs").status_code == 200
        overlay = client.post("/v1/predict/overlay", content=png_bytes(50, 70))
        assert overlay.headers["content-type"] == "image/png"
        assert cv2.imdecode(np.frombuffer(overlay.content, np.uint8), cv2.IMREAD_COLOR).shape == (50, 70, 3)
        page = client.get("/")
        assert page.status_code == 200 and "/static/viewer.js" in page.text
        assert client.get("/v1/view/manifest").json()["mode"] == "serve"


def truncated_jpeg() -> bytes:
    data = cv2.imencode(".jpg", np.random.default_rng(1).integers(0, 255, (80, 80, 3), dtype=np.uint8))[1].tobytes()
    return data[: len(data) // 2]


def gif_bytes() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="GIF")
    return out.getvalue()


BAD_REQUESTS = [
    # (what, query, body, content type, status, words in the error)
    ("empty body", {}, b"", "image/png", 400, "no image"),
    ("not an image", {}, b"hello, this is text", "text/plain", 415, "not an image"),
    ("truncated JPEG", {}, truncated_jpeg(), "image/jpeg", 400, "truncated"),
    ("a GIF", {}, gif_bytes(), "image/gif", 415, "GIF"),
    ("too many pixels", {}, png_bytes(120, 120), "image/png", 413, "14,400 pixels"),
    ("too large an upload", {}, b"\xff" * 300_000, "image/jpeg", 413, "limit"),
    ("score out of range", {"score_threshold": 2}, png_bytes(), "image/png", 400, "score_threshold"),
    ("top-k 0", {"top_k": 0}, png_bytes(), "image/png", 400, "top_k"),
    ("unknown class", {"classes": "unicorn"}, png_bytes(), "image/png", 400, "unicorn"),
    ("unknown segmentation", {"segmentation": "mesh"}, png_bytes(), "image/png", 400, "segmentation"),
    ("coco without masks", {"format": "coco", "segmentation": "none"}, png_bytes(), "image/png", 400, "rle"),
    ("multipart without a file", {}, b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--XX--\r\n",
     "multipart/form-data; boundary=XX", 400, "no file"),
    ("broken multipart", {}, b"garbage", "multipart/form-data", 400, "multipart"),
]


def test_every_bad_input_gets_its_4xx_and_the_server_keeps_answering(small_checkpoint: Path) -> None:
    app, _ = small_app(small_checkpoint, max_pixels=10_000, max_upload_bytes=200_000)
    with running(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        for what, query, body, content_type, status, words in BAD_REQUESTS:
            answer = client.post("/v1/predict", params=query, content=body, headers={"Content-Type": content_type})
            assert answer.status_code == status, f"{what}: {answer.status_code} {answer.text}"
            error = answer.json()["error"]
            assert words in error and "\n" not in error, f"{what}: {error}"
            good = client.post("/v1/predict", content=png_bytes())
            assert good.status_code == 200, f"after {what}: {good.text}"
        assert client.get("/v1/predict").status_code == 405
        assert client.post("/v1/predict/overlay", content=b"").status_code == 400


@pytest.mark.parametrize("route", ["/v1/view/images/../../../etc/passwd", "/v1/view/images/%2e%2e%2fetc%2fpasswd",
                                   "/v1/view/images/-1", "/v1/view/images/0", "/static/..%2f__init__.py",
                                   "/static/index.html.bak", "/v1/view/detections/0", "/../../etc/passwd"])
def test_no_route_reads_a_path_the_client_names(small_checkpoint: Path, route: str) -> None:
    app, _ = small_app(small_checkpoint)
    with running(app) as url:
        # A raw request line, so that no client normalises the dots away.
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=30) as sock:
            sock.sendall(f"GET {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
    assert reply.split(b"\r\n", 1)[0].split()[1] == b"404", reply[:200]
    assert b"root:" not in reply


def test_a_client_that_leaves_before_its_batch_runs_costs_no_inference(small_checkpoint: Path) -> None:
    app, batcher = small_app(small_checkpoint, max_batch=8, max_wait_ms=1500)
    body = png_bytes()
    with running(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            time.sleep(0.3)  # queued, waiting for batch-mates
        deadline = time.monotonic() + 30
        while batcher.stats.cancelled == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert batcher.stats.cancelled == 1 and batcher.stats.images == 0
        assert client.post("/v1/predict", content=body).status_code == 200
        assert client.get("/v1/info").json()["stats"]["images"] == 1


def test_sigterm_answers_the_requests_in_flight_then_exits(small_checkpoint: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "yolact", "serve", "--weights", str(small_checkpoint), "--device", "cpu", "--port",
         "0", "--max-wait-ms", "1500"], stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()  # the address line, printed once clients can connect
        assert "http://127.0.0.1:" in line, line
        url = line.split("http://", 1)[1].split("/", 1)[0]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"http://{url}/v1/predict", content=png_bytes(), timeout=TIMEOUT)
            time.sleep(0.5)  # the request is in, waiting for batch-mates
            server.send_signal(signal.SIGTERM)
            answer = pending.result(timeout=60)
        assert answer.status_code == 200 and "detections" in answer.json()
        assert server.wait(timeout=60) == 0
    finally:
        server.kill()
        server.wait()


@pytest.mark.slow
def test_an_exported_onnx_model_is_served_with_the_vectors_detections(resnet50_onnx: Path, shared_dir: Path,
                                                                      tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    vector = shared_dir / "spec" / "vectors" / "yolact_resnet50_seed0"  # the checkpoint resnet50_onnx comes from
    predictor = load(resnet50_onnx, options=InferenceOptions(backend="onnxruntime", score_threshold=0.0))
    batcher = DynamicBatcher(predictor, max_batch=4, max_wait_s=2.0)
    image = (vector / "image.png").read_bytes()
    params = {"score_threshold": 0, "top_k": 100, "format": "coco"}
    with running(create_app(batcher)) as url:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda _: httpx.post(f"{url}/v1/predict", params=params, content=image,
                                                         timeout=TIMEOUT), range(3)))
        info = httpx.get(f"{url}/v1/info").json()
    assert info["backend"] == "onnxruntime" and batcher.stats.largest_batch > 1
    for n, answer in enumerate(answers):
        assert answer.status_code == 200, answer.text
        compare(shared_dir, vector / "expected.json", answer.json(), tmp_path, f"onnx{n}")


def test_a_client_that_leaves_mid_upload_leaves_the_server_answering(small_checkpoint: Path) -> None:
    app, batcher = small_app(small_checkpoint)
    with running(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=30) as sock:
                sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                             b"Content-Length: 100000\r\n\r\n" + png_bytes()[:500])
        assert client.post("/v1/predict", content=png_bytes()).status_code == 200
    assert batcher.stats.images == 1
