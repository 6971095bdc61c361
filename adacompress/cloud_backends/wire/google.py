"""Google Cloud Vision `v1/images:annotate` on the wire: API key, batches of up to 16 images, two kinds of error.

The key comes in the `X-Goog-Api-Key` header or as `?key=`. The body is `{"requests": [{"image":
{"content": <base64>}, "features": [{"type": "LABEL_DETECTION", "maxResults": n}]}]}`.
Request-level failures are `{"error": {"code", "message", "status", "details"}}` with the HTTP
status; an image's own problem comes back inside `responses[i].error` with HTTP 200.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adacompress.cloud_backends.base import Label
from adacompress.cloud_backends.limits import GOOGLE_LIMITS, ImageLimits, check_image
from adacompress.cloud_backends.wire.common import (
    Answer,
    BatchItem,
    ErrorKind,
    RecognitionRequest,
    Route,
    WireError,
    WireFormat,
    WireReply,
    WireRequest,
    retry_after_headers,
)
from adacompress.errors import BadImage, NotAnImage

ROUTE = Route("/v1/images:annotate")
MAX_IMAGES_PER_REQUEST = 16
MAX_REQUEST_BYTES = GOOGLE_LIMITS.max_request_bytes or 10 * 2**20
"""The limit on the whole JSON request, whatever the image limits."""
DEFAULT_MAX_RESULTS = 10
BAD_IMAGE_ERROR = {"code": 3, "message": "Bad image data."}
"""`responses[i].error` for an image that cannot be used (google.rpc.Code 3, INVALID_ARGUMENT)."""
_PER_MINUTE = ("Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of service "
               "'vision.googleapis.com'.")
_PER_DAY = "Quota exceeded for quota metric 'Requests' and limit 'Requests per day' of service 'vision.googleapis.com'."


def _quota_details(limit: str) -> list[dict]:
    return [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
             "domain": "googleapis.com", "metadata": {"service": "vision.googleapis.com", "quota_limit": limit}}]


_KEY_INVALID = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com"}]
_KINDS: dict[ErrorKind, tuple[int, str, str, list[dict]]] = {
    ErrorKind.BAD_REQUEST: (400, "INVALID_ARGUMENT", "Invalid JSON payload received.", []),
    ErrorKind.BAD_IMAGE: (400, "INVALID_ARGUMENT", "Bad image data.", []),
    ErrorKind.IMAGE_TOO_LARGE: (400, "INVALID_ARGUMENT",
                                f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes.", []),
    ErrorKind.THROTTLED: (429, "RESOURCE_EXHAUSTED", _PER_MINUTE, _quota_details("DefaultRequestsPerMinutePerProject")),
    ErrorKind.RATE_LIMITED: (429, "RESOURCE_EXHAUSTED", _PER_MINUTE,
                             _quota_details("DefaultRequestsPerMinutePerProject")),
    ErrorKind.QUOTA_EXCEEDED: (429, "RESOURCE_EXHAUSTED", _PER_DAY, _quota_details("DefaultRequestsPerDayPerProject")),
    ErrorKind.UNAUTHORIZED: (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", _KEY_INVALID),
    ErrorKind.INTERNAL: (500, "INTERNAL", "Internal error encountered.", []),
    ErrorKind.UNAVAILABLE: (503, "UNAVAILABLE", "The service is currently unavailable.", []),
    ErrorKind.NOT_FOUND: (404, "NOT_FOUND", "The requested URL was not found on this server.", []),
}


def google_error(code: int, status: str, message: str, details: list[dict] | None = None,
                 headers: Mapping[str, str] | None = None) -> WireReply:
    """A request-level error: a google.rpc.Status with the HTTP status as its `code`."""
    return WireReply.json(code, {"error": {"code": code, "message": message, "status": status,
                                           "details": details or []}}, headers=headers)


def error_reply(kind: ErrorKind, message: str | None = None, retry_after_s: float | None = None) -> WireReply:
    """Google's request-level error for `kind`; `message` replaces the usual text."""
    code, status, usual, details = _KINDS[kind]
    return google_error(code, status, message or usual, details, retry_after_headers(retry_after_s))


