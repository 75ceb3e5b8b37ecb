"""The FastAPI application: ``/v1/predict`` (JSON), ``/v1/predict/overlay`` (PNG), ``/v1/health``, ``/v1/info``,
and the viewer page at ``/`` with its data routes. :func:`create_app` takes what it serves, explicitly: a
:class:`~yolact.serve.batcher.DynamicBatcher` (``yolact serve``) and/or a :class:`~yolact.serve.gallery.Gallery`
(``yolact view``). No route reads a path the client names: images are served by index from the gallery's list."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any, Literal, TypeVar

import cv2
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from yolact import __version__
from yolact.inference.drawing import draw_instances
from yolact.inference.files import image_ids_for
from yolact.inference.results import Prediction
from yolact.serve.batcher import DynamicBatcher, Selection
from yolact.serve.decode import BadRequest, decode_image
from yolact.serve.gallery import Gallery
from yolact.serve.options import ServeOptions

T = TypeVar("T")
log = logging.getLogger("yolact.serve")
STATIC_FILES = {"viewer.js": "text/javascript", "viewer.css": "text/css"}
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The image: a JPEG, PNG, BMP, TIFF or WebP file as the body, or as a multipart upload.",
        "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "image": {"type": "string", "format": "binary"}}}},
        },
    }
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def _static(name: str) -> bytes:
    return resources.files("yolact.serve").joinpath("static", name).read_bytes()


def create_app(batcher: DynamicBatcher | None, gallery: Gallery | None = None,
               options: ServeOptions | None = None) -> FastAPI:
    """The service. With ``batcher`` the model's routes; with ``gallery`` the viewer browses it; the page at ``/``
    is there either way (with an upload box when a model is served)."""
    options = options or ServeOptions()
    pool = concurrent.futures.ThreadPoolExecutor(options.workers, thread_name_prefix="yolact-codec")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if batcher is not None:
            batcher.start()
        yield
        # uvicorn has finished every request in flight (SIGTERM drains); then the inference thread ends.
        if batcher is not None:
            batcher.stop()
        pool.shutdown(wait=True)

    app = FastAPI(title="yolact", version=__version__, lifespan=lifespan,
                  description="YOLACT instance segmentation over HTTP: POST an image to /v1/predict.")

    async def off_thread(function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, function, *args)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def bad_query(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "query")
        return _error(400, f"{where}: {first.get('msg', 'invalid value')}; see /docs for the accepted values")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return _error(500, f"the server failed on this request ({type(exc).__name__}); it keeps running")

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": batcher is not None}

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        answer: dict[str, Any] = {"version": __version__, "viewer": gallery is not None}
        if batcher is not None:
            predictor = batcher.predictor
            answer.update({
                "config": predictor.config.name,
                "classes": list(predictor.class_names),
                "category_ids": list(predictor.network.category_ids),
                "backend": predictor.network.backend,
                "device": str(predictor.device),
                "precision": predictor.options.precision,
                "defaults": {"score_threshold": predictor.options.score_threshold,
                             "top_k": predictor.options.top_k},
                "batching": {"max_batch": batcher.max_batch, "max_wait_ms": batcher.max_wait_s * 1000},
                "limits": {"max_pixels": options.max_pixels, "max_upload_bytes": options.max_upload_bytes},
                "stats": vars(batcher.stats).copy(),
            })
        return answer

    async def predict(request: Request, score_threshold: float | None, top_k: int | None, classes: str | None
                      ) -> tuple[Prediction, np.ndarray, str | None] | None:
        """The request's image through the batcher; None when the client left first."""
        if batcher is None:
            raise BadRequest(404, "this server has no model: start it with `yolact serve --weights ...`")
        defaults = batcher.predictor.options
        wanted = tuple(name.strip() for name in classes.split(",") if name.strip()) if classes else None
        try:
            selection = Selection(defaults.score_threshold if score_threshold is None else score_threshold,
                                  defaults.top_k if top_k is None else top_k, wanted or defaults.classes)
            batcher.predictor_for(selection)
        except ValueError as exc:
            raise BadRequest(400, str(exc).replace("--classes", "classes").replace("--", "")) from None
        data, filename = await _read_image_body(request, options.max_upload_bytes)
        image = await off_thread(decode_image, data, options.max_pixels)
        future = batcher.submit(image, selection)
        prediction = await _unless_client_leaves(request, asyncio.wrap_future(future), future)
        return None if prediction is None else (prediction, image, filename)

    @app.post("/v1/predict", openapi_extra=IMAGE_BODY)
    async def predict_json(
        request: Request,
        score_threshold: float | None = Query(None, ge=0.0, le=1.0, description="keep scores above this"),
        top_k: int | None = Query(None, ge=1, le=10_000, description="keep at most this many detections"),
        classes: str | None = Query(None, description="comma-separated class names to keep"),
        segmentation: Literal["rle", "polygon", "none"] = Query("rle"),
        format: Literal["yolact", "coco"] = Query("yolact", description="coco: the records `yolact predict --json` "
                                                  "writes for this image"),
        image_id: int | None = Query(None, description="coco: the image id (default: as `yolact predict` numbers "
                                     "the uploaded file name)"),
    ) -> Response:
        if format == "coco" and segmentation == "none":
            raise BadRequest(400, "format=coco writes masks: use segmentation=rle or polygon")
        done = await predict(request, score_threshold, top_k, classes)
        if done is None:
            return Response(status_code=499)
        prediction, _, filename = done
        if format == "coco":
            if image_id is None:
                image_id = image_ids_for([filename or "image"]).ids[0]
            body = await off_thread(prediction.to_coco, image_id, segmentation)
        else:
            body = await off_thread(_detections_body, prediction, segmentation, batcher)
        return JSONResponse(body)

    @app.post("/v1/predict/overlay", openapi_extra=IMAGE_BODY, response_class=Response,
              responses={200: {"content": {"image/png": {}}}})
    async def predict_overlay(
        request: Request,
        score_threshold: float | None = Query(None, ge=0.0, le=1.0),
        top_k: int | None = Query(None, ge=1, le=10_000),
        classes: str | None = Query(None),
    ) -> Response:
        done = await predict(request, score_threshold, top_k, classes)
        if done is None:
            return Response(status_code=499)
        prediction, image, _ = done
        png = await off_thread(_overlay_png, prediction, image, batcher.predictor.class_names)  # type: ignore[union-attr]
        return Response(png, media_type="image/png")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC_FILES:  # a fixed list: nothing else in the package (or outside it) is served
            raise BadRequest(404, f"no static file {name!r}")
        return Response(_static(name), media_type=STATIC_FILES[name])

    @app.get("/v1/view/manifest")
    async def manifest() -> dict[str, Any]:
        if gallery is not None:
            return gallery.manifest()
        predictor = batcher.predictor if batcher is not None else None
        categories = ({str(c): n for c, n in zip(predictor.network.category_ids, predictor.class_names, strict=True)}
                      if predictor is not None else {})
        return {"mode": "serve", "images": [], "results": [], "ground_truth": False, "categories": categories}

    def gallery_image(index: int) -> Any:
        image = gallery.image(index) if gallery is not None else None
        if image is None:
            raise BadRequest(404, f"no image {index}: images are numbered from 0 in /v1/view/manifest")
        return image

    @app.get("/v1/view/images/{index}")
    async def view_image(index: int) -> FileResponse:
        return FileResponse(gallery_image(index).path)

    @app.get("/v1/view/detections/{index}")
    async def view_detections(index: int, results: int = Query(0, ge=0, le=1)) -> list[dict[str, Any]]:
        image = gallery_image(index)
        if results >= len(gallery.results):  # type: ignore[union-attr]
            raise BadRequest(404, "no second results file: start the viewer with --compare")
        return gallery.results[results].get(image.image_id, [])  # type: ignore[union-attr]

    @app.get("/v1/view/ground-truth/{index}")
    async def view_ground_truth(index: int) -> list[dict[str, Any]]:
        image = gallery_image(index)
        if gallery.ground_truth is None:  # type: ignore[union-attr]
            raise BadRequest(404, "no ground truth: start the viewer with --ann")
        return gallery.ground_truth.get(image.image_id, [])  # type: ignore[union-attr]

    return app


