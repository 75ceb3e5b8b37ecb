"""Running the application on uvicorn: :func:`serve_model` (``yolact serve``) and :func:`view_results`
(``yolact view``). uvicorn stops on Ctrl+C or SIGTERM after the requests in flight have been answered."""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI

from yolact.errors import YolactError
from yolact.serve.options import ServeJob, ServeOptions, ViewJob


def require_serve_extra() -> None:
    """One line naming the fix when FastAPI or uvicorn is missing, before any model is loaded."""
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(name) is None]
    if missing:
        raise YolactError(f"serving needs {', '.join(missing)}: pip install 'yolact[serve]'")


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound and listening on ``host``:``port`` (0: a free port), so clients can connect as soon as the
    address is printed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port "
                                 "or --host") from None
    sock.listen(2048)
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run_app(app: FastAPI, sock: socket.socket, options: ServeOptions, what: str,
            report: Callable[[str], None] | None = None) -> None:
    """Serve ``app`` on ``sock`` until Ctrl+C or SIGTERM; ``report`` gets the address line once clients can
    connect."""
    import uvicorn

    report = report or (lambda line: print(line, file=sys.stderr, flush=True))
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if not _is_loopback(options.host):
        report(f"warning: listening on {options.host}: anyone who can reach this machine can use it")
    report(f"{what} on http://{shown}:{port}/ (API docs at /docs); Ctrl+C or SIGTERM stops after the requests "
           "in flight")
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_keep_alive=5)
    _draining_server(config).run(sockets=[sock])
    report("stopped, every request in flight answered")


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that a stop by Ctrl+C or SIGTERM ends the process normally (exit 0) once the
        requests in flight are answered; uvicorn raises the signal again after draining, so that the process
        dies of it."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


def _draining_server(config: Any) -> Any:
    """uvicorn's server with the signal handling above (the class is made on first use: uvicorn loads lazily)."""
    return _server_class()(config)


def build_model_app(job: ServeJob) -> FastAPI:
    """The application ``yolact serve`` runs: the model loaded as ``job.options`` say, behind its batcher."""
    from yolact.inference.predictor import load
    from yolact.serve.app import create_app
    from yolact.serve.batcher import DynamicBatcher

    predictor = load(job.weights, job.config, job.options)
    batcher = DynamicBatcher(predictor, job.serve.max_batch, job.serve.max_wait_ms / 1000)
    return create_app(batcher, None, job.serve)


def serve_model(job: ServeJob, report: Callable[[str], None] | None = None) -> None:
    """``yolact serve``: load the model, then answer requests until stopped."""
    require_serve_extra()
    sock = listening_socket(job.serve.host, job.serve.port)  # a taken port is refused before the model loads
    with sock:
        run_app(build_model_app(job), sock, job.serve, f"serving {job.weights}", report)


def view_results(job: ViewJob, report: Callable[[str], None] | None = None) -> None:
    """``yolact view``: every file read and checked, then the viewer served until stopped."""
    require_serve_extra()
    from yolact.serve.app import create_app
    from yolact.serve.gallery import open_gallery

    gallery = open_gallery(job.results, job.images, job.annotations, job.compare)
    note = f"; {gallery.unmatched} record(s) are for images not in {job.images}" if gallery.unmatched else ""
    with listening_socket(job.serve.host, job.serve.port) as sock:
        run_app(create_app(None, gallery, job.serve), sock, job.serve,
                f"viewing {len(gallery.images)} image(s){note}", report)
