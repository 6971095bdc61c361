"""Fake Face++ `detectsceneandobject`: form or multipart POST, `error_message` errors, plain-text 413.

The wire format is `adacompress.cloud_backends.wire.facepp`. ImageNet's landscape classes
(mountain, beach, valley, ...) are reported as `scenes`, every other class as `objects`, with
confidences 0-100 to 3 decimals.
"""

from __future__ import annotations

from typing import Any

from adacompress.cloud_backends.fakes.server import FakeServer
from adacompress.cloud_backends.wire import facepp
from adacompress.cloud_backends.wire.common import ErrorKind, WireReply, WireRequest

DEFAULT_API_KEY = "fakeFaceppApiKey0adacompress"
DEFAULT_API_SECRET = "fakeFaceppApiSecret0adacompress"
SCENE_CLASSES = frozenset({"mountain", "cliff", "coral reef", "geyser", "lakeshore", "promontory", "sandbar",
                           "beach", "valley", "volcano"})


class FaceppFake(FakeServer):
    """Accepts one api_key / api_secret pair; labels in `scene_classes` are reported as scenes."""

    provider = "facepp"
    wire = facepp.FORMAT

    def __init__(self, *args, api_key: str = DEFAULT_API_KEY, api_secret: str = DEFAULT_API_SECRET,
                 scene_classes: frozenset[str] = SCENE_CLASSES, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.api_key, self.api_secret = api_key, api_secret
        self.scene_classes = scene_classes

    def env(self) -> dict[str, str]:
        return {"FACEPP_ENDPOINT": self.endpoint, "FACEPP_API_KEY": self.api_key,
                "FACEPP_API_SECRET": self.api_secret}

    def handle(self, request: WireRequest) -> WireReply:
        if not facepp.ROUTE.matches(request):
            return facepp.error_reply(ErrorKind.NOT_FOUND)
        sent = facepp.credentials(request)
        if sent != {"api_key": self.api_key, "api_secret": self.api_secret} or self.faults.bad_credentials:
            return facepp.error_reply(ErrorKind.UNAUTHORIZED)
        self.begin_call()
        return self.recognize(request)

    def _reply_options(self) -> dict[str, Any]:
        return {"scene_classes": self.scene_classes}
