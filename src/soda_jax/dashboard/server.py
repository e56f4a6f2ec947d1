"""Serving the dashboard with uvicorn: ``soda dashboard --prefix PATH [--host H] [--port N]``.

Binds to 127.0.0.1 by default (the pages show configs and paths; reach a cluster head through an
SSH tunnel), on port 8365 (8265 is Ray's dashboard, which ``soda launch`` forwards).
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from soda_jax.dashboard import DEFAULT_PORT
from soda_jax.dashboard.app import create_app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port), so the URL printed is the one served."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_server(prefix: str, poll_s: float | None = None) -> uvicorn.Server:
    app = create_app(prefix) if poll_s is None else create_app(prefix, poll_s=poll_s)
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))


def serve(prefix: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    sock = bind(host, port)
    server = make_server(prefix)
    print(f"soda dashboard for {prefix} at {url_of(sock)}", flush=True)
    server.run(sockets=[sock])


class BackgroundServer:
    """The dashboard served from a thread (tests, notebooks): ``with BackgroundServer(p) as url: ...``."""

    def __init__(self, prefix: str, host: str = "127.0.0.1", port: int = 0, poll_s: float | None = None):
        self.sock = bind(host, port)
        self.server = make_server(prefix, poll_s)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.02)
        return url_of(self.sock).rstrip("/")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
