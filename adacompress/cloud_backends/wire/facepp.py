"""Face++ `detectsceneandobject` on the wire: form or multipart POST, `error_message` errors, plain-text 413.

Keys travel as the form fields `api_key` / `api_secret`; the image as `image_file` (multipart),
`image_base64` or `image_url`, in that order of precedence. Requests over 2 MB get the gateway's
plain-text `413 Request Entity Too Large`, not JSON. Errors are `KIND` or `KIND:detail`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from adacompress.cloud_backends.base import Label
from adacompress.cloud_backends.limits import FACEPP_LIMITS, ImageLimits, check_image
from adacompress.cloud_backends.wire.common import (
    ErrorKind,
    RecognitionRequest,
    Route,
    WireError,
    WireReply,
    WireRequest,
    one_image_format,
    retry_after_headers,
)
from adacompress.errors import BadImage, ImageTooLarge, NotAnImage, UnsupportedFormat

ROUTE = Route("/imagepp/beta/detectsceneandobject")
MAX_REQUEST_BYTES = FACEPP_LIMITS.max_request_bytes or 2 * 2**20
"""The gateway's limit on the whole request body, whatever the image limits."""
IMAGE_FIELDS = ("image_file", "image_base64", "image_url")
_KINDS: dict[ErrorKind, tuple[int, str, str | None]] = {
    ErrorKind.BAD_REQUEST: (400, "BAD_ARGUMENTS", None),
    ErrorKind.BAD_IMAGE: (400, "IMAGE_ERROR_UNSUPPORTED_FORMAT", None),
    ErrorKind.IMAGE_TOO_LARGE: (400, "IMAGE_FILE_TOO_LARGE", None),
    ErrorKind.THROTTLED: (403, "CONCURRENCY_LIMIT_EXCEEDED", None),
    ErrorKind.RATE_LIMITED: (403, "CONCURRENCY_LIMIT_EXCEEDED", None),
    ErrorKind.QUOTA_EXCEEDED: (403, "AUTHORIZATION_ERROR", "Insufficient Account Balance"),
    ErrorKind.UNAUTHORIZED: (401, "AUTHENTICATION_ERROR", None),
    ErrorKind.INTERNAL: (500, "INTERNAL_ERROR", None),
    ErrorKind.UNAVAILABLE: (500, "INTERNAL_ERROR", None),
    ErrorKind.NOT_FOUND: (404, "API_NOT_FOUND", None),
}


def request_id() -> str:
    """`<unix time>,<uuid>`, as Face++ numbers its requests."""
    return f"{int(time.time())},{uuid.uuid4()}"


def facepp_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> WireReply:
    """A Face++ error body with `error_message` (`KIND` or `KIND:detail`)."""
    return WireReply.json(status, {"time_used": 3, "error_message": message, "request_id": request_id()},
                          headers=headers)


def error_reply(kind: ErrorKind, message: str | None = None, retry_after_s: float | None = None) -> WireReply:
    """Face++'s error for `kind`; `message` is the detail after the colon (e.g. the image field's name)."""
    status, error_kind, usual = _KINDS[kind]
    detail = message or usual
    return facepp_error(status, f"{error_kind}:{detail}" if detail else error_kind,
                        retry_after_headers(retry_after_s))


def check_request_size(request: WireRequest) -> None:
    """The gateway's plain-text 413 for a body over 2 MB, before anything reads the form."""
    if len(request.body) > MAX_REQUEST_BYTES:
        raise WireError(WireReply.text(413, "Request Entity Too Large"))


def credentials(request: WireRequest) -> dict[str, str]:
    """The form's `api_key` and `api_secret`, or 400 `MISSING_ARGUMENTS: <field>`."""
    check_request_size(request)
    for key in ("api_key", "api_secret"):
        if key not in request.form:
            raise WireError(facepp_error(400, f"MISSING_ARGUMENTS: {key}"))
    return {key: request.form[key].decode("utf-8", "replace") for key in ("api_key", "api_secret")}


def image_error_reply(exc: BadImage, params: Mapping[str, Any] | None = None) -> WireReply:
    """Face++'s refusal of an image, naming the field it came in (`params["field"]`)."""
    field = (params or {}).get("field")
    if isinstance(exc, UnsupportedFormat | NotAnImage):
        return error_reply(ErrorKind.BAD_IMAGE, field)
    if isinstance(exc, ImageTooLarge):
        return error_reply(ErrorKind.IMAGE_TOO_LARGE, field)
    return facepp_error(400, f"INVALID_IMAGE_SIZE:{field}" if field else "INVALID_IMAGE_SIZE")


def parse_recognition(request: WireRequest, limits: ImageLimits = FACEPP_LIMITS) -> RecognitionRequest:
    """The image from the first of `image_file` / `image_base64` present; `image_url` is refused (we fetch nothing)."""
    check_request_size(request)
    field = next((f for f in IMAGE_FIELDS if f in request.form), None)
    if field is None:
        raise WireError(facepp_error(400, "MISSING_ARGUMENTS: image_url, image_file, image_base64"))
    if field == "image_url":
        raise WireError(facepp_error(400, "INVALID_IMAGE_URL"))
    params = {"field": field}
    try:
        image = request.form[field] if field == "image_file" else base64.b64decode(request.form[field], validate=True)
    except (binascii.Error, ValueError):
        raise WireError(error_reply(ErrorKind.BAD_IMAGE, field)) from None
    try:
        check_image(image, limits, "facepp")
    except BadImage as exc:
        raise WireError(image_error_reply(exc, params)) from exc
    return RecognitionRequest(image, params)


def labels_reply(labels: Sequence[Label], params: Mapping[str, Any] | None = None, *,
                 scene_classes: frozenset[str] = frozenset()) -> WireReply:
    """detectsceneandobject's answer: names in `scene_classes` as `scenes`, the rest as `objects`, 0-100."""
    scenes = [{"value": label.name, "confidence": round(label.score * 100, 3)}
              for label in labels if label.name in scene_classes]
    objects = [{"value": label.name, "confidence": round(label.score * 100, 3)}
               for label in labels if label.name not in scene_classes]
    return WireReply.json(200, {"request_id": request_id(), "time_used": 80 + secrets.randbelow(60),
                                "image_id": secrets.token_urlsafe(16), "scenes": scenes, "objects": objects})


FORMAT = one_image_format("facepp", ROUTE, FACEPP_LIMITS, credentials, parse_recognition, labels_reply,
                          image_error_reply, error_reply)
