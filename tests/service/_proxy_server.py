"""A proxy on a real uvicorn server in a thread, for the proxy and drop-in tests."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from PIL import Image

from adacompress.service import dropin
from adacompress.service.assemble import ServeOptions, assemble
from adacompress.service.proxy import ProxyConfig, ProxyService, create_app
from adacompress.service.rules import PaperRules
from adacompress.service.store import EmbeddedStore

ALWAYS, NEVER = PaperRules(p_est_floor=1.0, p_est_ceiling=1.0), PaperRules(p_est_floor=0.0, p_est_ceiling=0.0)
NEVER_ESTIMATE = ServeOptions(backend="local:lite0", policy="fixed:10", workers=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(service: ProxyService) -> Iterator[str]:
    """The proxy app on a uvicorn server in a thread; its base URL."""
    port = free_port()
    app = create_app(service, [dropin.mount])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "proxy did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def make_service(options: ServeOptions = NEVER_ESTIMATE, config: ProxyConfig | None = None, backend=None,
                 store=None, rules=NEVER) -> ProxyService:
    return assemble(options, config, backend=backend, store=store if store is not None else EmbeddedStore("proxy:"),
                    rules=rules)


def jpeg(photo: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    photo.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