async def _read_image_body(request: Request, limit: int) -> tuple[bytes, str | None]:
    """The uploaded file's bytes (the body, or the first file of a multipart form) and its file name, read no
    further than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the upload is {int(declared) / 2**20:.1f} MB, over this server's limit of "
                              f"{limit / 2**20:.1f} MB: send a smaller file")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, f"the upload is over this server's limit of {limit / 2**20:.1f} MB: send a "
                                      "smaller file")
            chunks.append(chunk)
    except ClientDisconnect:  # left mid-upload: nothing was queued, and nobody reads the answer
        raise BadRequest(400, "the client disconnected during the upload") from None
    body = b"".join(chunks)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return body, None

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=1, max_fields=32).parse()
    except MultiPartException as exc:
        raise BadRequest(400, f"the multipart body cannot be read ({exc.message}): upload one file") from None
    uploads = [value for _, value in form.multi_items() if not isinstance(value, str)]
    if not uploads:
        raise BadRequest(400, "the multipart form has no file: upload the image as a file field (e.g. 'image')")
    data = await uploads[0].read()
    await form.close()
    return data, uploads[0].filename


async def _unless_client_leaves(request: Request, result: Awaitable[T], future: concurrent.futures.Future
                                ) -> T | None:
    """``result``, or None (and the queued work dropped) when the client disconnects first."""
    task = asyncio.ensure_future(result)
    gone = asyncio.ensure_future(_disconnected(request))
    finished, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    if task in finished:
        gone.cancel()
        return task.result()
    future.cancel()  # dropped if its batch has not started; else it finishes and is discarded
    task.cancel()
    return None


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _detections_body(prediction: Prediction, segmentation: str, batcher: DynamicBatcher | None) -> dict[str, Any]:
    height, width = prediction.image_size
    masks: list[Any] = [None] * len(prediction)
    if segmentation != "none":
        masks = [record["segmentation"] for record in prediction.to_coco(0, segmentation)]
    detections = []
    for i in range(len(prediction)):
        x1, y1, x2, y2 = (int(v) for v in prediction.boxes_xyxy[i])
        detection: dict[str, Any] = {
            "class_id": int(prediction.class_ids[i]),
            "category_id": int(prediction.category_ids[i]),
            "class_name": prediction.class_names[i],
            "score": float(prediction.scores[i]),
            "bbox_xyxy": [x1, y1, x2, y2],
        }
        if prediction.box_scores is not None:
            detection["box_score"] = float(prediction.box_scores[i])
        if segmentation != "none":
            detection["segmentation"] = masks[i]
        detections.append(detection)
    model = {}
    if batcher is not None:
        model = {"config": batcher.predictor.config.name, "backend": batcher.predictor.network.backend}
    return {"image": {"width": width, "height": height}, "model": model, "segmentation": segmentation,
            "detections": detections}


def _overlay_png(prediction: Prediction, image: np.ndarray, class_names: tuple[str, ...]) -> bytes:
    overlay = draw_instances(image, prediction.boxes_xyxy, prediction.scores, prediction.class_ids, class_names,
                             prediction.masks, mask_bounds_xyxy=prediction.mask_bounds_xyxy)
    ok, encoded = cv2.imencode(".png", overlay)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()
