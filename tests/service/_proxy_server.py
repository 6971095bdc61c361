"""What the proxy and drop-in tests share: services made for a test, a JPEG of a photo, a running server."""

from __future__ import annotations

import io

from PIL import Image

from adacompress.service.assemble import ServeOptions, assemble
from adacompress.service.proxy import ProxyConfig, ProxyService
from adacompress.service.proxy_runner import free_port
from adacompress.service.proxy_runner import serving as running
from adacompress.service.rules import PaperRules
from adacompress.service.store import EmbeddedStore

__all__ = ["ALWAYS", "NEVER", "NEVER_ESTIMATE", "free_port", "jpeg", "make_service", "running"]

ALWAYS, NEVER = PaperRules(p_est_floor=1.0, p_est_ceiling=1.0), PaperRules(p_est_floor=0.0, p_est_ceiling=0.0)
NEVER_ESTIMATE = ServeOptions(backend="local:lite0", policy="fixed:10", workers=0)


def make_service(options: ServeOptions = NEVER_ESTIMATE, config: ProxyConfig | None = None, backend=None,
                 store=None, rules=NEVER) -> ProxyService:
    return assemble(options, config, backend=backend, store=store if store is not None else EmbeddedStore("proxy:"),
                    rules=rules)


def jpeg(photo: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    photo.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


