"""The serving tests' server: the application on uvicorn in a thread, on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="pip install 'yolact[serve]'")

import uvicorn
from fastapi import FastAPI

from yolact.serve.server import listening_socket


@contextlib.contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """``app`` served on 127.0.0.1 at a free port; yields its base URL and stops it (draining) on exit."""
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


