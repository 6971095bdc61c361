"""Run the proxy on loopback inside this process, for as long as a `with` block lasts (demo, tests, benches)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from adacompress.service import dropin
from adacompress.service.proxy import ProxyService, create_app

START_TIMEOUT_S = 60.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextmanager
def serving(service: ProxyService, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """The proxy (every route, drop-in ones included) on a uvicorn server in a thread; yields its base URL.

    On exit the server drains what is in flight and the service closes (workers, watcher, store).
    """
    port = port or free_port(host)
    app = create_app(service, [dropin.mount])
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="adacompress-proxy", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the proxy did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