def credentials(request: WireRequest) -> dict[str, str]:
    """The API key (header first, then `?key=`), or Google's 403 when there is none."""
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        raise WireError(google_error(403, "PERMISSION_DENIED", "The request is missing a valid API key."))
    return {"key": key}


def check_request_size(request: WireRequest) -> None:
    """Google's 400 for a JSON request over 10 MB."""
    if len(request.body) > MAX_REQUEST_BYTES:
        raise WireError(error_reply(ErrorKind.IMAGE_TOO_LARGE))


def _parse_item(item: dict, limits: ImageLimits) -> BatchItem:
    try:
        features = {f.get("type"): f.get("maxResults", DEFAULT_MAX_RESULTS) for f in item.get("features", [])}
        max_results = int(features["LABEL_DETECTION"]) if "LABEL_DETECTION" in features else None
    except (AttributeError, TypeError, ValueError):
        raise WireError(error_reply(ErrorKind.BAD_REQUEST)) from None
    if max_results is None:
        return None
    try:
        image = base64.b64decode(item["image"]["content"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return NotAnImage("google: the item has no base64 `image.content`")
    try:
        check_image(image, limits, "google")
    except BadImage as exc:
        return exc
    return RecognitionRequest(image, {"max_results": max_results})


def parse_batch(request: WireRequest, limits: ImageLimits = GOOGLE_LIMITS) -> list[BatchItem]:
    """One item per `requests[i]`: an image to label, a refused image, or None (no LABEL_DETECTION asked)."""
    check_request_size(request)
    try:
        items = json.loads(request.body)["requests"]
    except (ValueError, KeyError, TypeError):
        raise WireError(error_reply(ErrorKind.BAD_REQUEST)) from None
    if not isinstance(items, list):
        raise WireError(error_reply(ErrorKind.BAD_REQUEST))
    if len(items) > MAX_IMAGES_PER_REQUEST:
        raise WireError(error_reply(ErrorKind.BAD_REQUEST, f"At most {MAX_IMAGES_PER_REQUEST} images per request."))
    if not all(isinstance(item, dict) for item in items):
        raise WireError(error_reply(ErrorKind.BAD_REQUEST))
    return [_parse_item(item, limits) for item in items]


def _annotations(labels: Sequence[Label], params: Mapping[str, Any], mid: Callable[[Label], str] | None) -> dict:
    found = []
    for label in labels[:params.get("max_results", DEFAULT_MAX_RESULTS)]:
        annotation = {"mid": mid(label)} if mid else {}
        found.append({**annotation, "description": label.name, "score": round(label.score, 6),
                      "topicality": round(label.score, 6)})
    return {"labelAnnotations": found}


def batch_reply(items: Sequence[BatchItem], answers: Sequence[Answer], *,
                mid: Callable[[Label], str] | None = None) -> WireReply:
    """images:annotate's HTTP 200 answer, one response per item; `mid` names a label's Knowledge Graph id."""
    if len(items) != len(answers):
        raise ValueError(f"google: {len(items)} items but {len(answers)} answers; give one answer per item")
    responses: list[dict] = []
    for item, answer in zip(items, answers, strict=True):
        if item is None:
            responses.append({})
        elif isinstance(answer, BadImage):
            responses.append({"error": dict(BAD_IMAGE_ERROR)})
        elif isinstance(item, RecognitionRequest) and answer is not None:
            responses.append(_annotations(answer, item.params, mid))
        else:
            raise ValueError(f"google: item {len(responses)} is a refused image but its answer is {answer!r:.80}")
    return WireReply.json(200, {"responses": responses})


FORMAT = WireFormat("google", ROUTE, (), GOOGLE_LIMITS, credentials, parse_batch, batch_reply, error_reply)
