"""Fake Google Cloud Vision `v1/images:annotate`: API key auth, request-level and per-image errors.

The wire format is `adacompress.cloud_backends.wire.google`: the key in the `X-Goog-Api-Key`
header (what our client sends) or as `?key=`, as Google accepts it. Label `mid`s are synthetic
(`/m/fake<class index>`), not Knowledge Graph ids.
"""

from __future__ import annotations

from typing import Any

from adacompress.cloud_backends.base import Label
from adacompress.cloud_backends.fakes.server import FakeServer
from adacompress.cloud_backends.local import CLASS_NAMES
from adacompress.cloud_backends.wire import google
from adacompress.cloud_backends.wire.common import ErrorKind, WireReply, WireRequest

DEFAULT_API_KEY = "AIzaFakeGoogleVisionKey0adacompress"
_CLASS_INDEX = {name.title(): i for i, name in enumerate(CLASS_NAMES)}


def _mid(label: Label) -> str:
    return f"/m/fake{_CLASS_INDEX.get(label.name, 0):04d}"


class GoogleFake(FakeServer):
    """Accepts one API key."""

    provider = "google"
    wire = google.FORMAT

    def __init__(self, *args, api_key: str = DEFAULT_API_KEY, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.api_key = api_key

    def env(self) -> dict[str, str]:
        return {"GOOGLE_VISION_ENDPOINT": self.endpoint, "GOOGLE_VISION_API_KEY": self.api_key}

    def handle(self, request: WireRequest) -> WireReply:
        if not google.ROUTE.matches(request):
            return google.error_reply(ErrorKind.NOT_FOUND,
                                      f"The requested URL {request.path} was not found on this server.")
        if google.credentials(request)["key"] != self.api_key or self.faults.bad_credentials:
            return google.error_reply(ErrorKind.UNAUTHORIZED)
        google.check_request_size(request)
        self.begin_call()
        return self.recognize(request)

    def _name(self, imagenet_name: str) -> str:
        return imagenet_name.title()

    def _reply_options(self) -> dict[str, Any]:
        return {"mid": _mid}
