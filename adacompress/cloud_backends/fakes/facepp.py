"""Fake Face++ `detectsceneandobject`: form or multipart POST, `error_message` errors, plain-text 413.

Requests over 2 MB get nginx's plain-text `413 Request Entity Too Large`, not JSON, as the real
gateway sends. ImageNet's landscape classes (mountain, beach, valley, ...) are reported as
`scenes`, every other class as `objects`, with confidences 0-100 to 3 decimals.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import secrets
import time
import uuid
from urllib.parse import parse_qsl

from adacompress.cloud_backends.fakes.server import FakeRequest, FakeServer, Reply
from adacompress.cloud_backends.limits import FACEPP_LIMITS, check_image
from adacompress.errors import BadImage, ImageTooLarge, NotAnImage, UnsupportedFormat

PATH = "/imagepp/beta/detectsceneandobject"
DEFAULT_API_KEY = "fakeFaceppApiKey0adacompress"
DEFAULT_API_SECRET = "fakeFaceppApiSecret0adacompress"
SCENE_CLASSES = frozenset({"mountain", "cliff", "coral reef", "geyser", "lakeshore", "promontory", "sandbar",
                           "beach", "valley", "volcano"})


def parse_form(request: FakeRequest) -> dict[str, bytes]:
    """Fields of a urlencoded or multipart/form-data body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + request.body)
        return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True) or b""
                for part in message.iter_parts()}
    return {k: v.encode("latin-1") for k, v in parse_qsl(request.body.decode("latin-1"), keep_blank_values=True)}


class FaceppFake(FakeServer):
    """Accepts one api_key / api_secret pair; labels in `scene_classes` are reported as scenes."""

    provider = "facepp"
    default_limits = FACEPP_LIMITS

    def __init__(self, *args, api_key: str = DEFAULT_API_KEY, api_secret: str = DEFAULT_API_SECRET,
                 scene_classes: frozenset[str] = SCENE_CLASSES, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.api_key, self.api_secret = api_key, api_secret
        self.scene_classes = scene_classes

    def env(self) -> dict[str, str]:
        return {"FACEPP_ENDPOINT": self.endpoint, "FACEPP_API_KEY": self.api_key,
                "FACEPP_API_SECRET": self.api_secret}

    def _error(self, status: int, message: str, **headers: str) -> Reply:
        return Reply.json(status, {"time_used": 3, "error_message": message, "request_id": self._request_id()},
                          **headers)

    @staticmethod
    def _request_id() -> str:
        return f"{int(time.time())},{uuid.uuid4()}"

    def internal_error(self) -> Reply:
        return self._error(500, "INTERNAL_ERROR")

    def handle(self, request: FakeRequest) -> Reply:
        if request.path != PATH or request.method != "POST":
            return self._error(404, "API_NOT_FOUND")
        if len(request.body) > FACEPP_LIMITS.max_request_bytes:
            return Reply.text(413, "Request Entity Too Large")
        form = parse_form(request)
        for key in ("api_key", "api_secret"):
            if key not in form:
                return self._error(400, f"MISSING_ARGUMENTS: {key}")
        if (form["api_key"].decode() != self.api_key or form["api_secret"].decode() != self.api_secret
                or self.faults.bad_credentials):
            return self._error(401, "AUTHENTICATION_ERROR")
        fault = self.begin_call()
        if fault == "quota":
            return self._error(403, "AUTHORIZATION_ERROR:Insufficient Account Balance")
        if fault in ("throttle", "qps"):
            return self._error(403, "CONCURRENCY_LIMIT_EXCEEDED", **self.throttle_headers())
        if fault == "unavailable":
            return self.internal_error()
        field = next((f for f in ("image_file", "image_base64", "image_url") if f in form), None)
        if field is None:
            return self._error(400, "MISSING_ARGUMENTS: image_url, image_file, image_base64")
        if field == "image_url":
            return self._error(400, "INVALID_IMAGE_URL")
        try:
            image = form[field] if field == "image_file" else base64.b64decode(form[field], validate=True)
            check_image(image, self.limits, self.provider)
            labels = self.answer_labels(image)
        except (binascii.Error, ValueError, UnsupportedFormat, NotAnImage):
            return self._error(400, f"IMAGE_ERROR_UNSUPPORTED_FORMAT:{field}")
        except ImageTooLarge:
            return self._error(400, f"IMAGE_FILE_TOO_LARGE:{field}")
        except BadImage:
            return self._error(400, f"INVALID_IMAGE_SIZE:{field}")
        scenes = [{"value": n, "confidence": round(s * 100, 3)} for n, s in labels if n in self.scene_classes]
        objects = [{"value": n, "confidence": round(s * 100, 3)} for n, s in labels if n not in self.scene_classes]
        return Reply.json(200, {"request_id": self._request_id(), "time_used": 80 + secrets.randbelow(60),
                                "image_id": secrets.token_urlsafe(16), "scenes": scenes, "objects": objects})
